#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "file.h"
#include "names.h"

/* Parsing state: the error message, set once (the first error wins). */
struct parser {
	char	*err;
	size_t	 errlen;
	int	 failed;
};

static void fail(struct parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;

	if (p->failed)
		return;
	p->failed = 1;
	va_start(ap, fmt);
	vsnprintf(p->err, p->errlen, fmt, ap);
	va_end(ap);
}

/* Reject keys of obj that are not in allowed (a NULL-terminated list). */
static void
check_keys(struct parser *p, const cJSON *obj, const char *where,
    const char *const *allowed)
{
	const cJSON *item, *prev;
	size_t i;

	cJSON_ArrayForEach(item, obj) {
		for (prev = obj->child; prev != item; prev = prev->next)
			if (strcmp(prev->string, item->string) == 0)
				fail(p, "config: duplicate key '%s%s%s'", where,
				    *where ? "." : "", item->string);
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(item->string, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			fail(p, "config: unknown key '%s%s%s'", where,
			    *where ? "." : "", item->string);
	}
}

static char *
xstrdup(struct parser *p, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fail(p, "config: out of memory");
	return d;
}

static char *
get_string(struct parser *p, const cJSON *obj, const char *key,
    const char *where, const char *def)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL || cJSON_IsNull(item))
		return def != NULL ? xstrdup(p, def) : NULL;
	if (!cJSON_IsString(item)) {
		fail(p, "config: '%s%s': expected a string", where, key);
		return NULL;
	}
	return xstrdup(p, item->valuestring);
}

static int
get_bool(struct parser *p, const cJSON *obj, const char *key,
    const char *where, int def)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL || cJSON_IsNull(item))
		return def;
	if (!cJSON_IsBool(item)) {
		fail(p, "config: '%s%s': expected true or false", where, key);
		return def;
	}
	return cJSON_IsTrue(item);
}

static long long
get_int(struct parser *p, const cJSON *obj, const char *key,
    const char *where, long long def, long long min, long long max)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
	double v;

	if (item == NULL || cJSON_IsNull(item))
		return def;
	v = item->valuedouble;
	if (!cJSON_IsNumber(item) || v != floor(v) || v < (double)min ||
	    v > (double)max) {
		fail(p, "config: '%s%s': expected a whole number from %lld to %lld",
		    where, key, min, max);
		return def;
	}
	return (long long)v;
}

static const cJSON *
get_object(struct parser *p, const cJSON *obj, const char *key, const char *where)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL || cJSON_IsNull(item))
		return NULL;
	if (!cJSON_IsObject(item)) {
		fail(p, "config: '%s%s': expected an object", where, key);
		return NULL;
	}
	return item;
}

static const cJSON *
get_array(struct parser *p, const cJSON *obj, const char *key, const char *where)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (item == NULL || cJSON_IsNull(item))
		return NULL;
	if (!cJSON_IsArray(item)) {
		fail(p, "config: '%s%s': expected an array", where, key);
		return NULL;
	}
	return item;
}

/* A list of non-empty strings; *np is its length. */
static char **
get_string_list(struct parser *p, const cJSON *arr, const char *name, size_t *np)
{
	const cJSON *item;
	char **list;
	size_t n = 0;

	*np = 0;
	if ((list = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(*list))) == NULL) {
		fail(p, "config: out of memory");
		return NULL;
	}
	cJSON_ArrayForEach(item, arr) {
		if (!cJSON_IsString(item) || item->valuestring[0] == '\0') {
			fail(p, "config: '%s[%zu]': expected a non-empty string", name, n);
			break;
		}
		if ((list[n] = xstrdup(p, item->valuestring)) == NULL)
			break;
		n++;
	}
	*np = n;
	return list;
}

