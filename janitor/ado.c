#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/array.h"
#include "../common/jsonscan.h"
#include "../common/log.h"
#include "../common/timefmt.h"
#include "ado.h"

static const char *
str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The "value" array of a {"count":N,"value":[...]} collection. */
static const cJSON *
collection(const cJSON *root)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "value");

	return cJSON_IsObject(root) && cJSON_IsArray(v) ? v : NULL;
}

/* What a busy agent runs (fixture facts 8: TaskAgentJobRequest's requestId,
 * definition and owner, each {_links, id, name}).  request_id is written
 * into idbuf. */
static void
parse_job(const cJSON *req, struct job_ref *job, char idbuf[32])
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(req, "requestId");
	const cJSON *owner = cJSON_GetObjectItemCaseSensitive(req, "owner");
	const cJSON *links = cJSON_GetObjectItemCaseSensitive(owner, "_links");

	memset(job, 0, sizeof(*job));
	if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble < 9007199254740992.0) {
		snprintf(idbuf, 32, "%lld", (long long)id->valuedouble);
		job->request_id = idbuf;
	}
	job->pipeline = str(cJSON_GetObjectItemCaseSensitive(req, "definition"), "name");
	job->run = str(owner, "name");
	job->run_url = str(cJSON_GetObjectItemCaseSensitive(links, "web"), "href");
}

static int
parse_agent(const cJSON *a, struct agent_info *ag, char idbuf[32], char *err, size_t errlen)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
	const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(a, "enabled");
	const cJSON *caps = cJSON_GetObjectItemCaseSensitive(a, "systemCapabilities");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(a, "assignedRequest");
	const cJSON *last = cJSON_GetObjectItemCaseSensitive(a, "lastCompletedRequest");
	const char *status = str(a, "status"), *changed = str(a, "statusChangedOn");
	const char *managed;

	memset(ag, 0, sizeof(*ag));
	if (!cJSON_IsNumber(id) || (ag->name = str(a, "name")) == NULL ||
	    status == NULL || time_parse(str(a, "createdOn"), &ag->created, NULL) == -1) {
		snprintf(err, errlen, "an agent lacks id, name, status or createdOn");
		return -1;
	}
	/* An int32 on the wire; anything else is not an agent id. */
	if (id->valuedouble < 0 || id->valuedouble > 2147483647.0 ||
	    id->valuedouble != (double)(long long)id->valuedouble) {
		snprintf(err, errlen, "an agent has an id that is not an int32");
		return -1;
	}
	ag->id = (long long)id->valuedouble;
	ag->online = strcmp(status, "online") == 0;
	/* enabled is omitted when false (EmitDefaultValue=false). */
	ag->enabled = cJSON_IsTrue(enabled);
	ag->busy = req != NULL && !cJSON_IsNull(req);
	if (ag->busy) {
		parse_job(req, &ag->job, idbuf);
		if (str(req, "assignTime") != NULL &&
		    time_parse(str(req, "assignTime"), &ag->assigned, NULL) == -1) {
			snprintf(err, errlen, "agent %lld: assignTime '%.40s' is not a time",
			    ag->id, str(req, "assignTime"));
			return -1;
		}
	}
	if (str(last, "finishTime") != NULL &&
	    time_parse(str(last, "finishTime"), &ag->last_finished, NULL) == -1) {
		snprintf(err, errlen, "agent %lld: lastCompletedRequest.finishTime '%.40s' is not "
		    "a time", ag->id, str(last, "finishTime"));
		return -1;
	}
	if (changed != NULL && time_parse(changed, &ag->status_changed, NULL) == -1) {
		snprintf(err, errlen, "agent %lld: statusChangedOn '%.40s' is not a time",
		    ag->id, changed);
		return -1;
	}
	managed = str(caps, "PIPEWARDEN_MANAGED");
	ag->managed = managed != NULL && strcmp(managed, "true") == 0;
	ag->pod_uid = str(caps, "PIPEWARDEN_POD_UID");
	if (ag->pod_uid != NULL && ag->pod_uid[0] == '\0')
		ag->pod_uid = NULL;
	return 0;
}

struct agents_scan {
	struct agent_list	*l;
	char			*err;
	size_t			 errlen;
	int			 found;
};

