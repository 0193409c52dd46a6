#ifndef PW_CERTS_H
#define PW_CERTS_H

#include <stddef.h>
#include <time.h>

#include <gnutls/abstract.h>

#include "../common/file.h"

/*
 * The serving certificate and key, re-read when their files change.  A pair
 * that does not load or whose key does not match keeps the old one in
 * service.  A replaced pair is kept a while before it is freed, since a
 * TLS handshake in progress may still use it.
 */
struct certpair;

struct certstore {
	const char	*cert_path;	/* borrowed */
	const char	*key_path;	/* borrowed */
	struct file_watch cert_watch;
	struct file_watch key_watch;
	struct certpair	*current;	/* owned; NULL until a pair loaded */
	struct certpair	*retired;	/* owned list */
};

void	certstore_init(struct certstore *cs, const char *cert_path,
	    const char *key_path);

/* Load the pair now.  Return 0 and put it in service, or -1 with a message
 * in err (the old pair stays). */
int	certstore_load(struct certstore *cs, time_t now, char *err, size_t errlen);

/* Whether either file changed since the last look. */
int	certstore_changed(struct certstore *cs);

/* Free retired pairs older than max_age seconds. */
void	certstore_reap(struct certstore *cs, time_t now, time_t max_age);

/* notAfter of the pair in service, or 0. */
time_t	certstore_expiry(const struct certstore *cs);

/* The gnutls certificate callback for MHD_OPTION_HTTPS_CERT_CALLBACK; it
 * serves the pair of the store given to certstore_serve(). */
gnutls_certificate_retrieve_function2 *certstore_callback(void);
void	certstore_serve(struct certstore *cs);

void	certstore_release(struct certstore *cs);

/* Check a loaded pair: the first certificate's public key is the private
 * key's.  Return 0 and its notAfter, or -1 with a message. */
int	certs_check_pair(const gnutls_pcert_st *cert, gnutls_privkey_t key,
	    time_t *not_after, char *err, size_t errlen);

#endif
