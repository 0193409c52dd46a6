#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../common/buf.h"
#include "../common/secret.h"
#include "../common/timefmt.h"
#include "kube.h"

#define KUBE_TIMEOUT_MS	15000
#define PAGE_LIMIT	500

/* ---- the client --------------------------------------------------------- */

int
kube_init(struct kube *k, const char *base, const char *token_path, const char *ca_path,
    const char *namespace, char *err, size_t errlen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	struct buf b;

	memset(k, 0, sizeof(*k));
	buf_init(&b, 4096);
	if (base != NULL && base[0] != '\0') {
		buf_adds(&b, base);
		while (b.len > 0 && b.data[b.len - 1] == '/')
			b.data[--b.len] = '\0';
	} else if (host != NULL && port != NULL) {
		/* An IPv6 service address needs brackets in a URL. */
		buf_addf(&b, strchr(host, ':') != NULL ? "https://[%s]:%s" : "https://%s:%s",
		    host, port);
	} else {
		snprintf(err, errlen, "no Kubernetes API: set --kube-api, or run in a "
		    "pod (KUBERNETES_SERVICE_HOST/PORT)");
		buf_release(&b);
		return -1;
	}
	k->base = buf_detach(&b, NULL);
	buf_release(&b);
	k->token_path = token_path;
	k->namespace = namespace;
	if (k->base == NULL || (k->http = http_client_new(ca_path, KUBE_TIMEOUT_MS)) == NULL) {
		snprintf(err, errlen, "out of memory");
		kube_release(k);
		return -1;
	}
	return 0;
}

void
kube_release(struct kube *k)
{
	http_client_free(k->http);
	free(k->base);
	memset(k, 0, sizeof(*k));
}

/* One request with the service-account token, re-read each time (it
 * rotates).  Returns as http_request. */
static int
kube_call(struct kube *k, const char *method, const char *path, const char *body,
    struct http_response *r, char *err, size_t errlen)
{
	static const char *const json_headers[] = { "Accept: application/json",
	    "Content-Type: application/json", "User-Agent: pipewarden-janitor", NULL };
	static const char *const merge_headers[] = { "Accept: application/json",
	    "Content-Type: application/merge-patch+json", "User-Agent: pipewarden-janitor",
	    NULL };
	struct secret token = { NULL, 0 };
	struct buf url, auth;
	int rc, attempt;

	buf_init(&url, 16384);
	buf_init(&auth, 16384);
	buf_adds(&url, k->base);
	buf_adds(&url, path);
	if (k->token_path != NULL && secret_load(&token, k->token_path) == 0) {
		buf_adds(&auth, "Bearer ");
		buf_adds(&auth, secret_bytes(&token));
	}
	/* The API server's 429 (max-in-flight, priority and fairness) says
	 * when to come back: wait as client-go does, a few times. */
	for (attempt = 0;; attempt++) {
		k->requests++;
		rc = http_request(k->http, method, url.data,
		    strcmp(method, "PATCH") == 0 ? merge_headers : json_headers,
		    auth.len > 0 ? auth.data : NULL, body, body != NULL ? strlen(body) : 0,
		    r, err, errlen);
		if (rc == -1 || r->status != 429 || attempt == 3 || k->wait == NULL ||
		    k->wait(k->wait_cls, r->retry_after > 0 ? (r->retry_after > 30 ? 30 :
		    r->retry_after) : 1) == -1)
			break;
		http_response_release(r);
	}
	if (auth.data != NULL)
		explicit_bzero(auth.data, auth.len);
	buf_release(&auth);
	buf_release(&url);
	secret_release(&token);
	return rc;
}

void
kube_set_deadline(struct kube *k, double deadline)
{
	http_client_set_deadline(k->http, deadline);
}

/* The message of a Status body, for logs. */
static void
status_error(const struct http_response *r, const char *what, char *err, size_t errlen)
{
	cJSON *st = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(st, "message");
	const char *msg = cJSON_IsString(m) ? m->valuestring : NULL;

	snprintf(err, errlen, "%s: HTTP %ld%s%.300s", what, r->status, msg ? ": " : "",
	    msg ? msg : "");
	cJSON_Delete(st);
}

