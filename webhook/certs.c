#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "certs.h"

#define PEM_MAX		(256 * 1024)
#define CHAIN_MAX	8

struct certpair {
	struct certpair		*next;		/* retired list */
	gnutls_pcert_st		 pcerts[CHAIN_MAX];
	unsigned int		 npcerts;
	gnutls_privkey_t	 key;
	time_t			 not_after;
	time_t			 retired_at;
};

/*
 * gnutls's certificate callback takes no user pointer, so the store it
 * serves is the one place of state at file scope.  It is set once at start
 * and read on the server's one thread.
 */
static struct certstore	*serving;

static void
certpair_free(struct certpair *cp)
{
	unsigned int i;

	if (cp == NULL)
		return;
	for (i = 0; i < cp->npcerts; i++)
		gnutls_pcert_deinit(&cp->pcerts[i]);
	if (cp->key != NULL)
		gnutls_privkey_deinit(cp->key);
	free(cp);
}

int
certs_check_pair(const char *cert_pem, size_t cert_len, const char *key_pem,
    size_t key_len, time_t *not_after, char *err, size_t errlen)
{
	BIO *cb = NULL, *kb = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	struct tm tm;
	int rc = -1;

	cb = BIO_new_mem_buf(cert_pem, (int)cert_len);
	kb = BIO_new_mem_buf(key_pem, (int)key_len);
	if (cb == NULL || kb == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if ((x = PEM_read_bio_X509(cb, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "no PEM certificate in the certificate file");
		goto out;
	}
	if ((k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "no PEM private key in the key file");
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		snprintf(err, errlen, "the private key does not match the certificate");
		goto out;
	}
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1) {
		snprintf(err, errlen, "the certificate has an unreadable notAfter");
		goto out;
	}
	*not_after = timegm(&tm);
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	BIO_free(kb);
	BIO_free(cb);
	return rc;
}

void
certstore_init(struct certstore *cs, const char *cert_path, const char *key_path)
{
	memset(cs, 0, sizeof(*cs));
	cs->cert_path = cert_path;
	cs->key_path = key_path;
	file_watch_init(&cs->cert_watch, cert_path);
	file_watch_init(&cs->key_watch, key_path);
}

int
certstore_changed(struct certstore *cs)
{
	int c = file_watch_changed(&cs->cert_watch);
	int k = file_watch_changed(&cs->key_watch);

	return c || k;
}

int
certstore_load(struct certstore *cs, time_t now, char *err, size_t errlen)
{
	struct certpair *cp = NULL;
	char *cert = NULL, *key = NULL;
	size_t cert_len, key_len;
	gnutls_datum_t d;
	int rc = -1, grc;

	if ((cert = file_read(cs->cert_path, PEM_MAX, &cert_len)) == NULL) {
		snprintf(err, errlen, "cannot read certificate '%s'", cs->cert_path);
		goto out;
	}
	if ((key = file_read(cs->key_path, PEM_MAX, &key_len)) == NULL) {
		snprintf(err, errlen, "cannot read key '%s'", cs->key_path);
		goto out;
	}
	if ((cp = calloc(1, sizeof(*cp))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (certs_check_pair(cert, cert_len, key, key_len, &cp->not_after, err,
	    errlen) == -1)
		goto out;
	d.data = (unsigned char *)cert;
	d.size = (unsigned int)cert_len;
	cp->npcerts = CHAIN_MAX;
	if ((grc = gnutls_pcert_list_import_x509_raw(cp->pcerts, &cp->npcerts, &d,
	    GNUTLS_X509_FMT_PEM, 0)) < 0) {
		cp->npcerts = 0;
		snprintf(err, errlen, "certificate chain: %s", gnutls_strerror(grc));
		goto out;
	}
	d.data = (unsigned char *)key;
	d.size = (unsigned int)key_len;
	if (gnutls_privkey_init(&cp->key) < 0 ||
	    (grc = gnutls_privkey_import_x509_raw(cp->key, &d, GNUTLS_X509_FMT_PEM,
	    NULL, 0)) < 0) {
		snprintf(err, errlen, "private key: cannot load it into GnuTLS");
		goto out;
	}
	if (cs->current != NULL) {
		cs->current->retired_at = now;
		cs->current->next = cs->retired;
		cs->retired = cs->current;
	}
	/* the store now owns cp */
	cs->current = cp;
	cp = NULL;
	rc = 0;
out:
	certpair_free(cp);
	if (key != NULL) {
		explicit_bzero(key, key_len);
		free(key);
	}
	free(cert);
	return rc;
}

void
certstore_reap(struct certstore *cs, time_t now, time_t max_age)
{
	struct certpair **pp = &cs->retired, *cp;

	while ((cp = *pp) != NULL) {
		if (now - cp->retired_at >= max_age) {
			*pp = cp->next;
			certpair_free(cp);
		} else {
			pp = &cp->next;
		}
	}
}

time_t
certstore_expiry(const struct certstore *cs)
{
	return cs->current != NULL ? cs->current->not_after : 0;
}

static int
serve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
    gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	(void)session;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (serving == NULL || serving->current == NULL)
		return -1;
	*pcert = serving->current->pcerts;
	*pcert_length = serving->current->npcerts;
	*pkey = serving->current->key;
	return 0;
}

gnutls_certificate_retrieve_function2 *
certstore_callback(void)
{
	return &serve_cert;
}

void
certstore_serve(struct certstore *cs)
{
	serving = cs;
}

void
certstore_release(struct certstore *cs)
{
	struct certpair *cp, *next;

	if (serving == cs)
		serving = NULL;
	certpair_free(cs->current);
	for (cp = cs->retired; cp != NULL; cp = next) {
		next = cp->next;
		certpair_free(cp);
	}
	memset(cs, 0, sizeof(*cs));
}
