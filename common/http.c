#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include <curl/curl.h>

#include "cli.h"
#include "http.h"

struct http_client {
	CURL	*curl;
	char	*ca_file;
	long	 timeout_ms;
	double	 deadline;		/* CLOCK_MONOTONIC seconds; 0: none */
	int	(*abort)(void *cls);	/* non-zero: give up the request now */
	void	*abort_cls;
};

void
http_client_set_deadline(struct http_client *c, double deadline)
{
	c->deadline = deadline;
}

void
http_client_set_abort(struct http_client *c, int (*abort)(void *cls), void *cls)
{
	c->abort = abort;
	c->abort_cls = cls;
}

double
http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* libcurl's progress callback: a non-zero return aborts the transfer. */
static int
on_progress(void *cls, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
    curl_off_t ulnow)
{
	struct http_client *c = cls;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return c->abort != NULL && c->abort(c->abort_cls);
}

struct http_client *
http_client_new(const char *ca_file, long timeout_ms)
{
	struct http_client *c;
	long long secs;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (parse_ll(getenv("PIPEWARDEN_HTTP_TIMEOUT_SECONDS"), 1, 300, &secs) == 0)
		timeout_ms = (long)secs * 1000;
	if ((c->curl = curl_easy_init()) == NULL ||
	    (ca_file != NULL && (c->ca_file = strdup(ca_file)) == NULL)) {
		http_client_free(c);
		return NULL;
	}
	c->timeout_ms = timeout_ms;
	return c;
}

void
http_client_free(struct http_client *c)
{
	if (c == NULL)
		return;
	if (c->curl != NULL)
		curl_easy_cleanup(c->curl);
	free(c->ca_file);
	free(c);
}

static size_t
on_body(char *p, size_t size, size_t n, void *cls)
{
	struct http_response *r = cls;

	if (buf_add(&r->body, p, size * n) == -1)
		return 0;	/* over the cap: curl fails the transfer */
	return size * n;
}

static size_t
on_header(char *p, size_t size, size_t n, void *cls)
{
	struct http_response *r = cls;
	size_t len = size * n, vlen;
	const char *v;
	char num[32];

	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		for (v = p + 12; v < p + len && isspace((unsigned char)*v); v++)
			;
		vlen = (size_t)(p + len - v);
		while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
			vlen--;
		if (vlen > 0 && vlen < sizeof(num)) {
			char *end;
			double d;
			memcpy(num, v, vlen);
			num[vlen] = '\0';
			d = strtod(num, &end);
			/* Seconds only; an HTTP date counts as a minute. */
			r->retry_after = *end == '\0' && d >= 0 ? d : 60;
		}
	} else if (len > 13 && strncasecmp(p, "Content-Type:", 13) == 0) {
		for (v = p + 13; v < p + len && isspace((unsigned char)*v); v++)
			;
		vlen = (size_t)(p + len - v);
		while (vlen > 0 && isspace((unsigned char)v[vlen - 1]))
			vlen--;
		if (vlen >= sizeof(r->content_type))
			vlen = sizeof(r->content_type) - 1;
		memcpy(r->content_type, v, vlen);
		r->content_type[vlen] = '\0';
	}
	return len;
}

/* Everything libcurl needs for one request (the handle is reset first). */
static void
set_options(struct http_client *c, const char *method, const char *url,
    struct curl_slist *headers, long timeout, const char *body, size_t body_len,
    struct http_response *r)
{
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	/* A deletion in flight is completed: its outcome must be known. */
	if (c->abort != NULL && strcmp(method, "DELETE") != 0) {
		curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
		curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	if (c->ca_file != NULL)
		curl_easy_setopt(c->curl, CURLOPT_CAINFO, c->ca_file);
	if (body != NULL) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
}

int
http_request(struct http_client *c, const char *method, const char *url,
    const char *const *headers, const char *auth, const char *body,
    size_t body_len, struct http_response *r, char *err, size_t errlen)
{
	struct curl_slist *list = NULL, *l;
	struct buf authz;
	long timeout = c->timeout_ms;
	double left;
	CURLcode rc;
	size_t i;
	int ret = -1;

	memset(r, 0, sizeof(*r));
	buf_init(&r->body, HTTP_BODY_MAX);
	r->retry_after = -1;
	buf_init(&authz, 64 * 1024);
	if (c->deadline > 0) {
		left = (c->deadline - http_now()) * 1000;
		if (left < 1) {
			snprintf(err, errlen, "%s %s: not sent: its time budget is spent", method, url);
			goto out;
		}
		if (left < (double)timeout)
			timeout = (long)left;
	}
	for (i = 0; headers != NULL && headers[i] != NULL; i++) {
		if ((l = curl_slist_append(list, headers[i])) == NULL)
			goto out;
		list = l;
	}
	if (auth != NULL) {
		buf_adds(&authz, "Authorization: ");
		buf_adds(&authz, auth);
		if (authz.failed || (l = curl_slist_append(list, authz.data)) == NULL)
			goto out;
		list = l;
	}
	set_options(c, method, url, list, timeout, body, body_len, r);
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "%s %s: %s", method, url,
		    r->body.toobig ? "response body too large" : rc == CURLE_ABORTED_BY_CALLBACK ?
		    "given up: stopping" : curl_easy_strerror(rc));
		r->status = 0;
		goto out;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (buf_addc(&r->body, '\0') == -1) {
		snprintf(err, errlen, "%s %s: response body too large", method, url);
		goto out;
	}
	r->body.len--;
	ret = 0;
out:
	/* The header list held the Authorization value: wipe it. */
	for (l = list; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(list);
	if (authz.data != NULL)
		explicit_bzero(authz.data, authz.len);
	buf_release(&authz);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	return ret;
}

void
http_response_release(struct http_response *r)
{
	buf_release(&r->body);
}

int
http_is_json(const struct http_response *r)
{
	return strncasecmp(r->content_type, "application/json", 16) == 0;
}

void
http_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			buf_addc(b, (char)c);
		else
			buf_addf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
	}
}