int
kube_list_pods(struct kube *k, const char *ns, const char *label_selector,
    const char *field_selector, int cached, struct pod_list *l, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	char *cont = NULL;
	int restarts = 0, rc = -1, pages = 0;

	memset(l, 0, sizeof(*l));
	buf_init(&path, 16384);
	for (;;) {
		buf_reset(&path);
		buf_adds(&path, "/api/v1/");
		if (ns != NULL) {
			buf_adds(&path, "namespaces/");
			http_escape(&path, ns);
			buf_adds(&path, "/");
		}
		buf_adds(&path, "pods?labelSelector=");
		http_escape(&path, label_selector);
		if (field_selector != NULL) {
			buf_adds(&path, "&fieldSelector=");
			http_escape(&path, field_selector);
		}
		buf_addf(&path, "&limit=%d", PAGE_LIMIT);
		if (cached && cont == NULL)
			buf_adds(&path, "&resourceVersion=0");
		if (cont != NULL) {
			buf_adds(&path, "&continue=");
			http_escape(&path, cont);
		}
		free(cont);
		cont = NULL;
		if (path.failed || kube_call(k, "GET", path.data, NULL, &r, err, errlen) == -1) {
			http_response_release(&r);
			break;
		}
		if (r.status == 410 && restarts++ == 0) {
			/* The continue token expired: the list starts over. */
			http_response_release(&r);
			pod_list_release(l);
			continue;
		}
		if (r.status != 200) {
			status_error(&r, "list pods", err, errlen);
			http_response_release(&r);
			break;
		}
		if (kube_parse_pods(l, r.body.data, r.body.len, &cont, err, errlen) == -1) {
			http_response_release(&r);
			break;
		}
		http_response_release(&r);
		pages++;
		if (cont == NULL) {
			rc = 0;
			break;
		}
		if (pages > 100000) {
			snprintf(err, errlen, "list pods: too many pages");
			break;
		}
	}
	free(cont);
	buf_release(&path);
	if (rc == -1)
		pod_list_release(l);
	return rc;
}

/* What a write with a UID precondition came to: done (200, 202), gone
 * (404), someone else's object now (409: the precondition failed), refused
 * (403, 422: RBAC, an admission policy, validation), or an error; the last
 * two with their message in err. */
static enum kube_delete_result
write_result(const struct http_response *r, const char *what, char *err, size_t errlen)
{
	if (r->status == 200 || r->status == 202)
		return KUBE_DELETED;
	if (r->status == 404)
		return KUBE_GONE;
	if (r->status == 409)
		return KUBE_REPLACED;
	status_error(r, what, err, errlen);
	return r->status == 403 || r->status == 422 ? KUBE_REFUSED : KUBE_FAILED;
}

static enum kube_delete_result
kube_delete(struct kube *k, const char *path, const char *uid, int background,
    const char *what, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf body;
	enum kube_delete_result res = KUBE_FAILED;

	buf_init(&body, 4096);
	buf_adds(&body, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",");
	if (background)
		buf_adds(&body, "\"propagationPolicy\":\"Background\",");
	buf_adds(&body, "\"preconditions\":{\"uid\":");
	buf_add_json_string(&body, uid);
	buf_adds(&body, "}}");
	if (body.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, "DELETE", path, body.data, &r, err, errlen) == 0) {
		res = write_result(&r, what, err, errlen);
	}
	http_response_release(&r);
	buf_release(&body);
	return res;
}

static void
object_path(struct buf *b, const char *prefix, const char *ns, const char *kind,
    const char *name)
{
	buf_adds(b, prefix);
	buf_adds(b, "/namespaces/");
	http_escape(b, ns);
	buf_addf(b, "/%s/", kind);
	http_escape(b, name);
}