static void
free_string_list(char **list, size_t n)
{
	size_t i;

	if (list == NULL)
		return;
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

static void
parse_resources(struct parser *p, const cJSON *obj, const char *where,
    struct resource_list *out)
{
	const cJSON *item;
	size_t n = 0;

	out->n = 0;
	out->items = NULL;
	if (obj == NULL)
		return;
	if ((out->items = calloc((size_t)cJSON_GetArraySize(obj) + 1,
	    sizeof(*out->items))) == NULL) {
		fail(p, "config: out of memory");
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		struct resource *r = &out->items[n];

		if (!cJSON_IsString(item) ||
		    quantity_parse(item->valuestring, &r->q) == -1) {
			fail(p, "config: '%s.%s': expected a quantity such as \"500m\" "
			    "or \"2Gi\"", where, item->string);
			break;
		}
		if (r->q.nano < 0) {
			fail(p, "config: '%s.%s': must not be negative", where,
			    item->string);
			break;
		}
		r->name = xstrdup(p, item->string);
		r->text = xstrdup(p, item->valuestring);
		n++;
		out->n = n;
		if (r->name == NULL || r->text == NULL)
			break;
	}
}

const struct resource *
config_resource(const struct resource_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->items[i].name, name) == 0)
			return &l->items[i];
	return NULL;
}

/* Every value of lo must not exceed the same resource in hi. */
static void
check_order(struct parser *p, const struct profile *pr, const struct resource_list *lo,
    const char *loname, const struct resource_list *hi, const char *hiname)
{
	const struct resource *h;
	size_t i;

	for (i = 0; i < lo->n; i++) {
		h = config_resource(hi, lo->items[i].name);
		if (h != NULL && quantity_cmp(&lo->items[i].q, &h->q) > 0)
			fail(p, "config: 'profiles.%s.%s.%s': %s is above %s.%s %s",
			    pr->name, loname, lo->items[i].name, lo->items[i].text,
			    hiname, h->name, h->text);
	}
}

/* Resources Kubernetes does not overcommit (names_resource_exact): a
 * request needs a limit of the same quantity, or every pod of the profile
 * would be rejected.  HugePages also need cpu or memory. */
static void
check_exact(struct parser *p, const struct profile *pr)
{
	const struct resource *r, *lim;
	int hugepages = 0, cpu_or_memory = 0;
	size_t i;

	for (i = 0; i < pr->requests.n && !p->failed; i++) {
		r = &pr->requests.items[i];
		if (!names_resource_exact(r->name))
			continue;
		lim = config_resource(&pr->limits, r->name);
		if (lim == NULL)
			fail(p, "config: 'profiles.%s.requests.%s': Kubernetes needs a limit "
			    "for %s equal to the request; add limits.%s: \"%s\"", pr->name,
			    r->name, r->name, r->name, r->text);
		else if (quantity_cmp(&r->q, &lim->q) != 0)
			fail(p, "config: 'profiles.%s.requests.%s': %s must equal limits.%s "
			    "(%s): Kubernetes does not overcommit %s", pr->name, r->name,
			    r->text, r->name, lim->text, r->name);
	}
	for (i = 0; i < pr->requests.n + pr->limits.n; i++) {
		r = i < pr->requests.n ? &pr->requests.items[i] :
		    &pr->limits.items[i - pr->requests.n];
		hugepages |= strncmp(r->name, "hugepages-", 10) == 0;
		cpu_or_memory |= strcmp(r->name, "cpu") == 0 || strcmp(r->name, "memory") == 0;
	}
	if (!p->failed && hugepages && !cpu_or_memory)
		fail(p, "config: 'profiles.%s': hugepages need a cpu or memory request or "
		    "limit in the same profile (Kubernetes rejects them alone)", pr->name);
}

/* How many resource names a profile mentions across its three lists. */
static size_t
distinct_resources(const struct profile *pr)
{
	const struct resource_list *lists[3] = { &pr->requests, &pr->limits, &pr->max };
	size_t k, i, n = 0, kk, ii;
	int seen;

	for (k = 0; k < 3; k++)
		for (i = 0; i < lists[k]->n; i++) {
			seen = 0;
			for (kk = 0; kk <= k && !seen; kk++)
				for (ii = 0; ii < (kk == k ? i : lists[kk]->n) && !seen; ii++)
					seen = strcmp(lists[kk]->items[ii].name,
					    lists[k]->items[i].name) == 0;
			n += !seen;
		}
	return n;
}

