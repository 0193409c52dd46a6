#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/names.h"
#include "../common/quantity.h"
#include "policy.h"

#define PATCH_MAX	(1024 * 1024)
#define RESOURCES_MAX	16	/* resource names one profile may name */
#define MESSAGE_MAX	1024
#define POOL_NAME_MAX	256	/* DESIGN: longer than Kubernetes and Azure DevOps allow */

/* What a pod's author may set, then what pipewarden itself writes. */
static const char *const known_annotations[] = {
	"pipewarden.io/inject", "pipewarden.io/pool", "pipewarden.io/profile",
	"pipewarden.io/container", "pipewarden.io/identity", "pipewarden.io/client-id",
	"pipewarden.io/injected", "pipewarden.io/skipped-env",
	"pipewarden.io/job-request-id", "pipewarden.io/pipeline", "pipewarden.io/run",
	"pipewarden.io/run-url", NULL
};

/* ---- reading the pod ---------------------------------------------------- */

static const cJSON *
field(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return v == NULL || cJSON_IsNull(v) ? NULL : v;
}

static const cJSON *
field_object(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsObject(v) ? v : NULL;
}

static const cJSON *
field_array(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsArray(v) ? v : NULL;
}

static const char *
field_string(const cJSON *obj, const char *key)
{
	const cJSON *v = field(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The element of arr whose "name" is name, or NULL. */
static const cJSON *
find_named(const cJSON *arr, const char *name)
{
	const cJSON *item;
	const char *n;

	cJSON_ArrayForEach(item, arr) {
		n = field_string(item, "name");
		if (n != NULL && strcmp(n, name) == 0)
			return item;
	}
	return NULL;
}

/* ---- the decision ------------------------------------------------------- */

static int deny(struct policy_decision *, int, const char *, ...)
    __attribute__((format(printf, 3, 4)));

static int
deny(struct policy_decision *d, int code, const char *fmt, ...)
{
	va_list ap;

	d->result = POLICY_DENIED;
	d->code = code;
	if ((d->message = malloc(MESSAGE_MAX)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(d->message, MESSAGE_MAX, fmt, ap);
	va_end(ap);
	return 0;
}

static int warn(struct policy_decision *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
warn(struct policy_decision *d, const char *fmt, ...)
{
	char **w;
	va_list ap;

	if ((w = realloc(d->warnings, (d->nwarnings + 1) * sizeof(*w))) == NULL)
		return -1;
	d->warnings = w;
	if ((w[d->nwarnings] = malloc(MESSAGE_MAX)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(w[d->nwarnings], MESSAGE_MAX, fmt, ap);
	va_end(ap);
	d->nwarnings++;
	return 0;
}

void
policy_decision_release(struct policy_decision *d)
{
	size_t i;

	free(d->message);
	free(d->patch);
	for (i = 0; i < d->nwarnings; i++)
		free(d->warnings[i]);
	free(d->warnings);
	memset(d, 0, sizeof(*d));
}

/* ---- building the patch ------------------------------------------------- */

/*
 * kube-apiserver's json-patch never creates a missing parent, so every
 * addition goes through a group: the object or array it lands in.  When
 * the parent exists in the pod, each member is its own "add" op
 * (".../key" or ".../-"); when it does not, the members are collected and
 * the whole parent is added once -- inside its own parent's group, if that
 * is missing too.
 */
struct patch {
	struct buf	 text;		/* the JSON Patch array */
	size_t		 nops;
};

struct group {
	struct patch	*patch;
	struct group	*parent;	/* NULL: the parent exists for sure */
	char		 key[128];	/* our name in the parent */
	struct buf	 path;		/* JSON pointer of this object/array */
	struct buf	 whole;		/* members, while the parent is missing */
	int		 exists;	/* present in the pod */
	int		 is_array;
	size_t		 count;
};

static void
patch_op(struct patch *p, const char *path, const char *value)
{
	/* After any allocation failure the patch is abandoned whole. */
	if (p->text.failed || path == NULL || value == NULL) {
		p->text.failed = 1;
		return;
	}
	buf_adds(&p->text, p->nops++ ? "," : "[");
	buf_adds(&p->text, "{\"op\":\"add\",\"path\":");
	buf_add_json_string(&p->text, path);
	buf_adds(&p->text, ",\"value\":");
	buf_adds(&p->text, value);
	buf_addc(&p->text, '}');
}

/* Open a group at path (already escaped) or at key below parent. */
static void
group_open(struct group *g, struct patch *p, struct group *parent,
    const char *path_or_key, int exists, int is_array)
{
	memset(g, 0, sizeof(*g));
	g->patch = p;
	g->parent = parent;
	g->exists = exists;
	g->is_array = is_array;
	buf_init(&g->path, 4096);
	buf_init(&g->whole, PATCH_MAX);
	if (p->text.failed || (parent != NULL && parent->path.data == NULL)) {
		p->text.failed = 1;
		return;
	}
	if (parent != NULL) {
		snprintf(g->key, sizeof(g->key), "%s", path_or_key);
		buf_adds(&g->path, parent->path.data);
		buf_addc(&g->path, '/');
		buf_add_pointer_segment(&g->path, path_or_key);
	} else {
		buf_adds(&g->path, path_or_key);
	}
	if (g->path.failed)
		p->text.failed = 1;
}

/* Add a member: key (objects) and value, a JSON text. */
static void
group_add(struct group *g, const char *key, const char *value)
{
	struct buf path;

	if (g->patch->text.failed || g->path.data == NULL) {
		g->patch->text.failed = 1;
		return;
	}
	if (g->exists) {
		buf_init(&path, 4096);
		buf_adds(&path, g->path.data);
		buf_addc(&path, '/');
		if (g->is_array)
			buf_addc(&path, '-');
		else
			buf_add_pointer_segment(&path, key);
		if (path.failed)
			g->patch->text.failed = 1;
		else
			patch_op(g->patch, path.data, value);
		buf_release(&path);
	} else {
		buf_addc(&g->whole, g->count ? ',' : (g->is_array ? '[' : '{'));
		if (!g->is_array) {
			buf_add_json_string(&g->whole, key);
			buf_addc(&g->whole, ':');
		}
		buf_adds(&g->whole, value);
		if (g->whole.failed)
			g->patch->text.failed = 1;
	}
	g->count++;
}

/* Add the JSON text built in v (or fail the patch if building it failed),
 * and release v. */
static void
group_add_buf(struct group *g, const char *key, struct buf *v)
{
	if (v->failed)
		g->patch->text.failed = 1;
	else
		group_add(g, key, v->data);
	buf_release(v);
}

static void
group_add_string(struct group *g, const char *key, const char *value)
{
	struct buf v;

	buf_init(&v, PATCH_MAX);
	buf_add_json_string(&v, value);
	group_add_buf(g, key, &v);
}

/* Close a group: a missing parent that got members is added whole. */
static void
group_close(struct group *g)
{
	if (!g->exists && g->count > 0) {
		buf_addc(&g->whole, g->is_array ? ']' : '}');
		if (g->whole.failed)
			g->patch->text.failed = 1;
		else if (g->parent != NULL)
			group_add(g->parent, g->key, g->whole.data);
		else
			patch_op(g->patch, g->path.data, g->whole.data);
	}
	buf_release(&g->path);
	buf_release(&g->whole);
}

/* ---- the rules ---------------------------------------------------------- */

/* Opt-in: 1 in, 0 out, -1 out of memory.  "false" on either the annotation or the label wins. */
static int
opted_in(const cJSON *labels, const cJSON *annotations, struct policy_decision *d)
{
	const char *a = field_string(annotations, "pipewarden.io/inject");
	const char *l = field_string(labels, "pipewarden.io/inject");

	if ((a != NULL && strcmp(a, "false") == 0) ||
	    (l != NULL && strcmp(l, "false") == 0))
		return 0;
	if ((a != NULL && strcmp(a, "true") == 0) ||
	    (l != NULL && strcmp(l, "true") == 0))
		return 1;
	if ((a != NULL || l != NULL) &&
	    warn(d, "pipewarden.io/inject: '%s' is neither \"true\" nor "
	    "\"false\"; the pod was admitted without injection",
	    a != NULL ? a : l) == -1)
		return -1;
	return 0;
}

/* How many unknown keys the one warning names. */
#define UNKNOWN_NAMED	3

/*
 * One warning for every unknown pipewarden.io/ annotation together: it names
 * the first few (each cut to 80 characters) and says how many there are, so
 * a pod with a hundred thousand of them costs no more than a pod with one.
 */
static int
check_unknown_annotations(const cJSON *annotations, struct policy_decision *d)
{
	const char *named[UNKNOWN_NAMED];
	char list[UNKNOWN_NAMED * 90];
	const cJSON *item;
	size_t i, n = 0, len = 0;

	cJSON_ArrayForEach(item, annotations) {
		if (strncmp(item->string, POLICY_ANNOTATION_PREFIX,
		    strlen(POLICY_ANNOTATION_PREFIX)) != 0)
			continue;
		for (i = 0; known_annotations[i] != NULL; i++)
			if (strcmp(item->string, known_annotations[i]) == 0)
				break;
		if (known_annotations[i] != NULL)
			continue;
		if (n < UNKNOWN_NAMED)
			named[n] = item->string;
		n++;
	}
	if (n == 0)
		return 0;
	list[0] = '\0';
	for (i = 0; i < n && i < UNKNOWN_NAMED; i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%.80s",
		    i > 0 ? ", " : "", named[i]);
	if (n > UNKNOWN_NAMED)
		snprintf(list + len, sizeof(list) - len, " and %zu more", n - UNKNOWN_NAMED);
	return warn(d, "%zu unknown pipewarden.io annotation%s ignored (%s); known keys: "
	    "pipewarden.io/inject, pipewarden.io/pool, pipewarden.io/profile, "
	    "pipewarden.io/container, pipewarden.io/identity, pipewarden.io/client-id",
	    n, n == 1 ? "" : "s", list);
}

/* A literal AZP_TOKEN in any container: the name of the first, or NULL. */
static const char *
plaintext_token(const cJSON *containers, const char **kindp, const char *kind)
{
	const cJSON *c, *env;
	const char *v;

	cJSON_ArrayForEach(c, containers) {
		env = find_named(field_array(c, "env"), "AZP_TOKEN");
		v = field_string(env, "value");
		if (v != NULL && v[0] != '\0') {
			*kindp = kind;
			v = field_string(c, "name");
			return v != NULL ? v : "";
		}
	}
	return NULL;
}

static void
list_container_names(const cJSON *containers, char *out, size_t outlen)
{
	const cJSON *c;
	const char *n;
	size_t len = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(c, containers) {
		if ((n = field_string(c, "name")) == NULL || len >= outlen)
			continue;
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
		    len ? ", " : "", n);
	}
}

static void
list_profiles(const struct config *cfg, char *out, size_t outlen)
{
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < cfg->nprofiles && len < outlen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s",
		    i ? ", " : "", cfg->profiles[i].name);
}

/*
 * Resources.  For each resource the profile names, the final request and
 * limit are the container's own where set, else the profile's; a request
 * taken from the profile is capped at the limit, and a limit taken from
 * the profile is raised to the container's own request, so filling in never
 * makes a request exceed its limit.  For a resource Kubernetes does not
 * overcommit (names_resource_exact) the two must be equal, so a filled
 * limit is the container's own request and no request is filled under the
 * container's own limit.  A resource the pod sets at pod level
 * (spec.resources) is left alone: the pod's budget governs it.
 */
struct rvalue {
	const char	*name;
	const char	*json;		/* own: raw JSON of the pod's value */
	char		*ownjson;	/* owned copy when json came from the pod */
	struct quantity	 q;
	int		 set;
	int		 filled;	/* taken from the profile (or capped) */
};

static int
own_quantity(const cJSON *list, const char *name, struct rvalue *v,
    const char *container, const char *which, struct policy_decision *d)
{
	const cJSON *item = field(list, name);
	char number[64];
	const char *text = "";

	if (item == NULL)
		return 0;
	/* The whole value is judged, never a shortened copy of it. */
	if (cJSON_IsString(item))
		text = item->valuestring;
	else if (cJSON_IsNumber(item)) {
		snprintf(number, sizeof(number), "%.17g", item->valuedouble);
		text = number;
	}
	if (quantity_parse(text, &v->q) == -1)
		return deny(d, 400, "container \"%s\" resources.%s.%s: '%.64s%s' is not "
		    "a quantity", container, which, name, text,
		    strlen(text) > 64 ? "..." : "") == -1 ? -1 : 1;
	if ((v->ownjson = cJSON_PrintUnformatted(item)) == NULL)
		return -1;
	v->json = v->ownjson;
	v->set = 1;
	return 0;
}

/* Add the values that were filled in to resources.requests or .limits. */
static void
emit_filled(struct group *resources, const char *which, int exists,
    const char *const *names, const struct rvalue *v, size_t n,
    const struct resource_list *profile)
{
	struct group g;
	size_t i;

	group_open(&g, resources->patch, resources, which, exists, 0);
	for (i = 0; i < n; i++) {
		if (!v[i].filled)
			continue;
		if (v[i].json != NULL)
			group_add(&g, names[i], v[i].json);
		else
			group_add_string(&g, names[i], config_resource(profile, names[i])->text);
	}
	group_close(&g);
}

/* Add the profile's resources to the agent container's resources group.
 * pod_res is the pod's spec.resources (pod-level), or NULL. */
static int
fill_resources(const struct profile *pr, const cJSON *container, const char *cname,
    const cJSON *pod_res, struct group *resources, struct policy_decision *d)
{
	const cJSON *res = field_object(container, "resources");
	const cJSON *own_req = field_object(res, "requests");
	const cJSON *own_lim = field_object(res, "limits");
	const struct resource_list *lists[3] = { &pr->requests, &pr->limits, &pr->max };
	struct rvalue req[RESOURCES_MAX], lim[RESOURCES_MAX];
	const char *names[RESOURCES_MAX];
	int exact[RESOURCES_MAX];
	size_t n = 0, i, j, k;
	int rc = -1, r;

	memset(req, 0, sizeof(req));
	memset(lim, 0, sizeof(lim));	/* 16 x 2 entries */
	/* Every resource name the profile mentions, once. */
	for (k = 0; k < 3; k++)
		for (i = 0; i < lists[k]->n && n < RESOURCES_MAX; i++) {
			for (j = 0; j < n; j++)
				if (strcmp(names[j], lists[k]->items[i].name) == 0)
					break;
			if (j == n) {
				exact[n] = names_resource_exact(lists[k]->items[i].name);
				names[n++] = lists[k]->items[i].name;
			}
		}
	for (i = 0; i < n; i++) {
		const struct resource *pl = config_resource(&pr->limits, names[i]);
		const struct resource *pq = config_resource(&pr->requests, names[i]);

		req[i].name = lim[i].name = names[i];
		if ((r = own_quantity(own_req, names[i], &req[i], cname, "requests", d)) != 0 ||
		    (r = own_quantity(own_lim, names[i], &lim[i], cname, "limits", d)) != 0) {
			rc = r == 1 ? 0 : -1;
			goto out;
		}
		/* A resource the pod budgets at pod level is the pod's. */
		if (field(field_object(pod_res, "requests"), names[i]) != NULL ||
		    field(field_object(pod_res, "limits"), names[i]) != NULL)
			continue;
		if (!lim[i].set && pl != NULL) {
			lim[i].set = lim[i].filled = 1;
			lim[i].q = pl->q;
			lim[i].json = NULL;
			if (req[i].set && (exact[i] || quantity_cmp(&req[i].q, &pl->q) > 0)) {
				lim[i].q = req[i].q;
				lim[i].json = req[i].json;
			}
		}
		/* Under a container's own limit of an exact resource, the API
		 * server makes the request equal to it. */
		if (!req[i].set && pq != NULL && !(exact[i] && lim[i].set && !lim[i].filled)) {
			req[i].set = req[i].filled = 1;
			req[i].q = pq->q;
			req[i].json = NULL;
			if (lim[i].set && quantity_cmp(&pq->q, &lim[i].q) > 0) {
				req[i].q = lim[i].q;
				req[i].json = lim[i].json;
			}
		}
	}
	/* The maximum applies to the container's own values and to ours. */
	for (i = 0; i < pr->max.n; i++) {
		const struct resource *mx = &pr->max.items[i];
		for (j = 0; j < n; j++) {
			if (strcmp(names[j], mx->name) != 0)
				continue;
			if (req[j].set && quantity_cmp(&req[j].q, &mx->q) > 0)
				deny(d, 403, "container \"%s\" resources.requests.%s exceeds "
				    "the maximum %s of profile '%s'; lower it or choose "
				    "another profile with annotation 'pipewarden.io/profile'",
				    cname, mx->name, mx->text, pr->name);
			else if (lim[j].set && quantity_cmp(&lim[j].q, &mx->q) > 0)
				deny(d, 403, "container \"%s\" resources.limits.%s exceeds "
				    "the maximum %s of profile '%s'; lower it or choose "
				    "another profile with annotation 'pipewarden.io/profile'",
				    cname, mx->name, mx->text, pr->name);
			if (d->result == POLICY_DENIED) {
				rc = d->message != NULL ? 0 : -1;
				goto out;
			}
		}
	}
	emit_filled(resources, "requests", own_req != NULL, names, req, n, &pr->requests);
	emit_filled(resources, "limits", own_lim != NULL, names, lim, n, &pr->limits);
	rc = 0;
out:
	for (i = 0; i < n; i++) {
		cJSON_free(req[i].ownjson);
		cJSON_free(lim[i].ownjson);
	}
	return rc;
}

static int
has_mount(const cJSON *mounts, const char *name, const char *path)
{
	const cJSON *m;
	const char *p;

	if (find_named(mounts, name) != NULL)
		return 1;
	cJSON_ArrayForEach(m, mounts) {
		p = field_string(m, "mountPath");
		if (p != NULL && strcmp(p, path) == 0)
			return 1;
	}
	return 0;
}

static int
same_toleration(const struct toleration *t, const cJSON *pt)
{
	const char *key = field_string(pt, "key");
	const char *op = field_string(pt, "operator");
	const char *value = field_string(pt, "value");
	const char *effect = field_string(pt, "effect");
	const cJSON *secs = field(pt, "tolerationSeconds");

	if (strcmp(key ? key : "", t->key) != 0 ||
	    strcmp(op ? op : "Equal", t->operator) != 0 ||
	    strcmp(value ? value : "", t->value) != 0 ||
	    strcmp(effect ? effect : "", t->effect) != 0)
		return 0;
	if (t->has_seconds != (cJSON_IsNumber(secs) ? 1 : 0))
		return 0;
	return !t->has_seconds || (double)t->seconds == secs->valuedouble;
}

static void
toleration_json(const struct toleration *t, struct buf *v)
{
	buf_addc(v, '{');
	if (t->key[0] != '\0') {
		buf_adds(v, "\"key\":");
		buf_add_json_string(v, t->key);
		buf_addc(v, ',');
	}
	buf_adds(v, "\"operator\":");
	buf_add_json_string(v, t->operator);
	if (t->value[0] != '\0') {
		buf_adds(v, ",\"value\":");
		buf_add_json_string(v, t->value);
	}
	if (t->effect[0] != '\0') {
		buf_adds(v, ",\"effect\":");
		buf_add_json_string(v, t->effect);
	}
	if (t->has_seconds)
		buf_addf(v, ",\"tolerationSeconds\":%lld", t->seconds);
	buf_addc(v, '}');
}

/* What the request asks, once the annotations are read and checked. */
struct target {
	const char		*pool;
	const struct profile	*profile;
	enum identity_mode	 identity;
	const char		*client_id;	/* the agent's Entra client id */
	const cJSON		*container;
	size_t			 index;
	const char		*name;
};

static int
read_annotations(const struct config *cfg, const cJSON *annotations,
    const cJSON *containers, struct target *t, struct policy_decision *d)
{
	const char *pool = field_string(annotations, "pipewarden.io/pool");
	const char *profile = field_string(annotations, "pipewarden.io/profile");
	const char *identity = field_string(annotations, "pipewarden.io/identity");
	const char *cname = field_string(annotations, "pipewarden.io/container");
	const char *client_id = field_string(annotations, "pipewarden.io/client-id");
	const cJSON *c;
	char list[512];
	size_t i;
	int mode;

	if (pool != NULL && pool[0] == '\0')
		return deny(d, 400, "annotation 'pipewarden.io/pool': empty pool name; "
		    "name an Azure DevOps agent pool or remove the annotation to use "
		    "'%s'", cfg->default_pool);
	if (pool != NULL && strlen(pool) > POOL_NAME_MAX)
		return deny(d, 400, "annotation 'pipewarden.io/pool': %zu characters; an "
		    "Azure DevOps agent pool name has at most %d", strlen(pool), POOL_NAME_MAX);
	t->pool = pool != NULL ? pool : cfg->default_pool;
	snprintf(d->pool, sizeof(d->pool), "%s", t->pool);
	if ((t->profile = config_profile(cfg, profile != NULL ? profile :
	    cfg->default_profile)) == NULL) {
		list_profiles(cfg, list, sizeof(list));
		return deny(d, 400, "annotation 'pipewarden.io/profile': unknown "
		    "profile '%s' (known: %s)", profile, list);
	}
	mode = identity != NULL ? config_identity_parse(identity) : (int)cfg->identity_mode;
	if (mode == -1)
		return deny(d, 400, "annotation 'pipewarden.io/identity': unknown mode "
		    "'%s' (known: workload-identity, pat, none)", identity);
	t->identity = (enum identity_mode)mode;
	/* A team's own identity: Entra accepts it only if its federated
	 * credential names the pod's ServiceAccount. */
	if (client_id != NULL && !names_is_guid(client_id))
		return deny(d, 400, "annotation 'pipewarden.io/client-id': '%.64s' is not a "
		    "GUID; give the Entra application's (client) id or remove the annotation "
		    "to use the cluster's", client_id);
	t->client_id = client_id != NULL ? client_id : cfg->client_id;
	if (t->identity == IDENTITY_PAT && cfg->pat_secret[0] == '\0')
		return deny(d, 400, "annotation 'pipewarden.io/identity': mode 'pat' "
		    "needs config key 'identity.patSecret', which is not set; ask the "
		    "cluster administrator or use workload-identity");
	t->container = NULL;
	i = 0;
	cJSON_ArrayForEach(c, containers) {
		const char *n = field_string(c, "name");
		if (n != NULL && strcmp(n, cname != NULL ? cname : "agent") == 0) {
			t->container = c;
			t->index = i;
			break;
		}
		i++;
	}
	if (t->container == NULL && cname != NULL) {
		list_container_names(containers, list, sizeof(list));
		return deny(d, 400, "annotation 'pipewarden.io/container': no container "
		    "'%s' in the pod (containers: %s)", cname, list);
	}
	if (t->container == NULL) {
		t->container = cJSON_GetArrayItem(containers, 0);
		t->index = 0;
	}
	/* The API server never sends this, but a patch under a container that
	 * is not an object could not be applied. */
	if (!cJSON_IsObject(t->container))
		return deny(d, 400, "spec.containers[%zu] is not an object", t->index);
	t->name = field_string(t->container, "name");
	if (t->name == NULL)
		t->name = "";
	return 0;
}

/*
 * The agent's environment.  Each variable is injected unless the container
 * already has it in env, or an envFrom source may supply it (a ConfigMap or
 * Secret with no prefix, or a prefix the name starts with): env would win
 * over envFrom, silently replacing a team's value, so such a name is
 * skipped and listed in pipewarden.io/skipped-env.  PIPEWARDEN_MANAGED and
 * PIPEWARDEN_POD_UID are always injected (the janitor depends on them).
 */
#define ENV_MAX		12

struct env_var {
	const char	*name;
	const char	*value;		/* a literal value, or */
	const char	*field_path;	/* a fieldRef */
};

struct env_plan {
	struct env_var	 add[ENV_MAX];
	size_t		 nadd;
	char		 skipped[512];	/* "A,B": names an envFrom may supply */
};

static int
envfrom_may_supply(const cJSON *env_from, const char *name)
{
	const cJSON *src;
	const char *prefix;

	cJSON_ArrayForEach(src, env_from) {
		prefix = field_string(src, "prefix");
		if (prefix == NULL || strncmp(name, prefix, strlen(prefix)) == 0)
			return 1;
	}
	return 0;
}

static void
plan_var(struct env_plan *ep, const cJSON *container, const char *name,
    const char *value, const char *field_path, int always)
{
	size_t used = strlen(ep->skipped);

	if (find_named(field_array(container, "env"), name) != NULL)
		return;
	if (!always && envfrom_may_supply(field_array(container, "envFrom"), name)) {
		snprintf(ep->skipped + used, sizeof(ep->skipped) - used, "%s%s",
		    used > 0 ? "," : "", name);
		return;
	}
	ep->add[ep->nadd].name = name;
	ep->add[ep->nadd].value = value;
	ep->add[ep->nadd].field_path = field_path;
	ep->nadd++;
}

/* Whether pipewarden wires workload identity itself: not when the Azure
 * webhook already did (the container has AZURE_FEDERATED_TOKEN_FILE). */
static int
wire_workload_identity(const struct config *cfg, const struct target *t)
{
	return t->identity == IDENTITY_WORKLOAD && cfg->inject_token &&
	    find_named(field_array(t->container, "env"), "AZURE_FEDERATED_TOKEN_FILE") == NULL;
}

/* What the agent container's env gets, and what is skipped. */
static void
plan_env(const struct config *cfg, const struct target *t, struct env_plan *ep)
{
	const cJSON *c = t->container;
	int wire_wi = wire_workload_identity(cfg, t);
	int wire_pat = t->identity == IDENTITY_PAT;

	memset(ep, 0, sizeof(*ep));
	plan_var(ep, c, "AZP_URL", cfg->organization_url, NULL, 0);
	plan_var(ep, c, "AZP_POOL", t->pool, NULL, 0);
	plan_var(ep, c, "AZP_AGENT_NAME", NULL, "metadata.name", 0);
	plan_var(ep, c, "AZP_WORK", cfg->work_dir, NULL, 0);
	plan_var(ep, c, "PIPEWARDEN_MANAGED", "true", NULL, 1);
	plan_var(ep, c, "PIPEWARDEN_POD_UID", NULL, "metadata.uid", 1);
	if (wire_wi) {
		if (t->client_id[0] != '\0')
			plan_var(ep, c, "AZURE_CLIENT_ID", t->client_id, NULL, 0);
		if (cfg->tenant_id[0] != '\0')
			plan_var(ep, c, "AZURE_TENANT_ID", cfg->tenant_id, NULL, 0);
		plan_var(ep, c, "AZURE_FEDERATED_TOKEN_FILE",
		    AZURE_TOKEN_DIR "/" AZURE_TOKEN_VOLUME, NULL, 0);
		plan_var(ep, c, "AZURE_AUTHORITY_HOST", cfg->authority_host, NULL, 0);
	}
	if (wire_pat)
		plan_var(ep, c, "AZP_TOKEN_FILE", AZP_SECRET_DIR "/token", NULL, 0);
}

static void
env_emit(struct group *env, const struct env_var *v)
{
	struct buf b;

	buf_init(&b, PATCH_MAX);
	buf_adds(&b, "{\"name\":");
	buf_add_json_string(&b, v->name);
	if (v->field_path != NULL) {
		buf_adds(&b, ",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":");
		buf_add_json_string(&b, v->field_path);
		buf_adds(&b, "}}}");
	} else {
		buf_adds(&b, ",\"value\":");
		buf_add_json_string(&b, v->value);
		buf_addc(&b, '}');
	}
	group_add_buf(env, NULL, &b);
}

/* Pod labels and annotations. */
static void
patch_metadata(const struct config *cfg, const struct policy_input *in,
    const struct target *t, const struct env_plan *ep, const cJSON *labels,
    const cJSON *annotations, struct patch *p)
{
	char value[LABEL_VALUE_MAX + 1];
	struct group g;

	group_open(&g, p, NULL, "/metadata/labels", labels != NULL, 0);
	if (field(labels, "pipewarden.io/managed") == NULL)
		group_add_string(&g, "pipewarden.io/managed", "true");
	if (field(labels, "pipewarden.io/pool") == NULL) {
		names_label_value(t->pool, value);
		group_add_string(&g, "pipewarden.io/pool", value);
	}
	if (t->identity == IDENTITY_WORKLOAD &&
	    field(labels, "azure.workload.identity/use") == NULL)
		group_add_string(&g, "azure.workload.identity/use", "true");
	group_close(&g);

	group_open(&g, p, NULL, "/metadata/annotations", annotations != NULL, 0);
	if (field(annotations, "pipewarden.io/injected") == NULL)
		group_add_string(&g, "pipewarden.io/injected", in->version);
	if (!cfg->safe_to_evict &&
	    field(annotations, "cluster-autoscaler.kubernetes.io/safe-to-evict") == NULL)
		group_add_string(&g, "cluster-autoscaler.kubernetes.io/safe-to-evict", "false");
	if (ep->skipped[0] != '\0' && field(annotations, "pipewarden.io/skipped-env") == NULL)
		group_add_string(&g, "pipewarden.io/skipped-env", ep->skipped);
	group_close(&g);
}

/* The agent container: env, resources, mounts; the pod: volumes. */
static int
patch_agent(const struct config *cfg, const struct target *t, const struct env_plan *ep,
    const cJSON *spec, struct patch *p, struct policy_decision *d)
{
	const cJSON *env = field_array(t->container, "env");
	const cJSON *mounts = field_array(t->container, "volumeMounts");
	const cJSON *volumes = field_array(spec, "volumes");
	int wire_wi = wire_workload_identity(cfg, t);
	int wire_pat = t->identity == IDENTITY_PAT;
	struct group container, g;
	char path[64];
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "/spec/containers/%zu", t->index);
	group_open(&container, p, NULL, path, 1, 0);

	group_open(&g, p, &container, "env", env != NULL, 1);
	for (i = 0; i < ep->nadd; i++)
		env_emit(&g, &ep->add[i]);
	group_close(&g);

	group_open(&g, p, &container, "resources",
	    field_object(t->container, "resources") != NULL, 0);
	rc = fill_resources(t->profile, t->container, t->name, field_object(spec, "resources"),
	    &g, d);
	group_close(&g);
	if (rc == -1 || d->result == POLICY_DENIED) {
		group_close(&container);
		return rc;
	}

	group_open(&g, p, &container, "volumeMounts", mounts != NULL, 1);
	if (wire_wi && !has_mount(mounts, AZURE_TOKEN_VOLUME, AZURE_TOKEN_DIR))
		group_add(&g, NULL, "{\"name\":\"" AZURE_TOKEN_VOLUME "\","
		    "\"readOnly\":true,\"mountPath\":\"" AZURE_TOKEN_DIR "\"}");
	if (wire_pat && !has_mount(mounts, AZP_SECRET_VOLUME, AZP_SECRET_DIR))
		group_add(&g, NULL, "{\"name\":\"" AZP_SECRET_VOLUME "\","
		    "\"readOnly\":true,\"mountPath\":\"" AZP_SECRET_DIR "\"}");
	group_close(&g);
	group_close(&container);

	group_open(&g, p, NULL, "/spec/volumes", volumes != NULL, 1);
	if (wire_wi && find_named(volumes, AZURE_TOKEN_VOLUME) == NULL)
		group_add(&g, NULL, "{\"name\":\"" AZURE_TOKEN_VOLUME "\",\"projected\":"
		    "{\"sources\":[{\"serviceAccountToken\":{\"audience\":"
		    "\"api://AzureADTokenExchange\",\"expirationSeconds\":3600,"
		    "\"path\":\"" AZURE_TOKEN_VOLUME "\"}}]}}");
	if (wire_pat && find_named(volumes, AZP_SECRET_VOLUME) == NULL) {
		struct buf v;
		buf_init(&v, 4096);
		buf_adds(&v, "{\"name\":\"" AZP_SECRET_VOLUME "\",\"secret\":"
		    "{\"secretName\":");
		buf_add_json_string(&v, cfg->pat_secret);
		buf_adds(&v, ",\"items\":[{\"key\":\"token\",\"path\":\"token\"}]}}");
		group_add_buf(&g, NULL, &v);
	}
	group_close(&g);
	return 0;
}

/* Pod scheduling: tolerations and nodeSelector. */
static void
patch_scheduling(const struct config *cfg, const cJSON *spec, struct patch *p)
{
	const cJSON *tolerations = field_array(spec, "tolerations");
	const cJSON *selector = field_object(spec, "nodeSelector");
	const cJSON *pt;
	struct group g;
	struct buf v;
	size_t i;

	group_open(&g, p, NULL, "/spec/tolerations", tolerations != NULL, 1);
	for (i = 0; i < cfg->ntolerations; i++) {
		const struct toleration *t = &cfg->tolerations[i];
		int dup = 0;

		cJSON_ArrayForEach(pt, tolerations)
			dup |= same_toleration(t, pt);
		if (dup)
			continue;
		buf_init(&v, 4096);
		toleration_json(t, &v);
		group_add_buf(&g, NULL, &v);
	}
	group_close(&g);

	group_open(&g, p, NULL, "/spec/nodeSelector", selector != NULL, 0);
	for (i = 0; i < cfg->nnode_selector; i++)
		if (field(selector, cfg->node_selector[i].key) == NULL)
			group_add_string(&g, cfg->node_selector[i].key,
			    cfg->node_selector[i].value);
	group_close(&g);
}

int
policy_decide(const struct config *cfg, const struct policy_input *in,
    struct policy_decision *d)
{
	const cJSON *metadata, *labels, *annotations, *spec, *containers;
	const char *who, *kind;
	struct target t;
	struct env_plan ep;
	struct patch p;

	memset(d, 0, sizeof(*d));
	memset(&t, 0, sizeof(t));
	buf_init(&p.text, PATCH_MAX);
	p.nops = 0;
	d->result = POLICY_UNCHANGED;
	/* Only pods being created are ours; everything else passes untouched. */
	if (in->pod == NULL || !cJSON_IsObject(in->pod) ||
	    strcmp(in->operation, "CREATE") != 0 || strcmp(in->kind, "Pod") != 0 ||
	    in->group[0] != '\0')
		return 0;
	metadata = field_object(in->pod, "metadata");
	labels = field_object(metadata, "labels");
	annotations = field_object(metadata, "annotations");
	if ((d->opted_in = opted_in(labels, annotations, d)) != 1)
		return d->opted_in;

	if (check_unknown_annotations(annotations, d) == -1)
		return -1;
	spec = field_object(in->pod, "spec");
	containers = field_array(spec, "containers");
	if (cJSON_GetArraySize(containers) == 0)
		return deny(d, 400, "pod has no containers in spec.containers");
	if (read_annotations(cfg, annotations, containers, &t, d) == -1)
		return -1;
	if (d->result == POLICY_DENIED)
		return 0;
	if (cfg->deny_plaintext_token) {
		kind = NULL;
		who = plaintext_token(field_array(spec, "initContainers"), &kind,
		    "init container");
		if (who == NULL)
			who = plaintext_token(containers, &kind, "container");
		if (who != NULL)
			return deny(d, 403, "%s \"%s\" sets AZP_TOKEN as a literal value "
			    "(a plaintext PAT); use pipewarden.io/identity: "
			    "workload-identity or pat (secret file) instead", kind, who);
	}
	if (!config_has_pool(cfg, t.pool) &&
	    warn(d, "pool '%s' is not in the config's 'pools'; pipewarden-janitor "
	    "will not clean up its offline agents", t.pool) == -1)
		return -1;

	plan_env(cfg, &t, &ep);
	patch_metadata(cfg, in, &t, &ep, labels, annotations, &p);
	if (patch_agent(cfg, &t, &ep, spec, &p, d) == -1)
		goto nomem;
	if (d->result == POLICY_DENIED) {
		buf_release(&p.text);
		return 0;
	}
	patch_scheduling(cfg, spec, &p);
	if (p.nops > 0) {
		buf_addc(&p.text, ']');
		d->nops = p.nops;
		if ((d->patch = buf_detach(&p.text, &d->patch_len)) == NULL)
			goto nomem;
		d->result = POLICY_PATCHED;
	}
	buf_release(&p.text);
	return 0;
nomem:
	buf_release(&p.text);
	return -1;
}