/* One agent: parse its own small tree, keep what the plan needs. */
static int
scan_agent(const char *text, size_t len, void *cls)
{
	struct agents_scan *sc = cls;
	struct agent_list *l = sc->l;
	struct agent_info ag;
	char idbuf[32];
	cJSON *a;
	int rc = -1;

	if ((a = cJSON_ParseWithLength(text, len)) == NULL) {
		snprintf(sc->err, sc->errlen, "agents list: an agent is not valid JSON");
		return -1;
	}
	if (parse_agent(a, &ag, idbuf, sc->err, sc->errlen) == -1)
		goto out;
	if (array_grow(&l->agents, &l->cap, l->n, sizeof(*l->agents), 256) == -1)
		goto nomem;
	if ((ag.name = strpool_add(&l->strings, ag.name)) == NULL ||
	    (ag.pod_uid != NULL && (ag.pod_uid = strpool_add(&l->strings, ag.pod_uid)) == NULL) ||
	    plan_job_ref_keep(&l->strings, &ag.job) == -1)
		goto nomem;
	l->agents[l->n++] = ag;
	rc = 0;
	goto out;
nomem:
	snprintf(sc->err, sc->errlen, "out of memory");
out:
	cJSON_Delete(a);
	return rc;
}

static int
scan_collection(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct agents_scan *sc = cls;

	if (keylen != 5 || memcmp(key, "value", 5) != 0)
		return 0;
	sc->found = 1;
	return jsonscan_array(value, len, scan_agent, sc);
}

int
ado_parse_agent(const char *body, size_t len, struct agent_list *out, char *err,
    size_t errlen)
{
	struct agents_scan sc = { out, err, errlen, 1 };

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (scan_agent(body, len, &sc) == -1) {
		agent_list_release(out);
		return -1;
	}
	return 0;
}

int
ado_parse_agents(const char *body, size_t len, struct agent_list *out, char *err,
    size_t errlen)
{
	struct agents_scan sc = { out, err, errlen, 0 };

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (jsonscan_object(body, len, scan_collection, &sc) == -1 || !sc.found) {
		if (err[0] == '\0')
			snprintf(err, errlen, "agents list: not the JSON collection asked for");
		agent_list_release(out);
		return -1;
	}
	return 0;
}

void
agent_list_release(struct agent_list *l)
{
	strpool_release(&l->strings);
	free(l->agents);
	memset(l, 0, sizeof(*l));
}

/* One job request's time member (0 when absent); -1 when not a time. */
static int
request_time(const cJSON *req, const char *key, time_t *t, char *err, size_t errlen)
{
	const char *v = str(req, key);

	*t = 0;
	if (v == NULL)
		return 0;
	if (time_parse(v, t, NULL) == -1) {
		snprintf(err, errlen, "job requests: %s '%.40s' is not a time", key, v);
		return -1;
	}
	return 0;
}

struct requests_scan {
	struct request_list	*l;
	char			*err;
	size_t			 errlen;
	int			 found;
};

static int
scan_request(const char *text, size_t len, void *cls)
{
	struct requests_scan *sc = cls;
	struct request_list *l = sc->l;
	struct job_request r;
	const cJSON *id, *agent_id;
	cJSON *req;
	int rc = -1;

	if ((req = cJSON_ParseWithLength(text, len)) == NULL) {
		snprintf(sc->err, sc->errlen, "job requests: an item is not valid JSON");
		return -1;
	}
	memset(&r, 0, sizeof(r));
	id = cJSON_GetObjectItemCaseSensitive(req, "requestId");
	agent_id = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(req, "reservedAgent"), "id");
	if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= 9007199254740992.0) {
		snprintf(sc->err, sc->errlen, "job requests: a request has no requestId");
		goto out;
	}
	r.id = (long long)id->valuedouble;
	r.agent_id = cJSON_IsNumber(agent_id) ? (long long)agent_id->valuedouble : 0;
	if (request_time(req, "queueTime", &r.queued, sc->err, sc->errlen) == -1 ||
	    request_time(req, "assignTime", &r.assigned, sc->err, sc->errlen) == -1 ||
	    request_time(req, "receiveTime", &r.received, sc->err, sc->errlen) == -1 ||
	    request_time(req, "finishTime", &r.finished, sc->err, sc->errlen) == -1)
		goto out;
	r.result = str(req, "result");
	r.pipeline = str(cJSON_GetObjectItemCaseSensitive(req, "definition"), "name");
	if (array_grow(&l->items, &l->cap, l->n, sizeof(*l->items), 64) == -1 ||
	    (r.result != NULL && (r.result = strpool_add(&l->strings, r.result)) == NULL) ||
	    (r.pipeline != NULL && (r.pipeline = strpool_add(&l->strings, r.pipeline)) == NULL)) {
		snprintf(sc->err, sc->errlen, "out of memory");
		goto out;
	}
	l->items[l->n++] = r;
	rc = 0;
