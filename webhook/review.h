#ifndef PW_REVIEW_H
#define PW_REVIEW_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "policy.h"

/*
 * AdmissionReview (admission.k8s.io/v1) in and out.  Pure: bytes in, bytes
 * out, no I/O.
 */

struct review {
	cJSON		*root;		/* owned: the parsed body */
	const char	*uid;		/* the rest borrow from root */
	const char	*operation;	/* "CREATE", "UPDATE", ... */
	const char	*namespace;	/* request.namespace; may be "" */
	const char	*kind;		/* request.kind.kind */
	const char	*group;		/* request.kind.group */
	const cJSON	*object;	/* request.object; NULL when absent or null */
	int		 dry_run;
};

/* Parse a request body.  Return 0, or -1 with a message in err when the
 * body is not an AdmissionReview v1 request this webhook can read (not
 * UTF-8, not JSON, too deep, no request, another apiVersion, no uid, a pod
 * CREATE without an object).  On success the caller owns rv->root
 * (review_release()). */
int	review_parse(const char *body, size_t len, struct review *rv,
	    char *err, size_t errlen);

void	review_release(struct review *rv);

/* request.uid of a body too large to parse whole, read from its framing
 * alone (common/jsonscan.c): copied into out.  Return 0, or -1 when the
 * body has no plain string uid that fits. */
int	review_uid(const char *body, size_t len, char *out, size_t outlen);

/* Whether the pod of a body too large to parse whole opted in, read from
 * its framing alone: 1 when its pipewarden.io/inject label or annotation
 * is "true" (and neither is "false"), 0 when it did not opt in, -1 when
 * that cannot be told (a key written with escapes, a value not a plain
 * string). */
int	review_opt_in(const char *body, size_t len);

/* The AdmissionReview response for a decision, as JSON text the caller
 * frees.  NULL when out of memory. */
char	*review_answer(const char *uid, const struct policy_decision *d,
	    size_t *lenp);

/* A Kubernetes Status body for an HTTP error (400, 413, 404, ...), as JSON
 * text the caller frees.  NULL when out of memory. */
char	*review_error_body(int code, const char *message, size_t *lenp);

/* Whether s[0..len) is valid UTF-8 (no overlongs, no surrogates). */
int	utf8_valid(const unsigned char *s, size_t len);

#endif
