#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

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

/* The SHA-256 key id of a public key, or -1. */
static int
key_id(gnutls_pubkey_t pub, unsigned char id[32], size_t *len)
{
	*len = 32;
	return gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, len) < 0 ? -1 : 0;
}

int
certs_check_pair(const gnutls_pcert_st *cert, gnutls_privkey_t key, time_t *not_after,
    char *err, size_t errlen)
{
	gnutls_pubkey_t from_key = NULL;
	gnutls_x509_crt_t crt = NULL;
	unsigned char a[32], b[32];
	size_t alen, blen;
	int rc = -1;

	if (gnutls_pubkey_init(&from_key) < 0 || gnutls_x509_crt_init(&crt) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (gnutls_pubkey_import_privkey(from_key, key, 0, 0) < 0 ||
	    key_id(from_key, a, &alen) == -1 || key_id(cert->pubkey, b, &blen) == -1 ||
	    alen != blen || memcmp(a, b, alen) != 0) {
		snprintf(err, errlen, "the private key does not match the certificate");
		goto out;
	}
	if (gnutls_x509_crt_import(crt, &cert->cert, GNUTLS_X509_FMT_DER) < 0 ||
	    (*not_after = gnutls_x509_crt_get_expiration_time(crt)) == (time_t)-1) {
		snprintf(err, errlen, "the certificate has an unreadable notAfter");
		goto out;
	}
	rc = 0;
out:
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (from_key != NULL)
		gnutls_pubkey_deinit(from_key);
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
	d.data = (unsigned char *)cert;
	d.size = (unsigned int)cert_len;
	cp->npcerts = CHAIN_MAX;
	if ((grc = gnutls_pcert_list_import_x509_raw(cp->pcerts, &cp->npcerts, &d,
	    GNUTLS_X509_FMT_PEM, 0)) < 0 || cp->npcerts == 0) {
		cp->npcerts = 0;
		snprintf(err, errlen, "no PEM certificate in the certificate file (%s)",
		    gnutls_strerror(grc));
		goto out;
	}
	d.data = (unsigned char *)key;
	d.size = (unsigned int)key_len;
	if (gnutls_privkey_init(&cp->key) < 0 ||
	    (grc = gnutls_privkey_import_x509_raw(cp->key, &d, GNUTLS_X509_FMT_PEM,
	    NULL, 0)) < 0) {
		snprintf(err, errlen, "no PEM private key in the key file");
		goto out;
	}
	if (certs_check_pair(&cp->pcerts[0], cp->key, &cp->not_after, err, errlen) == -1)
		goto out;
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