static void
parse_profiles(struct parser *p, const cJSON *obj, struct config *cfg)
{
	static const char *const keys[] = { "requests", "limits", "max", NULL };
	const cJSON *item;
	char where[256], name[300];
	int k;

	if (obj == NULL) {
		fail(p, "config: 'profiles': required (at least one resource profile)");
		return;
	}
	if ((cfg->profiles = calloc((size_t)cJSON_GetArraySize(obj) + 1,
	    sizeof(*cfg->profiles))) == NULL) {
		fail(p, "config: out of memory");
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		struct profile *pr = &cfg->profiles[cfg->nprofiles];

		const char *const lists[3] = { "requests", "limits", "max" };
		struct resource_list *dst[3] = { &pr->requests, &pr->limits, &pr->max };

		snprintf(where, sizeof(where), "profiles.%.200s", item->string);
		if (!cJSON_IsObject(item)) {
			fail(p, "config: '%s': expected an object", where);
			return;
		}
		if ((pr->name = xstrdup(p, item->string)) == NULL)
			return;
		cfg->nprofiles++;
		check_keys(p, item, where, keys);
		for (k = 0; k < 3; k++) {
			snprintf(where, sizeof(where), "profiles.%.200s.", item->string);
			snprintf(name, sizeof(name), "%s%s", where, lists[k]);
			parse_resources(p, get_object(p, item, lists[k], where), name, dst[k]);
		}
		if (p->failed)
			return;
		if (distinct_resources(pr) > 16)
			fail(p, "config: 'profiles.%s': more than 16 resource names", pr->name);
		check_order(p, pr, &pr->requests, "requests", &pr->limits, "limits");
		check_order(p, pr, &pr->requests, "requests", &pr->max, "max");
		check_order(p, pr, &pr->limits, "limits", &pr->max, "max");
		check_exact(p, pr);
	}
	if (cfg->nprofiles == 0)
		fail(p, "config: 'profiles': required (at least one resource profile)");
}

static int
same_toleration(const struct toleration *a, const struct toleration *b)
{
	return strcmp(a->key, b->key) == 0 && strcmp(a->operator, b->operator) == 0 &&
	    strcmp(a->value, b->value) == 0 && strcmp(a->effect, b->effect) == 0 &&
	    a->has_seconds == b->has_seconds && a->seconds == b->seconds;
}

