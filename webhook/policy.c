#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/names.h"
#include "../common/quantity.h"
#include "decision.h"
#include "patch.h"
#include "podjson.h"
#include "policy.h"
#include "resources.h"

#define POOL_NAME_MAX	256	/* DESIGN: longer than Kubernetes and Azure DevOps allow */

/* What a pod's author may set, then what pipewarden itself writes. */
static const char *const known_annotations[] = {
	"pipewarden.io/inject", "pipewarden.io/pool", "pipewarden.io/profile",
	"pipewarden.io/container", "pipewarden.io/identity", "pipewarden.io/client-id",
	"pipewarden.io/injected", "pipewarden.io/skipped-env",
	"pipewarden.io/job-request-id", "pipewarden.io/pipeline", "pipewarden.io/run",
	"pipewarden.io/run-url", NULL
};

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
	    decision_warn(d, "pipewarden.io/inject: '%s' is neither \"true\" nor "
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
	return decision_warn(d, "%zu unknown pipewarden.io annotation%s ignored (%s); known keys: "
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

/* A toleration as JSON.  "Equal" is what an absent operator means to
 * kube-apiserver and the scheduler, so it is not written (a smaller patch
 * and pod; make bench-admission). */
static void
toleration_json(const struct toleration *t, struct buf *v)
{
	const char *sep = "";

	buf_addc(v, '{');
	if (t->key[0] != '\0') {
		buf_adds(v, "\"key\":");
		buf_add_json_string(v, t->key);
		sep = ",";
	}
	if (strcmp(t->operator, "Equal") != 0) {
		buf_adds(v, sep);
		buf_adds(v, "\"operator\":");
		buf_add_json_string(v, t->operator);
		sep = ",";
	}
	if (t->value[0] != '\0') {
		buf_adds(v, sep);
		buf_adds(v, "\"value\":");
		buf_add_json_string(v, t->value);
		sep = ",";
	}
	if (t->effect[0] != '\0') {
		buf_adds(v, sep);
		buf_adds(v, "\"effect\":");
		buf_add_json_string(v, t->effect);
		sep = ",";
	}
	if (t->has_seconds)
		buf_addf(v, "%s\"tolerationSeconds\":%lld", sep, t->seconds);
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
		return decision_deny(d, 400, "annotation 'pipewarden.io/pool': empty pool name; "
		    "name an Azure DevOps agent pool or remove the annotation to use "
		    "'%s'", cfg->default_pool);
	if (pool != NULL && strlen(pool) > POOL_NAME_MAX)
		return decision_deny(d, 400, "annotation 'pipewarden.io/pool': %zu characters; an "
		    "Azure DevOps agent pool name has at most %d", strlen(pool), POOL_NAME_MAX);
	t->pool = pool != NULL ? pool : cfg->default_pool;
	snprintf(d->pool, sizeof(d->pool), "%s", t->pool);
	if ((t->profile = config_profile(cfg, profile != NULL ? profile :
	    cfg->default_profile)) == NULL) {
		list_profiles(cfg, list, sizeof(list));
		return decision_deny(d, 400, "annotation 'pipewarden.io/profile': unknown "
		    "profile '%s' (known: %s)", profile, list);
	}
	mode = identity != NULL ? config_identity_parse(identity) : (int)cfg->identity_mode;
	if (mode == -1)
		return decision_deny(d, 400, "annotation 'pipewarden.io/identity': unknown mode "
		    "'%s' (known: workload-identity, pat, none)", identity);
	t->identity = (enum identity_mode)mode;
	/* A team's own identity: Entra accepts it only if its federated
	 * credential names the pod's ServiceAccount. */
	if (client_id != NULL && !names_is_guid(client_id))
		return decision_deny(d, 400, "annotation 'pipewarden.io/client-id': '%.64s' is not a "
		    "GUID; give the Entra application's (client) id or remove the annotation "
		    "to use the cluster's", client_id);
	t->client_id = client_id != NULL ? client_id : cfg->client_id;
	if (t->identity == IDENTITY_PAT && cfg->pat_secret[0] == '\0')
		return decision_deny(d, 400, "annotation 'pipewarden.io/identity': mode 'pat' "
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
		return decision_deny(d, 400, "annotation 'pipewarden.io/container': no container "
		    "'%s' in the pod (containers: %s)", cname, list);
	}
	if (t->container == NULL) {
		t->container = cJSON_GetArrayItem(containers, 0);
		t->index = 0;
	}
	/* The API server never sends this, but a patch under a container that
	 * is not an object could not be applied. */
	if (!cJSON_IsObject(t->container))
		return decision_deny(d, 400, "spec.containers[%zu] is not an object", t->index);
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
	char		 ignore[160];	/* VSO_AGENT_IGNORE's value */
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
/*
 * The agent reports its environment to Azure DevOps as capabilities, which
 * anyone who can read the pool sees.  VSO_AGENT_IGNORE names the identity
 * variables injected here, so the client id and the token paths stay out
 * of them (PIPEWARDEN_* stay: the janitor reads them); a container that sets
 * VSO_AGENT_IGNORE itself keeps its own.
 */
static void
plan_ignore(struct env_plan *ep, const cJSON *container)
{
	static const char *const identity[] = { "AZURE_CLIENT_ID", "AZURE_TENANT_ID",
		"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZP_TOKEN_FILE", NULL };
	size_t i, k, used = 0;

	for (i = 0; i < ep->nadd; i++)
		for (k = 0; identity[k] != NULL; k++)
			if (strcmp(ep->add[i].name, identity[k]) == 0)
				used += (size_t)snprintf(ep->ignore + used, sizeof(ep->ignore) - used,
				    "%s%s", used > 0 ? "," : "", identity[k]);
	if (used > 0)
		plan_var(ep, container, "VSO_AGENT_IGNORE", ep->ignore, NULL, 0);
}

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
	plan_ignore(ep, c);
}

static void
env_emit(struct patch_group *env, const struct env_var *v)
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
	patch_group_add_buf(env, NULL, &b);
}

/* Pod labels and annotations. */
static void
patch_metadata(const struct config *cfg, const struct policy_input *in,
    const struct target *t, const struct env_plan *ep, const cJSON *labels,
    const cJSON *annotations, struct patch *p)
{
	char value[LABEL_VALUE_MAX + 1];
	struct patch_group g;

	patch_group_open(&g, p, NULL, "/metadata/labels", labels != NULL, 0);
	if (field(labels, "pipewarden.io/managed") == NULL)
		patch_group_add_string(&g, "pipewarden.io/managed", "true");
	if (field(labels, "pipewarden.io/pool") == NULL) {
		names_label_value(t->pool, value);
		patch_group_add_string(&g, "pipewarden.io/pool", value);
	}
	if (t->identity == IDENTITY_WORKLOAD &&
	    field(labels, "azure.workload.identity/use") == NULL)
		patch_group_add_string(&g, "azure.workload.identity/use", "true");
	patch_group_close(&g);

	patch_group_open(&g, p, NULL, "/metadata/annotations", annotations != NULL, 0);
	if (field(annotations, "pipewarden.io/injected") == NULL)
		patch_group_add_string(&g, "pipewarden.io/injected", in->version);
	/* A running job pins its node against scale-down, for the cluster
	 * autoscaler and for Karpenter alike. */
	if (!cfg->safe_to_evict &&
	    field(annotations, "cluster-autoscaler.kubernetes.io/safe-to-evict") == NULL)
		patch_group_add_string(&g, "cluster-autoscaler.kubernetes.io/safe-to-evict", "false");
	if (!cfg->safe_to_evict && field(annotations, "karpenter.sh/do-not-disrupt") == NULL)
		patch_group_add_string(&g, "karpenter.sh/do-not-disrupt", "true");
	if (ep->skipped[0] != '\0' && field(annotations, "pipewarden.io/skipped-env") == NULL)
		patch_group_add_string(&g, "pipewarden.io/skipped-env", ep->skipped);
	patch_group_close(&g);
}

/* The agent container: env, resources, mounts; the pod: volumes. */
static int
patch_agent(const struct config *cfg, const struct target *t, const struct env_plan *ep,
    const cJSON *spec, struct patch *p, struct policy_decision *d)
{
	const cJSON *env = field_array(t->container, "env");
	const cJSON *mounts = field_array(t->container, "volumeMounts");
	const cJSON *volumes = field_array(spec, "volumes");
	const cJSON *res;
	int wire_wi = wire_workload_identity(cfg, t);
	int wire_pat = t->identity == IDENTITY_PAT;
	struct patch_group container, g;
	char path[64];
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "/spec/containers/%zu", t->index);
	patch_group_open(&container, p, NULL, path, 1, 0);

	patch_group_open(&g, p, &container, "env", env != NULL, 1);
	for (i = 0; i < ep->nadd; i++)
		env_emit(&g, &ep->add[i]);
	patch_group_close(&g);

	/* kube-apiserver sends "resources": {}: an empty one is replaced
	 * whole (one op instead of one each for requests and limits). */
	res = field_object(t->container, "resources");
	patch_group_open(&g, p, &container, "resources", res != NULL && res->child != NULL, 0);
	rc = resources_fill(t->profile, t->container, t->name, field_object(spec, "resources"),
	    &g, d);
	patch_group_close(&g);
	if (rc == -1 || d->result == POLICY_DENIED) {
		patch_group_close(&container);
		return rc;
	}

	patch_group_open(&g, p, &container, "volumeMounts", mounts != NULL, 1);
	if (wire_wi && !has_mount(mounts, AZURE_TOKEN_VOLUME, AZURE_TOKEN_DIR))
		patch_group_add(&g, NULL, "{\"name\":\"" AZURE_TOKEN_VOLUME "\","
		    "\"readOnly\":true,\"mountPath\":\"" AZURE_TOKEN_DIR "\"}");
	if (wire_pat && !has_mount(mounts, AZP_SECRET_VOLUME, AZP_SECRET_DIR))
		patch_group_add(&g, NULL, "{\"name\":\"" AZP_SECRET_VOLUME "\","
		    "\"readOnly\":true,\"mountPath\":\"" AZP_SECRET_DIR "\"}");
	patch_group_close(&g);
	patch_group_close(&container);

	patch_group_open(&g, p, NULL, "/spec/volumes", volumes != NULL, 1);
	if (wire_wi && find_named(volumes, AZURE_TOKEN_VOLUME) == NULL)
		patch_group_add(&g, NULL, "{\"name\":\"" AZURE_TOKEN_VOLUME "\",\"projected\":"
		    "{\"sources\":[{\"serviceAccountToken\":{\"audience\":"
		    "\"api://AzureADTokenExchange\","
		    "\"path\":\"" AZURE_TOKEN_VOLUME "\"}}]}}");
	if (wire_pat && find_named(volumes, AZP_SECRET_VOLUME) == NULL) {
		struct buf v;
		buf_init(&v, 4096);
		buf_adds(&v, "{\"name\":\"" AZP_SECRET_VOLUME "\",\"secret\":"
		    "{\"secretName\":");
		buf_add_json_string(&v, cfg->pat_secret);
		buf_adds(&v, ",\"items\":[{\"key\":\"token\",\"path\":\"token\"}]}}");
		patch_group_add_buf(&g, NULL, &v);
	}
	patch_group_close(&g);
	return 0;
}