out:
	cJSON_Delete(req);
	return rc;
}

static int
scan_requests(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct requests_scan *sc = cls;

	if (keylen != 5 || memcmp(key, "value", 5) != 0)
		return 0;
	sc->found = 1;
	return jsonscan_array(value, len, scan_request, sc);
}

int
ado_parse_job_requests(const char *body, size_t len, struct request_list *out, char *err,
    size_t errlen)
{
	struct requests_scan sc = { out, err, errlen, 0 };

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (jsonscan_object(body, len, scan_requests, &sc) == -1 || !sc.found) {
		if (err[0] == '\0')
			snprintf(err, errlen, "job requests: not the JSON collection asked for");
		request_list_release(out);
		return -1;
	}
	return 0;
}

long long
ado_parse_pool_id(const char *body, size_t len, const char *name, char *spelled,
    size_t spelledlen, char *err, size_t errlen)
{
	const cJSON *value, *p, *id;
	long long found = -1;
	int matches = 0;
	cJSON *root;

	if ((root = cJSON_ParseWithLength(body, len)) == NULL ||
	    (value = collection(root)) == NULL) {
		snprintf(err, errlen, "pools list: not the JSON collection asked for");
		cJSON_Delete(root);
		return -1;
	}
	/* Compare names here, without regard to case as the server filters
	 * them (its other rules, such as prefixes, are not documented). */
	cJSON_ArrayForEach(p, value) {
		const char *n = str(p, "name");
		id = cJSON_GetObjectItemCaseSensitive(p, "id");
		if (n != NULL && strcasecmp(n, name) == 0 && cJSON_IsNumber(id) &&
		    id->valuedouble > 0 && id->valuedouble <= 2147483647.0) {
			matches++;
			found = (long long)id->valuedouble;
			snprintf(spelled, spelledlen, "%s", n);
		}
	}
	cJSON_Delete(root);
	if (matches != 1) {
		snprintf(err, errlen, matches == 0 ? "no agent pool named '%s' (check "
		    "'pools' in the config and the identity's access to the pool)" :
		    "more than one agent pool named '%s'", name);
		return -1;
	}
	return found;
}

/* ---- the client --------------------------------------------------------- */

#include <math.h>
#include <time.h>

#include "../common/buf.h"

#define ADO_TIMEOUT_MS	30000

#define ENTRA_PUBLIC	"https://login.microsoftonline.com/"

const char *
ado_error_name(enum ado_error e)
{
	switch (e) {
	case ADO_ERR_NONE:		return "none";
	case ADO_ERR_AUTH:		return "auth";
	case ADO_ERR_NOT_FOUND:		return "not-found";
	case ADO_ERR_THROTTLED:		return "throttled";
	case ADO_ERR_UNAVAILABLE:	return "unavailable";
	case ADO_ERR_TIMEOUT:		return "timeout";
	case ADO_ERR_MALFORMED:		return "malformed";
	case ADO_ERR_API_VERSION:	return "api-version";
	}
	return "unknown";
}

int
ado_init(struct ado *a, const char *ca_file)
{
	memset(a, 0, sizeof(*a));
	snprintf(a->api_version, sizeof(a->api_version), "7.1");
	a->max_attempts = 4;
	a->backoff_base = 0.5;
	if ((a->http = http_client_new(ca_file, ADO_TIMEOUT_MS)) == NULL)
		return -1;
	return 0;
}

/* Whether two optional strings differ. */
static int
differ(const char *x, const char *y)
{
	return strcmp(x != NULL ? x : "", y != NULL ? y : "") != 0;
}

int
ado_configure(struct ado *a, const char *org_url, const char *client_id,
    const char *tenant_id, const char *authority)
{
	char *org, *cid, *tid, *auth;
	size_t n;

	if (authority == NULL || authority[0] == '\0')
		authority = ENTRA_PUBLIC;
	org = strdup(org_url);
	cid = strdup(client_id != NULL ? client_id : "");
	tid = strdup(tenant_id != NULL ? tenant_id : "");
	auth = strdup(authority);
	if (org == NULL || cid == NULL || tid == NULL || auth == NULL) {
		free(org);
		free(cid);
		free(tid);
		free(auth);
		return -1;
	}
	for (n = strlen(org); n > 0 && org[n - 1] == '/'; n--)
		org[n - 1] = '\0';
	/* A token of another identity (or authority) must not be used. */
	if (differ(cid, a->client_id) || differ(tid, a->tenant_id) ||
	    differ(auth, a->authority)) {
		secret_release(&a->bearer);
		a->bearer_expiry = 0;
	}
	free(a->org_url);
	free(a->client_id);
	free(a->tenant_id);
	free(a->authority);
	a->org_url = org;
	a->client_id = cid;
	a->tenant_id = tid;
	a->authority = auth;
	return 0;
}