static void
parse_tolerations(struct parser *p, const cJSON *arr, struct config *cfg)
{
	static const char *const keys[] = { "key", "operator", "value", "effect",
	    "tolerationSeconds", NULL };
	const cJSON *item;
	char where[64];
	size_t i;

	if (arr == NULL)
		return;
	if ((cfg->tolerations = calloc((size_t)cJSON_GetArraySize(arr) + 1,
	    sizeof(*cfg->tolerations))) == NULL) {
		fail(p, "config: out of memory");
		return;
	}
	cJSON_ArrayForEach(item, arr) {
		struct toleration *t = &cfg->tolerations[cfg->ntolerations];

		snprintf(where, sizeof(where), "tolerations[%zu].", cfg->ntolerations);
		if (!cJSON_IsObject(item)) {
			fail(p, "config: 'tolerations[%zu]': expected an object",
			    cfg->ntolerations);
			return;
		}
		cfg->ntolerations++;
		snprintf(where, sizeof(where), "tolerations[%zu]", cfg->ntolerations - 1);
		check_keys(p, item, where, keys);
		snprintf(where, sizeof(where), "tolerations[%zu].", cfg->ntolerations - 1);
		t->key = get_string(p, item, "key", where, "");
		t->operator = get_string(p, item, "operator", where, "Equal");
		t->value = get_string(p, item, "value", where, "");
		t->effect = get_string(p, item, "effect", where, "");
		t->has_seconds = cJSON_GetObjectItemCaseSensitive(item,
		    "tolerationSeconds") != NULL;
		t->seconds = get_int(p, item, "tolerationSeconds", where, 0,
		    -(1LL << 53), 1LL << 53);
		if (p->failed)
			return;
		if (strcmp(t->operator, "Equal") != 0 && strcmp(t->operator, "Exists") != 0)
			fail(p, "config: '%soperator': '%s' is not Equal or Exists",
			    where, t->operator);
		else if (strcmp(t->operator, "Exists") == 0 && t->value[0] != '\0')
			fail(p, "config: '%svalue': must be empty when operator is Exists",
			    where);
		else if (t->effect[0] != '\0' && strcmp(t->effect, "NoSchedule") != 0 &&
		    strcmp(t->effect, "PreferNoSchedule") != 0 &&
		    strcmp(t->effect, "NoExecute") != 0)
			fail(p, "config: '%seffect': '%s' is not NoSchedule, "
			    "PreferNoSchedule or NoExecute", where, t->effect);
		else if (t->has_seconds && strcmp(t->effect, "NoExecute") != 0)
			fail(p, "config: '%stolerationSeconds': only valid with "
			    "effect NoExecute", where);
		else if (t->key[0] == '\0' && strcmp(t->operator, "Exists") != 0)
			fail(p, "config: '%skey': an empty key needs operator Exists", where);
		for (i = 0; i + 1 < cfg->ntolerations && !p->failed; i++)
			if (same_toleration(&cfg->tolerations[i], t))
				fail(p, "config: 'tolerations[%zu]': repeats tolerations[%zu]",
				    cfg->ntolerations - 1, i);
	}
}

static void
parse_node_selector(struct parser *p, const cJSON *obj, struct config *cfg)
{
	const cJSON *item;

	if (obj == NULL)
		return;
	if ((cfg->node_selector = calloc((size_t)cJSON_GetArraySize(obj) + 1,
	    sizeof(*cfg->node_selector))) == NULL) {
		fail(p, "config: out of memory");
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		struct keyval *kv = &cfg->node_selector[cfg->nnode_selector];

		if (!cJSON_IsString(item)) {
			fail(p, "config: 'nodeSelector.%s': expected a string", item->string);
			return;
		}
		kv->key = xstrdup(p, item->string);
		kv->value = xstrdup(p, item->valuestring);
		cfg->nnode_selector++;
		if (p->failed)
			return;
	}
}

static void
parse_identity(struct parser *p, const cJSON *obj, struct config *cfg)
{
	static const char *const keys[] = { "mode", "injectToken", "clientId",
	    "tenantId", "authorityHost", "patSecret", NULL };
	char *mode;
	int m;

	if (obj != NULL)
		check_keys(p, obj, "identity", keys);
	mode = get_string(p, obj, "mode", "identity.", "workload-identity");
	cfg->inject_token = get_bool(p, obj, "injectToken", "identity.", 1);
	cfg->client_id = get_string(p, obj, "clientId", "identity.", "");
	cfg->tenant_id = get_string(p, obj, "tenantId", "identity.", "");
	cfg->authority_host = get_string(p, obj, "authorityHost", "identity.",
	    "https://login.microsoftonline.com/");
	cfg->pat_secret = get_string(p, obj, "patSecret", "identity.", "");
	if (p->failed) {
		free(mode);
		return;
	}
	if ((m = config_identity_parse(mode)) == -1)
		fail(p, "config: 'identity.mode': unknown mode '%s' (known: "
		    "workload-identity, pat, none)", mode);
	else
		cfg->identity_mode = (enum identity_mode)m;
	free(mode);
	if (cfg->client_id[0] != '\0' && !names_is_guid(cfg->client_id))
		fail(p, "config: 'identity.clientId': '%s' is not a GUID", cfg->client_id);
	if (cfg->tenant_id[0] != '\0' && !names_is_guid(cfg->tenant_id))
		fail(p, "config: 'identity.tenantId': '%s' is not a GUID", cfg->tenant_id);
	if (strncmp(cfg->authority_host, "https://", 8) != 0)
		fail(p, "config: 'identity.authorityHost': '%s' must start with "
		    "https://", cfg->authority_host);
	if (cfg->pat_secret[0] != '\0' && !names_is_dns_subdomain(cfg->pat_secret))
		fail(p, "config: 'identity.patSecret': '%s' is not a valid Secret name",
		    cfg->pat_secret);
	if (cfg->identity_mode == IDENTITY_PAT && cfg->pat_secret[0] == '\0')
		fail(p, "config: 'identity.patSecret': required when identity.mode "
		    "is pat");
}

