#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/jsonscan.h"
#include "review.h"

#define ANSWER_MAX	(8 * 1024 * 1024)

int
utf8_valid(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	unsigned int cp;
	uint64_t w;

	while (i < len) {
		unsigned char c = s[i];

		/* Eight ASCII bytes at a time: most of a pod is ASCII. */
		if (len - i >= 8) {
			memcpy(&w, s + i, 8);
			if ((w & 0x8080808080808080ULL) == 0) {
				i += 8;
				continue;
			}
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

static const char *
string_at(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/*
 * NUL can never be carried by a C string: a raw NUL byte, or a "\u0000"
 * escape inside a JSON string ("Pod\u0000x" would compare equal to "Pod").
 * JSON text has no other place for them, so a body with either is refused.
 */
static int
has_nul(const char *s, size_t len)
{
	size_t i;
	int in_string = 0;

	if (memchr(s, '\0', len) != NULL)
		return 1;
	/* The careful walk only when the text "\u0000" occurs at all. */
	if (memmem(s, len, "\\u0000", 6) == NULL)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] == '"') {
			in_string = !in_string;
		} else if (in_string && s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
				return 1;
			i++;	/* skip the escaped character */
		}
	}
	return 0;
}

static cJSON	*parse_body(const char *body, size_t len, char *err, size_t errlen);
static int	 read_review(struct review *rv, char *err, size_t errlen);

int
review_parse(const char *body, size_t len, struct review *rv, char *err, size_t errlen)
{
	memset(rv, 0, sizeof(*rv));
	if ((rv->root = parse_body(body, len, err, errlen)) == NULL ||
	    read_review(rv, err, errlen) == -1) {
		review_release(rv);
		return -1;
	}
	return 0;
}

/* The body as one JSON value: UTF-8, no NUL (cJSON would cut a C string
 * there), nothing after it.  Return the tree (the caller owns it), or NULL
 * with a message. */
static cJSON *
parse_body(const char *body, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *root;

	if (len == 0) {
		snprintf(err, errlen, "empty body; expected an AdmissionReview");
		return NULL;
	}
	if (!utf8_valid((const unsigned char *)body, len)) {
		snprintf(err, errlen, "body is not valid UTF-8");
		return NULL;
	}
	if (has_nul(body, len)) {
		snprintf(err, errlen, "body contains a NUL character");
		return NULL;
	}
	if ((root = cJSON_ParseWithLengthOpts(body, len, &end, 0)) == NULL) {
		snprintf(err, errlen, "body is not JSON (error near byte %zu, or "
		    "nested deeper than %d)", end != NULL && end >= body ?
		    (size_t)(end - body) : (size_t)0, CJSON_NESTING_LIMIT);
		return NULL;
	}
	for (; end != NULL && (size_t)(end - body) < len; end++) {
		if (*end != ' ' && *end != '\n' && *end != '\r' && *end != '\t') {
			snprintf(err, errlen, "body has data after the JSON value "
			    "(byte %zu)", (size_t)(end - body));
			cJSON_Delete(root);
			return NULL;
		}
	}
	return root;
}

/* An AdmissionReview v1 request, read from rv->root into rv.  Return 0, or
 * -1 with a message saying what is missing. */
static int
read_review(struct review *rv, char *err, size_t errlen)
{
	const cJSON *request, *kind, *object, *dry;
	const char *api;

	if (!cJSON_IsObject(rv->root)) {
		snprintf(err, errlen, "body is not a JSON object");
		return -1;
	}
	api = string_at(rv->root, "apiVersion");
	if (api == NULL || strcmp(api, "admission.k8s.io/v1") != 0) {
		snprintf(err, errlen, "apiVersion '%.64s' is not admission.k8s.io/v1; "
		    "set admissionReviewVersions: [v1] in the webhook configuration",
		    api != NULL ? api : "");
		return -1;
	}
	if (string_at(rv->root, "kind") == NULL ||
	    strcmp(string_at(rv->root, "kind"), "AdmissionReview") != 0) {
		snprintf(err, errlen, "kind is not AdmissionReview");
		return -1;
	}
	request = cJSON_GetObjectItemCaseSensitive(rv->root, "request");
	if (!cJSON_IsObject(request)) {
		snprintf(err, errlen, "AdmissionReview has no request object");
		return -1;
	}
	rv->uid = string_at(request, "uid");
	rv->operation = string_at(request, "operation");
	rv->namespace = string_at(request, "namespace");
	kind = cJSON_GetObjectItemCaseSensitive(request, "kind");
	rv->kind = string_at(kind, "kind");
	rv->group = string_at(kind, "group");
	if (rv->uid == NULL || rv->uid[0] == '\0') {
		snprintf(err, errlen, "request.uid is missing");
		return -1;
	}
	if (rv->operation == NULL || rv->kind == NULL) {
		snprintf(err, errlen, "request.operation or request.kind is missing");
		return -1;
	}
	if (rv->group == NULL)
		rv->group = "";
	if (rv->namespace == NULL)
		rv->namespace = "";
	object = cJSON_GetObjectItemCaseSensitive(request, "object");
	rv->object = cJSON_IsObject(object) ? object : NULL;
	if (rv->object == NULL && strcmp(rv->operation, "CREATE") == 0) {
		snprintf(err, errlen, "request.object is missing for a CREATE");
		return -1;
	}
	dry = cJSON_GetObjectItemCaseSensitive(request, "dryRun");
	rv->dry_run = cJSON_IsTrue(dry);
	return 0;
}

void
review_release(struct review *rv)
{
	cJSON_Delete(rv->root);
	memset(rv, 0, sizeof(*rv));
}

/* Append base64 of p[0..n), written in place after one reservation. */
static void
add_base64(struct buf *b, const unsigned char *p, size_t n)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, outlen = (n + 2) / 3 * 4;
	char *out;

	if (buf_reserve(b, outlen) == -1)
		return;
	out = b->data + b->len;
	for (i = 0; i + 2 < n; i += 3, out += 4) {
		out[0] = tab[p[i] >> 2];
		out[1] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
		out[2] = tab[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
		out[3] = tab[p[i + 2] & 63];
	}
	if (i < n) {
		out[0] = tab[p[i] >> 2];
		if (i + 1 < n) {
			out[1] = tab[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
			out[2] = tab[(p[i + 1] & 15) << 2];
		} else {
			out[1] = tab[(p[i] & 3) << 4];
			out[2] = '=';
		}
		out[3] = '=';
	}
	b->len += outlen;
	b->data[b->len] = '\0';
}

char *
review_answer(const char *uid, const struct policy_decision *d, size_t *lenp)
{
	static const char *const decisions[] = { "unchanged", "patched", "denied" };
	struct buf b;
	size_t i;

	buf_init(&b, ANSWER_MAX);
	buf_adds(&b, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
	    "\"response\":{\"uid\":");
	buf_add_json_string(&b, uid);
	if (d->result == POLICY_DENIED) {
		buf_addf(&b, ",\"allowed\":false,\"status\":{\"status\":\"Failure\","
		    "\"message\":");
		buf_add_json_string(&b, d->message);
		buf_addf(&b, ",\"reason\":\"%s\",\"code\":%d}",
		    d->code == 403 ? "Forbidden" : "BadRequest", d->code);
	} else {
		buf_adds(&b, ",\"allowed\":true");
	}
	if (d->result == POLICY_PATCHED) {
		buf_adds(&b, ",\"patchType\":\"JSONPatch\",\"patch\":\"");
		add_base64(&b, (const unsigned char *)d->patch, d->patch_len);
		buf_addc(&b, '"');
	}
	if (d->nwarnings > 0) {
		buf_adds(&b, ",\"warnings\":[");
		for (i = 0; i < d->nwarnings; i++) {
			if (i > 0)
				buf_addc(&b, ',');
			buf_add_json_string(&b, d->warnings[i]);
		}
		buf_addc(&b, ']');
	}
	if (d->opted_in)
		buf_addf(&b, ",\"auditAnnotations\":{\"decision\":\"%s\"}",
		    decisions[d->result]);
	buf_adds(&b, "}}");
	return buf_detach(&b, lenp);
}

char *
review_error_body(int code, const char *message, size_t *lenp)
{
	const char *reason;
	struct buf b;

	switch (code) {
	case 400: reason = "BadRequest"; break;
	case 404: reason = "NotFound"; break;
	case 405: reason = "MethodNotAllowed"; break;
	case 408: reason = "Timeout"; break;
	case 413: reason = "RequestEntityTooLarge"; break;
	case 503: reason = "ServiceUnavailable"; break;
	default: reason = "InternalError"; break;
	}
	buf_init(&b, 64 * 1024);
	buf_adds(&b, "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
	    "\"status\":\"Failure\",\"message\":");
	buf_add_json_string(&b, message);
	buf_addf(&b, ",\"reason\":\"%s\",\"code\":%d}\n", reason, code);
	return buf_detach(&b, lenp);
}

struct uid_scan {
	const char	*request;	/* request's text, once found */
	size_t		 request_len;
	char		*out;
	size_t		 outlen;
	int		 found;
};

static int
find_member(const char *key, size_t keylen, const char *value, size_t len, void *cls,
    const char *want, const char **at, size_t *atlen)
{
	(void)cls;
	if (keylen == strlen(want) && memcmp(key, want, keylen) == 0) {
		*at = value;
		*atlen = len;
		return -1;	/* found: stop */
	}
	return 0;
}

static int
find_request(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct uid_scan *u = cls;

	return find_member(key, keylen, value, len, cls, "request", &u->request,
	    &u->request_len);
}

static int
find_uid(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct uid_scan *u = cls;
	const char *v = NULL;
	size_t vlen = 0;
	size_t i;

	if (find_member(key, keylen, value, len, cls, "uid", &v, &vlen) == 0)
		return 0;
	/* A plain string: quotes around printable characters, no escapes. */
	if (vlen < 3 || v[0] != '"' || v[vlen - 1] != '"' || vlen - 2 >= u->outlen)
		return -1;
	for (i = 1; i < vlen - 1; i++)
		if (v[i] == '\\' || (unsigned char)v[i] < 0x20 || (unsigned char)v[i] > 0x7e)
			return -1;
	memcpy(u->out, v + 1, vlen - 2);
	u->out[vlen - 2] = '\0';
	u->found = 1;
	return -1;
}

/* Walking request.object.metadata's labels and annotations for the opt-in. */
struct optin_scan {
	const char	*at;		/* the member found by find_member */
	size_t		 at_len;
	const char	*want;
	int		 yes, no, unsure;
};

static int
find_want(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct optin_scan *o = cls;

	return find_member(key, keylen, value, len, cls, o->want, &o->at, &o->at_len);
}

/* One labels or annotations object: its pipewarden.io/inject value. */
static int
optin_member(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	static const char inject[] = "pipewarden.io/inject";
	struct optin_scan *o = cls;

	/* A key written with escapes cannot be compared raw: not sure. */
	if (memchr(key, '\\', keylen) != NULL) {
		o->unsure = 1;
		return 0;
	}
	if (keylen != sizeof(inject) - 1 || memcmp(key, inject, keylen) != 0)
		return 0;
	if (len == 6 && memcmp(value, "\"true\"", 6) == 0)
		o->yes = 1;
	else if (len == 7 && memcmp(value, "\"false\"", 7) == 0)
		o->no = 1;
	else
		o->unsure = 1;
	return 0;
}

/* The object member `want` of text[0..len), into o->at (NULL: none). */
static void
member(const char *text, size_t len, const char *want, struct optin_scan *o)
{
	o->at = NULL;
	o->at_len = 0;
	o->want = want;
	if (text != NULL)
		jsonscan_object(text, len, find_want, o);
}

int
review_opt_in(const char *body, size_t len)
{
	static const char *const path[] = { "request", "object", "metadata" };
	static const char *const sets[] = { "labels", "annotations" };
	struct optin_scan o;
	const char *meta;
	size_t i, meta_len;

	memset(&o, 0, sizeof(o));
	o.at = body;
	o.at_len = len;
	for (i = 0; i < sizeof(path) / sizeof(path[0]); i++)
		member(o.at, o.at_len, path[i], &o);
	if (o.at == NULL)
		return 0;	/* no pod metadata: nothing opted in */
	meta = o.at;
	meta_len = o.at_len;
	for (i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		member(meta, meta_len, sets[i], &o);
		if (o.at != NULL && o.at_len > 0 && o.at[0] == '{' &&
		    jsonscan_object(o.at, o.at_len, optin_member, &o) == -1)
			o.unsure = 1;
	}
	if (o.unsure)
		return -1;
	return o.yes && !o.no;
}

int
review_uid(const char *body, size_t len, char *out, size_t outlen)
{
	struct uid_scan u;

	memset(&u, 0, sizeof(u));
	u.out = out;
	u.outlen = outlen;
	jsonscan_object(body, len, find_request, &u);
	if (u.request == NULL)
		return -1;
	jsonscan_object(u.request, u.request_len, find_uid, &u);
	return u.found ? 0 : -1;
}