void
ado_set_api_version(struct ado *a, const char *version)
{
	snprintf(a->api_version, sizeof(a->api_version), "%s", version);
}

void
ado_set_deadline(struct ado *a, double deadline)
{
	a->deadline = deadline;
	http_client_set_deadline(a->http, deadline);
}

void
ado_release(struct ado *a)
{
	http_client_free(a->http);
	secret_release(&a->bearer);
	free(a->org_url);
	free(a->client_id);
	free(a->tenant_id);
	free(a->authority);
	a->http = NULL;
	a->org_url = a->client_id = a->tenant_id = a->authority = NULL;
}

/* Wait before a retry, within the deadline.  Return -1 when stopping or
 * when the wait would end past the deadline (a->last_error says which). */
static int
ado_wait(struct ado *a, double seconds)
{
	if (seconds <= 0)
		return 0;
	if (seconds > 300)
		seconds = 300;
	if (a->deadline > 0 && http_now() + seconds >= a->deadline) {
		a->last_error = ADO_ERR_TIMEOUT;
		return -1;
	}
	if (a->wait != NULL && a->wait(a->wait_cls, seconds) == -1) {
		a->last_error = ADO_ERR_TIMEOUT;
		return -1;
	}
	return 0;
}

/* Capped, jittered exponential backoff before attempt n (n >= 1). */
static double
backoff(const struct ado *a, int n)
{
	double d = a->backoff_base * pow(2, n - 1);

	if (d > 8)
		d = 8;
	return d * (0.5 + (double)rand() / RAND_MAX);
}

static void
count(struct ado *a, long status)
{
	char code[16];

	if (status == 0)
		snprintf(code, sizeof(code), "error");
	else
		snprintf(code, sizeof(code), "%ld", status);
	metrics_add(a->m_requests, 1, code);
}

static void
form_field(struct buf *b, const char *key, const char *value)
{
	if (b->len > 0)
		buf_addc(b, '&');
	buf_adds(b, key);
	buf_addc(b, '=');
	http_escape(b, value);
}

/* The token request: Entra's endpoint for the tenant, and the form with
 * the federated assertion (the projected token, re-read each time: kubelet
 * rotates it).  Return 0, or -1 with a message. */