/* MAJOR.MINOR, optionally -preview or -preview.N: what Azure DevOps takes. */
static int
api_version_valid(const char *v)
{
	size_t i = 0, d;
	int part;

	for (part = 0; part < 2; part++) {
		for (d = 0; v[i] >= '0' && v[i] <= '9' && d < 3; i++, d++)
			;
		if (d == 0 || (part == 0 && v[i++] != '.'))
			return 0;
	}
	if (v[i] == '\0')
		return 1;
	if (strncmp(v + i, "-preview", 8) != 0)
		return 0;
	i += 8;
	if (v[i] == '\0')
		return 1;
	if (v[i++] != '.')
		return 0;
	for (d = 0; v[i] >= '0' && v[i] <= '9' && d < 3; i++, d++)
		;
	return d > 0 && v[i] == '\0';
}

/* The janitor's list key, or a copy of the defaults (NULL-terminated) when
 * it is absent. */
static char **
get_list_or(struct parser *p, const cJSON *obj, const char *key,
    const char *const *defaults, size_t *np)
{
	char name[64], **v;
	const cJSON *arr;
	size_t n;

	snprintf(name, sizeof(name), "janitor.%s", key);
	if ((arr = get_array(p, obj, key, "janitor.")) != NULL)
		return get_string_list(p, arr, name, np);
	*np = 0;
	if (p->failed)
		return NULL;
	for (n = 0; defaults[n] != NULL; n++)
		;
	if ((v = calloc(n + 1, sizeof(*v))) == NULL) {
		fail(p, "config: out of memory");
		return NULL;
	}
	for (*np = 0; *np < n && (v[*np] = xstrdup(p, defaults[*np])) != NULL; (*np)++)
		;
	return v;
}