enum kube_delete_result
kube_delete_pod(struct kube *k, const char *ns, const char *name, const char *uid,
    char *err, size_t errlen)
{
	enum kube_delete_result res;
	struct buf path;

	buf_init(&path, 4096);
	object_path(&path, "/api/v1", ns, "pods", name);
	res = kube_delete(k, path.data, uid, 0, "delete pod", err, errlen);
	buf_release(&path);
	return res;
}

enum kube_delete_result
kube_delete_job(struct kube *k, const char *ns, const char *name, const char *uid,
    char *err, size_t errlen)
{
	enum kube_delete_result res;
	struct buf path;

	buf_init(&path, 4096);
	object_path(&path, "/apis/batch/v1", ns, "jobs", name);
	res = kube_delete(k, path.data, uid, 1, "delete job", err, errlen);
	buf_release(&path);
	return res;
}

int
kube_get_job(struct kube *k, const char *ns, const char *name, struct job_info *j,
    char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	int rc = -1;

	memset(j, 0, sizeof(*j));
	buf_init(&path, 4096);
	object_path(&path, "/apis/batch/v1", ns, "jobs", name);
	if (path.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, "GET", path.data, NULL, &r, err, errlen) == 0) {
		if (r.status == 404)
			rc = 0;
		else if (r.status == 200)
			rc = kube_parse_job(r.body.data, r.body.len, j, err, errlen);
		else
			status_error(&r, "get job", err, errlen);
	}
	http_response_release(&r);
	buf_release(&path);
	return rc;
}

int
kube_list_jobs(struct kube *k, struct job_list *l, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	char *cont = NULL;
	int rc = -1, pages = 0;

	memset(l, 0, sizeof(*l));
	buf_init(&path, 16384);
	for (;;) {
		buf_reset(&path);
		buf_addf(&path, "/apis/batch/v1/jobs?fieldSelector=status.successful%%3D0&limit=%d",
		    PAGE_LIMIT);
		if (cont != NULL) {
			buf_adds(&path, "&continue=");
			http_escape(&path, cont);
		}
		free(cont);
		cont = NULL;
		if (path.failed || kube_call(k, "GET", path.data, NULL, &r, err, errlen) == -1)
			break;
		if (r.status != 200) {
			status_error(&r, "list jobs", err, errlen);
			break;
		}
		if (kube_parse_jobs(l, r.body.data, r.body.len, &cont, err, errlen) == -1)
			break;
		http_response_release(&r);
		if (cont == NULL) {
			rc = 0;
			break;
		}
		if (++pages > 10000) {
			snprintf(err, errlen, "list jobs: too many pages");
			break;
		}
	}
	http_response_release(&r);
	free(cont);
	buf_release(&path);
	if (rc == -1)
		job_list_release(l);
	return rc;
}

int
kube_failed_create(struct kube *k, const char *ns, const char *uid, char *msg, size_t msglen,
    char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	int rc = -1;

	msg[0] = '\0';
	buf_init(&path, 4096);
	buf_adds(&path, "/api/v1/namespaces/");
	http_escape(&path, ns);
	buf_adds(&path, "/events?fieldSelector=");
	buf_adds(&path, "involvedObject.uid%3D");
	http_escape(&path, uid);
	buf_adds(&path, "%2Creason%3DFailedCreate");
	if (!path.failed && kube_call(k, "GET", path.data, NULL, &r, err, errlen) == 0) {
		if (r.status == 200)
			rc = kube_parse_newest_event(r.body.data, r.body.len, msg, msglen, err,
			    errlen);
		else
			status_error(&r, "list events", err, errlen);
	}
	http_response_release(&r);
	buf_release(&path);
	return rc;
}

int
kube_list_nodes(struct kube *k, struct node_list *l, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	int rc = -1;

	memset(l, 0, sizeof(*l));
	if (kube_call(k, "GET", "/api/v1/nodes?resourceVersion=0", NULL, &r, err, errlen) == 0) {
		if (r.status == 200)
			rc = kube_parse_nodes(l, r.body.data, r.body.len, err, errlen);
		else
			status_error(&r, "list nodes", err, errlen);
	}
	http_response_release(&r);
	if (rc == -1)
		node_list_release(l);
	return rc;
}