static int
entra_request(struct ado *a, struct buf *url, struct buf *form, char *err, size_t errlen)
{
	struct secret assertion = { NULL, 0 };

	if (a->token_file == NULL || secret_load(&assertion, a->token_file) == -1) {
		snprintf(err, errlen, "workload identity: cannot read the federated token "
		    "file '%s' (AZURE_FEDERATED_TOKEN_FILE)", a->token_file ? a->token_file : "");
		return -1;
	}
	if (a->client_id == NULL || a->client_id[0] == '\0' || a->tenant_id == NULL ||
	    a->tenant_id[0] == '\0') {
		snprintf(err, errlen, "workload identity: the janitor has no client id or "
		    "tenant id of its own (config janitor.identity.clientId/tenantId, or "
		    "AZURE_CLIENT_ID/AZURE_TENANT_ID on its pod)");
		secret_release(&assertion);
		return -1;
	}
	buf_addf(url, "%s%s%s/oauth2/v2.0/token", a->authority,
	    a->authority[0] != '\0' && a->authority[strlen(a->authority) - 1] == '/' ? "" : "/",
	    a->tenant_id);
	form_field(form, "client_id", a->client_id);
	form_field(form, "scope", ADO_RESOURCE "/.default");
	form_field(form, "client_assertion_type",
	    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	form_field(form, "client_assertion", secret_bytes(&assertion));
	form_field(form, "grant_type", "client_credentials");
	secret_release(&assertion);
	return 0;
}

/* POST the request, retrying 429 and 5xx within the deadline.  Return 0
 * with Entra's answer in r, or -1 (a->last_error and err say why). */
static int
entra_post(struct ado *a, const struct buf *url, const struct buf *form,
    struct http_response *r, char *err, size_t errlen)
{
	static const char *const headers[] = {
	    "Content-Type: application/x-www-form-urlencoded",
	    "Accept: application/json", NULL };
	int attempt;

	for (attempt = 0; attempt < a->max_attempts; attempt++) {
		if (attempt > 0 && ado_wait(a, r->retry_after > 0 ? r->retry_after :
		    backoff(a, attempt)) == -1) {
			snprintf(err, errlen, "workload identity: Entra token request: "
			    "stopping, or its time budget is spent");
			return -1;
		}
		http_response_release(r);
		if (http_request(a->http, "POST", url->data, headers, NULL, form->data,
		    form->len, r, err, errlen) == -1)
			continue;
		if (r->status != 429 && r->status < 500)
			return 0;
	}
	a->last_error = r->status == 429 ? ADO_ERR_THROTTLED : ADO_ERR_UNAVAILABLE;
	if (r->status != 0)
		snprintf(err, errlen, "workload identity: Entra token endpoint answered "
		    "HTTP %ld", r->status);
	return -1;
}

/* Keep the token of Entra's answer, until shortly before it expires.
 * Return 0, or -1 with a message (a refusal, or no token in it). */
static int
entra_accept(struct ado *a, const struct http_response *r, time_t now, char *err,
    size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(r->body.data, r->body.len);
	const cJSON *tok, *exp;
	double expires;
	int rc = -1;

	a->last_error = ADO_ERR_AUTH;
	if (r->status != 200) {
		const char *e = str(root, "error"), *d = str(root, "error_description");
		snprintf(err, errlen, "workload identity: Entra refused the token "
		    "exchange: HTTP %ld %s: %.200s", r->status, e ? e : "",
		    d ? d : "(no description)");
		goto out;
	}
	tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
	exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in");
	expires = cJSON_IsNumber(exp) ? exp->valuedouble :
	    cJSON_IsString(exp) ? strtod(exp->valuestring, NULL) : 0;
	if (!cJSON_IsString(tok) || tok->valuestring[0] == '\0' || expires <= 0) {
		snprintf(err, errlen, "workload identity: Entra's answer has no "
		    "access_token or expires_in");
		goto out;
	}
	if (secret_set(&a->bearer, tok->valuestring, strlen(tok->valuestring)) == -1) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Renew shortly before expiry: 5 minutes, or half a short lifetime. */
	a->bearer_expiry = now + (time_t)(expires > 600 ? expires - 300 : expires / 2);
	rc = 0;
out:
	if (root != NULL) {
		tok = cJSON_GetObjectItemCaseSensitive(root, "access_token");
		if (cJSON_IsString(tok))
			explicit_bzero(tok->valuestring, strlen(tok->valuestring));
	}
	cJSON_Delete(root);
	return rc;
}

/* Exchange the projected service-account token for an Entra token for
 * Azure DevOps, unless the cached one is still good.  Every copy of a
 * secret is wiped before it is freed. */
static int
entra_token(struct ado *a, time_t now, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf url, form;
	int rc = -1;

	if (a->bearer.bytes != NULL && now < a->bearer_expiry)
		return 0;
	buf_init(&url, 4096);
	buf_init(&form, 64 * 1024);
	if (entra_request(a, &url, &form, err, errlen) == 0 &&
	    entra_post(a, &url, &form, &r, err, errlen) == 0)
		rc = entra_accept(a, &r, now, err, errlen);
	if (r.body.data != NULL)
		explicit_bzero(r.body.data, r.body.len);
	http_response_release(&r);
	if (form.data != NULL)
		explicit_bzero(form.data, form.len);
	buf_release(&form);
	buf_release(&url);
	return rc;
}

/* The Authorization value: Basic for a PAT, Bearer for Entra. */
static int
authorization(struct ado *a, struct buf *auth, char *err, size_t errlen)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	struct secret pat = { NULL, 0 };
	struct buf raw;
	size_t i;

	if (a->pat_path == NULL) {
		if (entra_token(a, time(NULL), err, errlen) == -1)
			return -1;
		buf_adds(auth, "Bearer ");
		buf_adds(auth, secret_bytes(&a->bearer));
		return auth->failed ? -1 : 0;
	}
	if (secret_load(&pat, a->pat_path) == -1) {
		snprintf(err, errlen, "cannot read the PAT file '%s' (AZP_TOKEN_FILE)",
		    a->pat_path);
		return -1;
	}
	buf_init(&raw, 64 * 1024);
	buf_addc(&raw, ':');
	buf_add(&raw, pat.bytes, pat.len);
	buf_adds(auth, "Basic ");
	for (i = 0; i + 2 < raw.len; i += 3) {
		const unsigned char *p = (const unsigned char *)raw.data + i;
		char q[4] = { tab[p[0] >> 2], tab[((p[0] & 3) << 4) | (p[1] >> 4)],
		    tab[((p[1] & 15) << 2) | (p[2] >> 6)], tab[p[2] & 63] };
		buf_add(auth, q, 4);
	}
	if (i < raw.len) {
		const unsigned char *p = (const unsigned char *)raw.data + i;
		char q[4] = { tab[p[0] >> 2], '=', '=', '=' };
		q[1] = tab[((p[0] & 3) << 4) | (i + 1 < raw.len ? p[1] >> 4 : 0)];
		if (i + 1 < raw.len)
			q[2] = tab[(p[1] & 15) << 2];
		buf_add(auth, q, 4);
	}
	explicit_bzero(raw.data, raw.len);
	buf_release(&raw);
	secret_release(&pat);
	return auth->failed ? -1 : 0;
}