static void
parse_janitor(struct parser *p, const cJSON *obj, struct config *cfg)
{
	static const char *const keys[] = { "intervalSeconds",
	    "offlineGraceSeconds", "finishedPodTtlSeconds", "stuckPendingSeconds",
	    "pendingTimeoutSeconds", "maxDeletionsPerCycle", "maxPatchesPerCycle",
	    "onlyManagedAgents", "keepAgents", "leaseName", "apiVersion", "identity",
	    "idleAgentSeconds", "registrationTimeoutSeconds", "drainTaints",
	    "usageByPipeline", NULL };
	static const char *const id_keys[] = { "clientId", "tenantId", NULL };
	static const char *const default_keep[] = { "keda-placeholder*", NULL };
	static const char *const default_drain[] = { "ToBeDeletedByClusterAutoscaler",
	    "karpenter.sh/disrupted", "node.kubernetes.io/out-of-service", NULL };
	struct janitor_config *j = &cfg->janitor;
	const cJSON *id;
	const long long day = 86400LL * 365;

	if (obj != NULL)
		check_keys(p, obj, "janitor", keys);
	id = get_object(p, obj, "identity", "janitor.");
	if (id != NULL)
		check_keys(p, id, "janitor.identity", id_keys);
	j->client_id = get_string(p, id, "clientId", "janitor.identity.", "");
	j->tenant_id = get_string(p, id, "tenantId", "janitor.identity.", "");
	j->interval_seconds = get_int(p, obj, "intervalSeconds", "janitor.", 60, 1, day);
	j->offline_grace_seconds = get_int(p, obj, "offlineGraceSeconds",
	    "janitor.", 600, 0, day);
	j->finished_pod_ttl_seconds = get_int(p, obj, "finishedPodTtlSeconds",
	    "janitor.", 300, 0, day);
	j->stuck_pending_seconds = get_int(p, obj, "stuckPendingSeconds",
	    "janitor.", 900, 1, day);
	j->pending_timeout_seconds = get_int(p, obj, "pendingTimeoutSeconds",
	    "janitor.", 3600, 1, day);
	j->max_deletions_per_cycle = get_int(p, obj, "maxDeletionsPerCycle",
	    "janitor.", 50, 0, 100000);
	j->max_patches_per_cycle = get_int(p, obj, "maxPatchesPerCycle",
	    "janitor.", 200, 0, 100000);
	j->only_managed_agents = get_bool(p, obj, "onlyManagedAgents", "janitor.", 1);
	j->usage_by_pipeline = get_bool(p, obj, "usageByPipeline", "janitor.", 0);
	j->lease_name = get_string(p, obj, "leaseName", "janitor.", "pipewarden-janitor");
	j->api_version = get_string(p, obj, "apiVersion", "janitor.", "7.1");
	j->idle_agent_seconds = get_int(p, obj, "idleAgentSeconds", "janitor.", 1800, 0, day);
	j->registration_timeout_seconds = get_int(p, obj, "registrationTimeoutSeconds",
	    "janitor.", 600, 0, day);
	j->keep_agents = get_list_or(p, obj, "keepAgents", default_keep, &j->nkeep_agents);
	j->drain_taints = get_list_or(p, obj, "drainTaints", default_drain, &j->ndrain_taints);
	if (!p->failed && !names_is_dns_subdomain(j->lease_name))
		fail(p, "config: 'janitor.leaseName': '%s' is not a valid Lease name",
		    j->lease_name);
	if (!p->failed && !api_version_valid(j->api_version))
		fail(p, "config: 'janitor.apiVersion': '%.40s' is not an Azure DevOps REST "
		    "api-version (like 7.1, 7.0 or 6.0)", j->api_version);
	if (!p->failed && j->pending_timeout_seconds < j->stuck_pending_seconds)
		fail(p, "config: 'janitor.pendingTimeoutSeconds': %lld is shorter than "
		    "janitor.stuckPendingSeconds (%lld): a pod still pulling its image would "
		    "go before one that cannot", j->pending_timeout_seconds,
		    j->stuck_pending_seconds);
	if (!p->failed && j->client_id[0] != '\0' && !names_is_guid(j->client_id))
		fail(p, "config: 'janitor.identity.clientId': '%s' is not a GUID", j->client_id);
	if (!p->failed && j->tenant_id[0] != '\0' && !names_is_guid(j->tenant_id))
		fail(p, "config: 'janitor.identity.tenantId': '%s' is not a GUID", j->tenant_id);
	if (!p->failed && j->client_id[0] != '\0' && strcmp(j->client_id, cfg->client_id) == 0)
		fail(p, "config: 'janitor.identity.clientId': the agents' identity.clientId; "
		    "give the janitor its own identity (pipeline code can read an agent's "
		    "token and must never get the right to delete agents)");
}

/* How many '/' end s. */
static size_t
trailing_slashes(const char *s)
{
	size_t n = strlen(s), k = 0;

	while (k < n && s[n - 1 - k] == '/')
		k++;
	return k;
}

/* The top level's plain keys: organizationUrl (https://, a trailing '/'
 * dropped), defaultPool and the rest.  Return 0, or -1 (p failed). */