/* Pod scheduling: tolerations and nodeSelector. */
static void
patch_scheduling(const struct config *cfg, const cJSON *spec, struct patch *p)
{
	const cJSON *tolerations = field_array(spec, "tolerations");
	const cJSON *selector = field_object(spec, "nodeSelector");
	const cJSON *pt;
	struct patch_group g;
	struct buf v;
	size_t i;

	patch_group_open(&g, p, NULL, "/spec/tolerations", tolerations != NULL, 1);
	for (i = 0; i < cfg->ntolerations; i++) {
		const struct toleration *t = &cfg->tolerations[i];
		int dup = 0;

		cJSON_ArrayForEach(pt, tolerations)
			dup |= same_toleration(t, pt);
		if (dup)
			continue;
		buf_init(&v, 4096);
		toleration_json(t, &v);
		patch_group_add_buf(&g, NULL, &v);
	}
	patch_group_close(&g);

	patch_group_open(&g, p, NULL, "/spec/nodeSelector", selector != NULL, 0);
	for (i = 0; i < cfg->nnode_selector; i++)
		if (field(selector, cfg->node_selector[i].key) == NULL)
			patch_group_add_string(&g, cfg->node_selector[i].key,
			    cfg->node_selector[i].value);
	patch_group_close(&g);
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
		return decision_deny(d, 400, "pod has no containers in spec.containers");
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
			return decision_deny(d, 403, "%s \"%s\" sets AZP_TOKEN as a literal value "
			    "(a plaintext PAT); use pipewarden.io/identity: "
			    "workload-identity or pat (secret file) instead", kind, who);
	}
	if (!config_has_pool(cfg, t.pool) &&
	    decision_warn(d, "pool '%s' is not in the config's 'pools'; pipewarden-janitor "
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