/*
 * One call with retries: 429 waits Retry-After, 5xx and transport errors
 * back off; a 2xx with Retry-After slows the next request down.  Returns 0
 * with the final answer in r (any status), or -1 with a message.
 */
static int
ado_call(struct ado *a, const char *method, const char *path, struct http_response *r,
    char *err, size_t errlen)
{
	static const char *const headers[] = { "Accept: application/json",
	    "X-TFS-FedAuthRedirect: Suppress", "User-Agent: pipewarden-janitor", NULL };
	struct buf url, auth;
	int attempt, rc = -1;
	double wait = 0;

	memset(r, 0, sizeof(*r));
	buf_init(&url, 16384);
	buf_init(&auth, 64 * 1024);
	buf_adds(&url, a->org_url);
	buf_adds(&url, path);
	buf_addf(&url, "%capi-version=%s", strchr(path, '?') != NULL ? '&' : '?',
	    a->api_version);
	a->last_error = ADO_ERR_UNAVAILABLE;
	for (attempt = 0; attempt < a->max_attempts; attempt++) {
		if (ado_wait(a, attempt > 0 ? wait : a->slow_down) == -1) {
			if (attempt > 0)	/* keep what the last attempt said */
				snprintf(err + strlen(err), errlen - strlen(err),
				    "; no retry: stopping, or the time budget is spent");
			else
				snprintf(err, errlen, "%s %s: not sent: stopping, or the "
				    "time budget is spent", method, path);
			goto out;
		}
		a->slow_down = 0;
		buf_reset(&auth);
		if (authorization(a, &auth, err, errlen) == -1) {
			if (a->last_error == ADO_ERR_UNAVAILABLE && a->pat_path != NULL)
				a->last_error = ADO_ERR_AUTH;	/* no PAT file */
			goto out;
		}
		http_response_release(r);
		a->requests++;
		if (http_request(a->http, method, url.data, headers, auth.data, NULL, 0, r,
		    err, errlen) == -1) {
			count(a, 0);
			a->last_error = a->deadline > 0 && http_now() >= a->deadline - 0.01 ?
			    ADO_ERR_TIMEOUT : ADO_ERR_UNAVAILABLE;
			wait = backoff(a, attempt + 1);
			continue;
		}
		count(a, r->status);
		if (r->status == 429) {
			a->last_error = ADO_ERR_THROTTLED;
			wait = r->retry_after >= 0 ? r->retry_after : backoff(a, attempt + 1);
			snprintf(err, errlen, "%s %s: throttled (HTTP 429)", method, path);
			continue;
		}
		if (r->status >= 500) {
			a->last_error = ADO_ERR_UNAVAILABLE;
			wait = backoff(a, attempt + 1);
			snprintf(err, errlen, "%s %s: HTTP %ld", method, path, r->status);
			continue;
		}
		if (r->retry_after > 0)
			a->slow_down = r->retry_after;
		/* A 401 may mean a revoked or rotated token: get a new one. */
		if (r->status == 401) {
			secret_release(&a->bearer);
			a->bearer_expiry = 0;
		}
		a->last_error = ADO_ERR_NONE;
		rc = 0;
		break;
	}
out:
	if (auth.data != NULL)
		explicit_bzero(auth.data, auth.len);
	buf_release(&auth);
	buf_release(&url);
	return rc;
}