int
kube_node_exists(struct kube *k, const char *name, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	int rc = -1;

	buf_init(&path, 4096);
	buf_adds(&path, "/api/v1/nodes/");
	http_escape(&path, name);
	if (path.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, "GET", path.data, NULL, &r, err, errlen) == 0) {
		if (r.status == 200 || r.status == 404)
			rc = r.status == 200;
		else
			status_error(&r, "get node", err, errlen);
	}
	http_response_release(&r);
	buf_release(&path);
	return rc;
}

int
kube_event(struct kube *k, const struct kube_object *about, const char *type,
    const char *reason, const char *action, const char *message, time_t now, char *err,
    size_t errlen)
{
	struct http_response r = { 0 };
	struct buf body, path;
	char ts[28], micro[28];
	struct tm tm;
	const char *const involved[][2] = { { "kind", about->kind },
	    { "apiVersion", about->api_version }, { "namespace", about->namespace },
	    { "name", about->name }, { "uid", about->uid } };
	size_t i;
	int rc = -1;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	time_format_micro(now, 0, micro);
	buf_init(&body, 16384);
	buf_init(&path, 4096);
	buf_adds(&body, "{\"kind\":\"Event\",\"apiVersion\":\"v1\",\"metadata\":{\"generateName\":");
	buf_addc(&body, '"');
	buf_add(&body, about->name, strlen(about->name) > 200 ? 200 : strlen(about->name));
	buf_adds(&body, ".\",\"namespace\":");
	buf_add_json_string(&body, about->namespace);
	buf_adds(&body, "},\"involvedObject\":");
	for (i = 0; i < sizeof(involved) / sizeof(involved[0]); i++) {
		buf_addc(&body, i == 0 ? '{' : ',');
		buf_add_json_string(&body, involved[i][0]);
		buf_addc(&body, ':');
		buf_add_json_string(&body, involved[i][1]);
	}
	buf_adds(&body, "},\"reason\":");
	buf_add_json_string(&body, reason);
	buf_adds(&body, ",\"message\":");
	buf_add_json_string(&body, message);
	buf_addf(&body, ",\"source\":{\"component\":\"pipewarden-janitor\"},"
	    "\"firstTimestamp\":\"%s\",\"lastTimestamp\":\"%s\",\"count\":1,"
	    "\"type\":\"%s\",\"reportingComponent\":\"pipewarden-janitor\","
	    "\"reportingInstance\":\"pipewarden-janitor\",\"action\":\"%s\","
	    "\"eventTime\":\"%s\"}", ts, ts, type, action, micro);
	buf_adds(&path, "/api/v1/namespaces/");
	http_escape(&path, about->namespace);
	buf_adds(&path, "/events");
	if (body.failed || path.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, "POST", path.data, body.data, &r, err, errlen) == 0) {
		if (r.status == 201 || r.status == 200)
			rc = 0;
		else
			status_error(&r, "create event", err, errlen);
	}
	http_response_release(&r);
	buf_release(&path);
	buf_release(&body);
	return rc;
}

/* ---- pod annotations -------------------------------------------------------- */

enum kube_delete_result
kube_annotate(struct kube *k, const struct pod_info *pod, const char *const *keys,
    const char *const *values, size_t n, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	enum kube_delete_result res = KUBE_FAILED;
	struct buf path, body;
	size_t i;

	buf_init(&path, 4096);
	buf_init(&body, 65536);
	object_path(&path, "/api/v1", pod->namespace, "pods", pod->name);
	/* A JSON merge patch of the annotations alone; the uid in it is a
	 * precondition (a pod replaced under the same name answers 409). */
	buf_adds(&body, "{\"metadata\":{\"uid\":");
	buf_add_json_string(&body, pod->uid);
	buf_adds(&body, ",\"annotations\":{");
	for (i = 0; i < n; i++) {
		buf_adds(&body, i > 0 ? "," : "");
		buf_add_json_string(&body, keys[i]);
		buf_addc(&body, ':');
		if (values[i] != NULL)
			buf_add_json_string(&body, values[i]);
		else
			buf_adds(&body, "null");	/* merge patch: remove */
	}
	buf_adds(&body, "}}}");
	if (path.failed || body.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, "PATCH", path.data, body.data, &r, err, errlen) == 0) {
		res = write_result(&r, "annotate pod", err, errlen);
	}
	http_response_release(&r);
	buf_release(&body);
	buf_release(&path);
	return res;
}