static int
parse_top(struct parser *p, const cJSON *root, struct config *cfg)
{
	cfg->organization_url = get_string(p, root, "organizationUrl", "", NULL);
	cfg->default_pool = get_string(p, root, "defaultPool", "", NULL);
	cfg->work_dir = get_string(p, root, "workDir", "", "_work");
	cfg->deny_plaintext_token = get_bool(p, root, "denyPlaintextToken", "", 1);
	cfg->safe_to_evict = get_bool(p, root, "safeToEvict", "", 0);
	cfg->default_profile = get_string(p, root, "defaultProfile", "", NULL);
	if (p->failed)
		return -1;
	if (cfg->organization_url == NULL)
		fail(p, "config: 'organizationUrl': required (for example "
		    "https://dev.azure.com/contoso)");
	else if (strncmp(cfg->organization_url, "https://", 8) != 0 ||
	    cfg->organization_url[8] == '\0' || cfg->organization_url[8] == '/')
		fail(p, "config: 'organizationUrl': '%s' must be an https:// URL (a PAT "
		    "must never travel in clear)", cfg->organization_url);
	else	/* "https://dev.azure.com/contoso/" and ".../contoso" are the same */
		cfg->organization_url[strlen(cfg->organization_url) -
		    trailing_slashes(cfg->organization_url)] = '\0';
	if (cfg->default_pool == NULL || cfg->default_pool[0] == '\0')
		fail(p, "config: 'defaultPool': required (the agent pool of pods "
		    "without pipewarden.io/pool)");
	return p->failed ? -1 : 0;
}

struct config *
config_parse(const char *text, size_t len, char *err, size_t errlen)
{
	static const char *const keys[] = { "organizationUrl", "defaultPool",
	    "pools", "workDir", "denyPlaintextToken", "safeToEvict", "identity",
	    "tolerations", "nodeSelector", "defaultProfile", "profiles",
	    "janitor", NULL };
	struct parser p = { err, errlen, 0 };
	struct config *cfg = NULL;
	const cJSON *pools;
	cJSON *root;

	snprintf(err, errlen, "config: invalid");
	root = cJSON_ParseWithLength(text, len);
	if (root == NULL || !cJSON_IsObject(root)) {
		fail(&p, "config: not a JSON object");
		goto out;
	}
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL) {
		fail(&p, "config: out of memory");
		goto out;
	}
	check_keys(&p, root, "", keys);
	if (parse_top(&p, root, cfg) == -1)
		goto out;

	if ((pools = get_array(&p, root, "pools", "")) != NULL) {
		cfg->pools = get_string_list(&p, pools, "pools", &cfg->npools);
	} else if (!p.failed) {
		if ((cfg->pools = calloc(2, sizeof(char *))) != NULL &&
		    (cfg->pools[0] = xstrdup(&p, cfg->default_pool)) != NULL)
			cfg->npools = 1;
		else
			fail(&p, "config: out of memory");
	}
	parse_identity(&p, get_object(&p, root, "identity", ""), cfg);
	parse_tolerations(&p, get_array(&p, root, "tolerations", ""), cfg);
	parse_node_selector(&p, get_object(&p, root, "nodeSelector", ""), cfg);
	parse_profiles(&p, get_object(&p, root, "profiles", ""), cfg);
	parse_janitor(&p, get_object(&p, root, "janitor", ""), cfg);
	if (p.failed)
		goto out;
	if (cfg->default_profile == NULL) {
		if (cfg->nprofiles == 1)
			cfg->default_profile = xstrdup(&p, cfg->profiles[0].name);
		else
			fail(&p, "config: 'defaultProfile': required when there is more "
			    "than one profile");
	} else if (config_profile(cfg, cfg->default_profile) == NULL) {
		fail(&p, "config: 'defaultProfile': no profile '%s' in 'profiles'",
		    cfg->default_profile);
	}