/*
 * A 400 saying the api-version is out of the server's range (Azure DevOps
 * Server 2022 serves up to 7.0, 2020 up to 6.0): a configuration error,
 * whose message names the key and the version the server offers.  Return 1
 * when it was that (err and last_error set), else 0.
 */
static int
version_refused(struct ado *a, const struct http_response *r, const char *what, char *err,
    size_t errlen)
{
	static const char latest[] = "supports is ";
	const char *msg, *type, *v;
	cJSON *root;
	int refused;

	if (r->status != 400)
		return 0;
	root = cJSON_ParseWithLength(r->body.data, r->body.len);
	msg = str(root, "message");
	type = str(root, "typeKey");
	refused = (type != NULL && strcmp(type, "VssVersionOutOfRangeException") == 0) ||
	    (msg != NULL && strstr(msg, "is out of range for this server") != NULL);
	if (refused) {
		v = msg != NULL ? strstr(msg, latest) : NULL;
		snprintf(err, errlen, "%s: the server does not serve api-version %s (config "
		    "'janitor.apiVersion'); %s%.*s", what, a->api_version,
		    v != NULL ? "it serves up to " : "see its REST API version",
		    v != NULL ? (int)strspn(v + sizeof(latest) - 1, "0123456789.-preview") : 0,
		    v != NULL ? v + sizeof(latest) - 1 : "");
		a->last_error = ADO_ERR_API_VERSION;
	}
	cJSON_Delete(root);
	return refused;
}

/* A 2xx answer that is not the JSON asked for, or 401/403: authentication. */
static int
auth_failure(struct ado *a, const struct http_response *r, const char *what, char *err,
    size_t errlen)
{
	if (r->status == 203 || ((r->status / 100) == 2 && r->status != 204 &&
	    !http_is_json(r))) {
		snprintf(err, errlen, "%s: authentication failed: Azure DevOps answered "
		    "HTTP %ld with %s instead of JSON (a sign-in page: the PAT or token is "
		    "invalid, expired or lacks the Agent Pools scope)", what, r->status,
		    r->content_type[0] ? r->content_type : "no content type");
		a->last_error = ADO_ERR_AUTH;
		return 1;
	}
	if (r->status == 401 || r->status == 403) {
		snprintf(err, errlen, "%s: authentication failed: HTTP %ld%s", what,
		    r->status, strstr(r->body.data ? r->body.data : "", "TF400813") ?
		    " TF400813 (not authorized: check the PAT's scope or the identity's "
		    "access to the organization)" : "");
		a->last_error = ADO_ERR_AUTH;
		return 1;
	}
	return 0;
}

long long
ado_pool_id(struct ado *a, const char *name, char *err, size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	long long id = -1;
	char spelled[256];

	buf_init(&path, 4096);
	buf_adds(&path, "/_apis/distributedtask/pools?poolName=");
	http_escape(&path, name);
	spelled[0] = '\0';
	if (ado_call(a, "GET", path.data, &r, err, errlen) == 0 &&
	    !auth_failure(a, &r, "pool lookup", err, errlen) &&
	    !version_refused(a, &r, "pool lookup", err, errlen)) {
		if (r.status == 200) {
			id = ado_parse_pool_id(r.body.data, r.body.len, name, spelled,
			    sizeof(spelled), err, errlen);
			if (id == -1)
				a->last_error = strncmp(err, "no agent pool", 13) == 0 ?
				    ADO_ERR_NOT_FOUND : ADO_ERR_MALFORMED;
			else if (strcmp(spelled, name) != 0)
				log_info("the pool's name is spelled otherwise in Azure DevOps",
				    "pool", name, "serverName", spelled, NULL);
		} else {
			snprintf(err, errlen, "pool lookup: HTTP %ld", r.status);
			a->last_error = ADO_ERR_MALFORMED;
		}
	}
	http_response_release(&r);
	buf_release(&path);
	return id;
}

/* The includes of every agents read: capabilities (PIPEWARDEN_POD_UID),
 * the assigned request (a busy agent) and the last completed one (since
 * when an agent is idle); never demands, whose path ignores them. */
#define AGENT_INCLUDES	"includeCapabilities=true&includeAssignedRequest=true" \
			"&includeLastCompletedRequest=true"