enum kube_delete_result
kube_annotate_pod(struct kube *k, const struct pod_info *pod, const struct job_ref *job,
    char *err, size_t errlen)
{
	const char *const keys[4] = { KUBE_ANN_REQUEST, KUBE_ANN_PIPELINE, KUBE_ANN_RUN,
	    KUBE_ANN_RUN_URL };
	const char *const values[4] = { job->request_id, job->pipeline, job->run,
	    job->run_url };

	return kube_annotate(k, pod, keys, values, 4, err, errlen);
}

/* ---- the Lease ---------------------------------------------------------- */

static void
lease_path(struct kube *k, const char *name, struct buf *b)
{
	buf_adds(b, "/apis/coordination.k8s.io/v1/namespaces/");
	http_escape(b, k->namespace);
	buf_adds(b, "/leases");
	if (name != NULL) {
		buf_addc(b, '/');
		http_escape(b, name);
	}
}

int
kube_get_lease(struct kube *k, const char *name, struct lease *l, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	int rc = -1;

	memset(l, 0, sizeof(*l));
	buf_init(&path, 4096);
	lease_path(k, name, &path);
	if (kube_call(k, "GET", path.data, NULL, &r, err, errlen) == -1)
		goto out;
	if (r.status == 404) {
		rc = 0;
		goto out;
	}
	if (r.status != 200) {
		status_error(&r, "get lease", err, errlen);
		goto out;
	}
	rc = kube_parse_lease(r.body.data, r.body.len, l, err, errlen);
out:
	http_response_release(&r);
	buf_release(&path);
	return rc;
}

int
kube_put_lease(struct kube *k, const char *name, const struct lease *l, char *err,
    size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path, body;
	char acquire[28], renew[28];
	int create = l->resource_version[0] == '\0', rc = -1;

	buf_init(&path, 4096);
	buf_init(&body, 4096);
	lease_path(k, create ? NULL : name, &path);
	time_format_micro(l->acquire, l->acquire_ns, acquire);
	time_format_micro(l->renew, l->renew_ns, renew);
	buf_adds(&body, "{\"kind\":\"Lease\",\"apiVersion\":\"coordination.k8s.io/v1\","
	    "\"metadata\":{\"name\":");
	buf_add_json_string(&body, name);
	buf_adds(&body, ",\"namespace\":");
	buf_add_json_string(&body, k->namespace);
	if (!create) {
		buf_adds(&body, ",\"resourceVersion\":");
		buf_add_json_string(&body, l->resource_version);
	}
	buf_adds(&body, "},\"spec\":{\"holderIdentity\":");
	buf_add_json_string(&body, l->holder);
	buf_addf(&body, ",\"leaseDurationSeconds\":%lld,\"acquireTime\":\"%s\","
	    "\"renewTime\":\"%s\",\"leaseTransitions\":%lld}}", l->duration, acquire,
	    renew, l->transitions);
	if (body.failed) {
		snprintf(err, errlen, "out of memory");
	} else if (kube_call(k, create ? "POST" : "PUT", path.data, body.data, &r, err,
	    errlen) == 0) {
		if (r.status == 200 || r.status == 201)
			rc = 0;
		else if (r.status == 409)
			rc = 1;
		else
			status_error(&r, create ? "create lease" : "update lease", err, errlen);
	}
	http_response_release(&r);
	buf_release(&body);
	buf_release(&path);
	return rc;
}