out:
	cJSON_Delete(root);
	if (p.failed) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct config *cfg;
	char *text;
	size_t len;

	if ((text = file_read(path, CONFIG_MAX_BYTES, &len)) == NULL) {
		snprintf(err, errlen, "config: cannot read '%s': %s", path,
		    errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
		return NULL;
	}
	cfg = config_parse(text, len, err, errlen);
	free(text);
	return cfg;
}

static void
resources_release(struct resource_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->items[i].name);
		free(l->items[i].text);
	}
	free(l->items);
}

void
config_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	free(cfg->organization_url);
	free(cfg->default_pool);
	free_string_list(cfg->pools, cfg->npools);
	free(cfg->work_dir);
	free(cfg->client_id);
	free(cfg->tenant_id);
	free(cfg->authority_host);
	free(cfg->pat_secret);
	for (i = 0; i < cfg->ntolerations; i++) {
		free(cfg->tolerations[i].key);
		free(cfg->tolerations[i].operator);
		free(cfg->tolerations[i].value);
		free(cfg->tolerations[i].effect);
	}
	free(cfg->tolerations);
	for (i = 0; i < cfg->nnode_selector; i++) {
		free(cfg->node_selector[i].key);
		free(cfg->node_selector[i].value);
	}
	free(cfg->node_selector);
	free(cfg->default_profile);
	for (i = 0; i < cfg->nprofiles; i++) {
		free(cfg->profiles[i].name);
		resources_release(&cfg->profiles[i].requests);
		resources_release(&cfg->profiles[i].limits);
		resources_release(&cfg->profiles[i].max);
	}
	free(cfg->profiles);
	free_string_list(cfg->janitor.keep_agents, cfg->janitor.nkeep_agents);
	free_string_list(cfg->janitor.drain_taints, cfg->janitor.ndrain_taints);
	free(cfg->janitor.lease_name);
	free(cfg->janitor.api_version);
	free(cfg->janitor.client_id);
	free(cfg->janitor.tenant_id);
	free(cfg);
}

const struct profile *
config_profile(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nprofiles; i++)
		if (strcmp(cfg->profiles[i].name, name) == 0)
			return &cfg->profiles[i];
	return NULL;
}

const char *
config_identity_name(enum identity_mode mode)
{
	switch (mode) {
	case IDENTITY_WORKLOAD:	return "workload-identity";
	case IDENTITY_PAT:	return "pat";
	case IDENTITY_NONE:	return "none";
	}
	return "none";
}

int
config_identity_parse(const char *name)
{
	if (strcmp(name, "workload-identity") == 0)
		return IDENTITY_WORKLOAD;
	if (strcmp(name, "pat") == 0)
		return IDENTITY_PAT;
	if (strcmp(name, "none") == 0)
		return IDENTITY_NONE;
	return -1;
}

int
config_has_pool(const struct config *cfg, const char *pool)
{
	size_t i;

	for (i = 0; i < cfg->npools; i++)
		if (strcmp(cfg->pools[i], pool) == 0)
			return 1;
	return 0;
}

/* Whether url's host is Azure DevOps Services' own. */
static int
is_services(const char *url)
{
	static const char suffix[] = ".visualstudio.com";
	const char *host = url + (strncmp(url, "https://", 8) == 0 ? 8 : 0);
	size_t n = strcspn(host, "/:?#");

	if (n == 13 && strncasecmp(host, "dev.azure.com", 13) == 0)
		return 1;
	return n > sizeof(suffix) - 1 &&
	    strncasecmp(host + n - (sizeof(suffix) - 1), suffix, sizeof(suffix) - 1) == 0;
}

int
config_janitor_auth(const struct config *cfg, int have_pat, char *err, size_t errlen)
{
	if (have_pat || is_services(cfg->organization_url))
		return 0;
	snprintf(err, errlen, "config: 'organizationUrl': '%s' is not Azure DevOps Services "
	    "(dev.azure.com, *.visualstudio.com), where workload identity does not work: "
	    "give the janitor a PAT (AZP_TOKEN_FILE; the chart's janitor.patSecret)",
	    cfg->organization_url);
	return -1;
}
