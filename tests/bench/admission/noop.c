/*
 * The no-op webhook of make bench-admission: the floor of calling any
 * mutating webhook.  It reads the AdmissionReview, echoes its request uid
 * and allows the pod, with no patch, or with the JSON Patch in PATCH_FILE
 * (pipewarden's patch for the same pod: the floor of delivering that
 * mutation).  Same libmicrohttpd, GnuTLS and certificate as the webhook, in
 * libmicrohttpd's fastest mode here (one epoll thread).
 *
 * usage: noop PORT CERT KEY [PATCH_FILE]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "../../../common/file.h"

#define BODY_MAX	(4u << 20)
#define UID_MAX		128

struct req {
	char	*body;
	size_t	 len;
};

static char	*patch_b64;	/* NULL: allow with no patch */

static char *
base64(const char *in, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;

	if (out == NULL)
		return NULL;
	for (i = 0; i + 2 < n; i += 3) {
		unsigned v = (unsigned char)in[i] << 16 |
		    (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
		*o++ = tab[v >> 18 & 63]; *o++ = tab[v >> 12 & 63];
		*o++ = tab[v >> 6 & 63]; *o++ = tab[v & 63];
	}
	if (i < n) {
		unsigned v = (unsigned char)in[i] << 16 |
		    (i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0);
		*o++ = tab[v >> 18 & 63]; *o++ = tab[v >> 12 & 63];
		*o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/* The request uid: kube-apiserver writes "request":{"uid":"…" first. */
static int
request_uid(const char *body, size_t len, char *uid)
{
	static const char key[] = "\"request\":{\"uid\":\"";
	const char *p = memmem(body, len, key, sizeof key - 1), *end;

	if (p == NULL)
		return -1;
	p += sizeof key - 1;
	end = memchr(p, '"', len - (size_t)(p - body));
	if (end == NULL || end - p >= UID_MAX || end == p)
		return -1;
	memcpy(uid, p, (size_t)(end - p));
	uid[end - p] = '\0';
	return 0;
}

static enum MHD_Result
answer(struct MHD_Connection *c, struct req *r)
{
	char uid[UID_MAX], *out;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int n;

	if (request_uid(r->body, r->len, uid) < 0) {
		resp = MHD_create_response_from_buffer(sizeof "no request uid\n" - 1,
		    "no request uid\n", MHD_RESPMEM_PERSISTENT);
		ret = MHD_queue_response(c, MHD_HTTP_BAD_REQUEST, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	n = asprintf(&out, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":"
	    "\"AdmissionReview\",\"response\":{\"uid\":\"%s\",\"allowed\":true%s%s%s}}",
	    uid, patch_b64 ? ",\"patchType\":\"JSONPatch\",\"patch\":\"" : "",
	    patch_b64 ? patch_b64 : "", patch_b64 ? "\"" : "");
	if (n < 0)
		return MHD_NO;
	resp = MHD_create_response_from_buffer((size_t)n, out, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(resp, "Content-Type", "application/json");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *data, size_t *size, void **req_cls)
{
	struct req *r = *req_cls;
	char *grown;

	(void)cls; (void)url; (void)method; (void)version;
	if (r == NULL) {
		if ((r = calloc(1, sizeof *r)) == NULL)
			return MHD_NO;
		*req_cls = r;
		return MHD_YES;
	}
	if (*size > 0) {
		if (r->len + *size > BODY_MAX ||
		    (grown = realloc(r->body, r->len + *size)) == NULL)
			return MHD_NO;
		memcpy(grown + r->len, data, *size);
		r->body = grown;
		r->len += *size;
		*size = 0;
		return MHD_YES;
	}
	return answer(c, r);
}

static void
done(void *cls, struct MHD_Connection *c, void **req_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct req *r = *req_cls;

	(void)cls; (void)c; (void)toe;
	if (r != NULL) {
		free(r->body);
		free(r);
		*req_cls = NULL;
	}
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	char *cert, *key, *patch = NULL;
	size_t n, patch_len = 0;
	sigset_t mask;
	int sig;

	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: noop PORT CERT KEY [PATCH_FILE]\n");
		return 2;
	}
	cert = file_read(argv[2], 1 << 20, &n);
	key = file_read(argv[3], 1 << 20, &n);
	if (argc == 5 && ((patch = file_read(argv[4], 1 << 20, &patch_len)) == NULL ||
	    (patch_b64 = base64(patch, patch_len)) == NULL)) {
		fprintf(stderr, "noop: cannot read %s\n", argv[4]);
		return 2;
	}
	if (cert == NULL || key == NULL) {
		fprintf(stderr, "noop: cannot read %s or %s\n", argv[2], argv[3]);
		return 2;
	}
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_EPOLL,
	    (uint16_t)(int)strtol(argv[1], NULL, 10), NULL, NULL, handle, NULL,
	    MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
	    MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
	    MHD_OPTION_NOTIFY_COMPLETED, done, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_CONNECTION_TIMEOUT, 120u,
	    MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "noop: cannot listen on port %s\n", argv[1]);
		return 1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigwait(&mask, &sig);
	MHD_stop_daemon(d);
	free(cert);
	free(key);
	free(patch);
	free(patch_b64);
	return 0;
}
