#ifndef PW_HTTP_H
#define PW_HTTP_H

#include <stddef.h>

#include "buf.h"

/*
 * A small HTTPS client over libcurl (OpenSSL backend): one request at a
 * time on a reused connection, a whole-request timeout, a capped response
 * body, and the Retry-After header.  HTTPS_PROXY / NO_PROXY are honoured
 * by libcurl itself.
 */

#define HTTP_BODY_MAX	(64 * 1024 * 1024)

struct http_client;

struct http_response {
	long		 status;		/* 0 when no answer came */
	struct buf	 body;
	char		 content_type[128];
	double		 retry_after;		/* seconds; -1 when absent */
};

/* A client.  ca_file: PEM bundle to trust (NULL: the system store).
 * timeout_ms: for a whole request, unless PIPEWARDEN_HTTP_TIMEOUT_SECONDS
 * (1-300) says otherwise.  Returns NULL when out of memory. */
struct http_client	*http_client_new(const char *ca_file, long timeout_ms);
void			 http_client_free(struct http_client *c);

/* Every request from now on must end by deadline (CLOCK_MONOTONIC seconds,
 * as http_now() gives; 0: no deadline): its timeout is cut to what is left,
 * and a request with nothing left is not sent (-1, status 0). */
void	http_client_set_deadline(struct http_client *c, double deadline);

/* abort(cls) is asked while a request other than a DELETE runs; when it
 * says non-zero the request is given up at once (-1).  A DELETE in flight
 * always completes, so that its outcome is known.  NULL: never. */
void	http_client_set_abort(struct http_client *c, int (*abort)(void *cls), void *cls);

/* The monotonic clock, in seconds. */
double	http_now(void);

/*
 * Send one request.  headers is a NULL-terminated list of "Name: value"
 * lines (may be NULL); auth, when not NULL, is a whole Authorization value
 * ("Bearer ..."), kept out of every message.  Return 0 when an answer came
 * (any status: see r->status), or -1 on a transport error (refused, TLS,
 * timeout, body over the cap) with a message in err.  The caller releases
 * r with http_response_release() on every path.
 */
int	http_request(struct http_client *c, const char *method, const char *url,
	    const char *const *headers, const char *auth, const char *body,
	    size_t body_len, struct http_response *r, char *err, size_t errlen);

void	http_response_release(struct http_response *r);

/* Whether the response says it is JSON (Content-Type application/json). */
int	http_is_json(const struct http_response *r);

/* Percent-encode s for a URL query or path segment into b. */
void	http_escape(struct buf *b, const char *s);

#endif