int
ado_list_agents(struct ado *a, long long pool_id, struct agent_list *out, char *err,
    size_t errlen)
{
	struct http_response r = { 0 };
	struct buf path;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	buf_init(&path, 4096);
	buf_addf(&path, "/_apis/distributedtask/pools/%lld/agents?" AGENT_INCLUDES, pool_id);
	if (ado_call(a, "GET", path.data, &r, err, errlen) == 0 &&
	    !auth_failure(a, &r, "agents list", err, errlen) &&
	    !version_refused(a, &r, "agents list", err, errlen)) {
		if (r.status == 200) {
			if ((rc = ado_parse_agents(r.body.data, r.body.len, out, err, errlen)) == -1)
				a->last_error = ADO_ERR_MALFORMED;
		} else {
			snprintf(err, errlen, "agents list: HTTP %ld%s", r.status, r.status == 404 ?
			    " (the pool was deleted, or recreated under a new id)" : "");
			a->last_error = r.status == 404 ? ADO_ERR_NOT_FOUND : ADO_ERR_MALFORMED;
		}
	}
	http_response_release(&r);
	buf_release(&path);
	return rc;
}

int
ado_get_agent(struct ado *a, long long pool_id, long long agent_id, struct agent_list *out,
    char *err, size_t errlen)
{
	struct http_response r = { 0 };
	char path[192];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/_apis/distributedtask/pools/%lld/agents/%lld?"
	    AGENT_INCLUDES, pool_id, agent_id);
	if (ado_call(a, "GET", path, &r, err, errlen) == 0 &&
	    !auth_failure(a, &r, "agent read", err, errlen) &&
	    !version_refused(a, &r, "agent read", err, errlen)) {
		if (r.status == 200) {
			if (ado_parse_agent(r.body.data, r.body.len, out, err, errlen) == 0)
				rc = 1;
			else
				a->last_error = ADO_ERR_MALFORMED;
		} else if (r.status == 404) {
			rc = 0;
		} else {
			snprintf(err, errlen, "agent read: HTTP %ld", r.status);
			a->last_error = ADO_ERR_MALFORMED;
		}
	}
	http_response_release(&r);
	return rc;
}

int
ado_list_job_requests(struct ado *a, long long pool_id, struct request_list *out, char *err,
    size_t errlen)
{
	struct http_response r = { 0 };
	char path[128];
	int rc = -1;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "/_apis/distributedtask/pools/%lld/jobrequests?$top=250",
	    pool_id);
	if (ado_call(a, "GET", path, &r, err, errlen) == 0 &&
	    !auth_failure(a, &r, "job requests", err, errlen) &&
	    !version_refused(a, &r, "job requests", err, errlen)) {
		if (r.status == 200) {
			if ((rc = ado_parse_job_requests(r.body.data, r.body.len, out, err,
			    errlen)) == -1)
				a->last_error = ADO_ERR_MALFORMED;
		} else {
			snprintf(err, errlen, "job requests: HTTP %ld", r.status);
			a->last_error = r.status == 404 ? ADO_ERR_NOT_FOUND : ADO_ERR_MALFORMED;
		}
	}
	http_response_release(&r);
	return rc;
}

enum ado_delete_result
ado_delete_agent(struct ado *a, long long pool_id, long long agent_id, char *err,
    size_t errlen)
{
	struct http_response r = { 0 };
	enum ado_delete_result res = ADO_FAILED;
	char path[160];
	cJSON *root;

	snprintf(path, sizeof(path), "/_apis/distributedtask/pools/%lld/agents/%lld",
	    pool_id, agent_id);
	if (ado_call(a, "DELETE", path, &r, err, errlen) == 0) {
		if (r.status == 200 || r.status == 204)
			res = ADO_DELETED;
		else if (r.status == 404)
			res = ADO_GONE;
		else if (r.status == 400) {
			/* Match the type, never the text (fixtures README). */
			root = cJSON_ParseWithLength(r.body.data, r.body.len);
			if (str(root, "typeKey") != NULL &&
			    strcmp(str(root, "typeKey"), "TaskAgentJobStillRunningException") == 0)
				res = ADO_BUSY;
			else if (!version_refused(a, &r, "delete agent", err, errlen))
				snprintf(err, errlen, "delete agent %lld: HTTP 400", agent_id);
			cJSON_Delete(root);
		} else if (!auth_failure(a, &r, "delete agent", err, errlen)) {
			snprintf(err, errlen, "delete agent %lld: HTTP %ld", agent_id, r.status);
		}
	}
	http_response_release(&r);
	return res;
}
