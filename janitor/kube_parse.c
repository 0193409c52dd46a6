/*
 * Reading the Kubernetes API's answers: pods (one at a time from a page,
 * into compact records), Jobs, Leases.  Pure: bytes in, plain data out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/array.h"
#include "../common/jsonscan.h"
#include "../common/quantity.h"
#include "../common/timefmt.h"
#include <cjson/cJSON.h>

#include "kube_parse.h"

/* ---- parsing ------------------------------------------------------------ */

static const cJSON *
get(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNull(v) ? NULL : v;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = get(o, k);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static time_t
when(const cJSON *o, const char *k)
{
	time_t t;

	return time_parse(str(o, k), &t, NULL) == 0 ? t : 0;
}

static enum pod_phase
phase_of(const char *s)
{
	if (s == NULL)
		return PHASE_UNKNOWN;
	if (strcmp(s, "Pending") == 0)
		return PHASE_PENDING;
	if (strcmp(s, "Running") == 0)
		return PHASE_RUNNING;
	if (strcmp(s, "Succeeded") == 0)
		return PHASE_SUCCEEDED;
	if (strcmp(s, "Failed") == 0)
		return PHASE_FAILED;
	return PHASE_UNKNOWN;
}

/* The agent container, chosen as the webhook chooses it. */
static const char *
agent_container(const cJSON *pod)
{
	const cJSON *meta = get(pod, "metadata"), *c;
	const cJSON *containers = get(get(pod, "spec"), "containers");
	const char *want = str(get(meta, "annotations"), "pipewarden.io/container");

	cJSON_ArrayForEach(c, containers)
		if (str(c, "name") != NULL && strcmp(str(c, "name"),
		    want != NULL ? want : "agent") == 0)
			return str(c, "name");
	if (want != NULL)
		return want;
	return str(cJSON_GetArrayItem(containers, 0), "name");
}

/* Whether a container that waits with this reason cannot start by itself
 * (DESIGN "Pending and stuck"); init containers also for CrashLoopBackOff. */
static int
waiting_error(const cJSON *cs, int init)
{
	static const char *const errors[] = { "ErrImagePull", "ImagePullBackOff",
		"InvalidImageName", "CreateContainerConfigError", "CreateContainerError",
		NULL };
	const char *reason = str(get(get(cs, "state"), "waiting"), "reason");
	size_t i;

	if (reason == NULL)
		return 0;
	if (init && strcmp(reason, "CrashLoopBackOff") == 0)
		return 1;
	for (i = 0; errors[i] != NULL; i++)
		if (strcmp(reason, errors[i]) == 0)
			return 1;
	return 0;
}

/* DisruptionTarget reasons: the metric's reason, and whether its cause
 * deletes the pod (the kubelet's own termination leaves it Failed). */
static const struct {
	const char	*condition;
	const char	*reason;
	int		 deletes;
} disruptions[] = {
	{ "PreemptionByScheduler", "Preempted", 1 },
	{ "EvictionByEvictionAPI", "Evicted", 1 },
	{ "TerminationByKubelet", "Evicted", 0 },
	{ "DeletionByTaintManager", "NodeLost", 1 },
	{ "DeletionByPodGC", "NodeDeleted", 1 },
};

/* The pod's DisruptionTarget condition (status True), as an index into
 * disruptions, or -1. */
static int
disruption(const cJSON *pod)
{
	const cJSON *cond;
	const char *r;
	size_t i;

	cJSON_ArrayForEach(cond, get(get(pod, "status"), "conditions")) {
		if (str(cond, "type") == NULL || strcmp(str(cond, "type"), "DisruptionTarget") != 0 ||
		    str(cond, "status") == NULL || strcmp(str(cond, "status"), "True") != 0 ||
		    (r = str(cond, "reason")) == NULL)
			continue;
		for (i = 0; i < sizeof(disruptions) / sizeof(disruptions[0]); i++)
			if (strcmp(r, disruptions[i].condition) == 0)
				return (int)i;
	}
	return -1;
}

/*
 * Why a pod's work ended abnormally, or NULL: its agent container was
 * OOMKilled, the kubelet evicted it or its activeDeadlineSeconds passed
 * (status.reason), or the DisruptionTarget condition says why it is going
 * (the scheduler preempted it, the Eviction API or the taint manager
 * evicted it, the pod garbage collector removes it because its node is
 * gone; d: its disruption() index).  The values are the metric's reason
 * label.
 */
static const char *
end_reason(const cJSON *pod, const char *agent, int d, time_t *end_time)
{
	const cJSON *status = get(pod, "status"), *cs, *term;
	const char *reason = str(status, "reason"), *r;

	*end_time = 0;
	cJSON_ArrayForEach(cs, get(status, "containerStatuses")) {
		if (agent == NULL || str(cs, "name") == NULL || strcmp(str(cs, "name"), agent) != 0)
			continue;
		/* A restarted container keeps its previous death in lastState:
		 * its time tells which job it belongs to. */
		term = get(get(cs, "state"), "terminated");
		if ((r = str(term, "reason")) == NULL) {
			term = get(get(cs, "lastState"), "terminated");
			r = str(term, "reason");
		}
		if (r != NULL && strcmp(r, "OOMKilled") == 0) {
			*end_time = when(term, "finishedAt");
			return "OOMKilled";
		}
	}
	if (reason != NULL && strcmp(reason, "Evicted") == 0)
		return "Evicted";
	if (reason != NULL && strcmp(reason, "DeadlineExceeded") == 0)
		return "DeadlineExceeded";
	return d >= 0 ? disruptions[d].reason : NULL;
}

/* A quantity as a double (cores, bytes); 0 when absent or not one. */
static double
quantity_value(const char *s)
{
	struct quantity q;

	if (s == NULL || quantity_parse(s, &q) == -1 || q.nano < 0)
		return 0;
	return (double)q.nano / 1e9;
}

/* The agent container's cpu and memory requests (usageByPipeline). */
static void
agent_requests(const cJSON *pod, const char *agent, struct pod_info *p)
{
	const cJSON *c, *req;

	cJSON_ArrayForEach(c, get(get(pod, "spec"), "containers")) {
		if (agent == NULL || str(c, "name") == NULL || strcmp(str(c, "name"), agent) != 0)
			continue;
		req = get(get(c, "resources"), "requests");
		p->cpu_request = quantity_value(str(req, "cpu"));
		p->memory_request = quantity_value(str(req, "memory"));
		return;
	}
}

static void
parse_pod(const cJSON *item, struct pod_info *p)
{
	const cJSON *meta = get(item, "metadata"), *spec = get(item, "spec");
	const cJSON *status = get(item, "status"), *o, *cs, *cond;
	const char *agent = agent_container(item);
	time_t t;
	int d;

	memset(p, 0, sizeof(*p));
	p->namespace = str(meta, "namespace");
	p->name = str(meta, "name");
	p->uid = str(meta, "uid");
	p->node = str(spec, "nodeName");
	if (p->node == NULL)
		p->node = "";
	p->phase = phase_of(str(status, "phase"));
	p->created = when(meta, "creationTimestamp");
	p->deleting = get(meta, "deletionTimestamp") != NULL;
	p->job.request_id = str(get(meta, "annotations"), KUBE_ANN_REQUEST);
	p->job.pipeline = str(get(meta, "annotations"), KUBE_ANN_PIPELINE);
	p->job.run = str(get(meta, "annotations"), KUBE_ANN_RUN);
	p->job.run_url = str(get(meta, "annotations"), KUBE_ANN_RUN_URL);
	p->interruption = str(get(meta, "annotations"), KUBE_ANN_INTERRUPTION);
	p->retired = str(get(meta, "annotations"), KUBE_ANN_RETIRED);
	p->pool = str(get(meta, "labels"), "pipewarden.io/pool");
	d = disruption(item);
	p->end_reason = end_reason(item, agent, d, &p->end_time);
	p->going = p->deleting || (d >= 0 && disruptions[d].deletes);
	cJSON_ArrayForEach(o, get(meta, "ownerReferences")) {
		if (!cJSON_IsTrue(get(o, "controller")))
			continue;
		p->owner = str(o, "kind") != NULL && strcmp(str(o, "kind"), "Job") == 0 &&
		    str(o, "apiVersion") != NULL &&
		    strcmp(str(o, "apiVersion"), "batch/v1") == 0 ? OWNER_JOB : OWNER_OTHER;
		p->owner_name = str(o, "name");
		p->owner_uid = str(o, "uid");
		if (p->owner_name == NULL || p->owner_uid == NULL)
			p->owner = OWNER_OTHER;	/* cannot address it: never deleted for Pending */
	}
	cJSON_ArrayForEach(cs, get(status, "containerStatuses")) {
		t = when(get(get(cs, "state"), "terminated"), "finishedAt");
		if (t > p->finished)
			p->finished = t;
		if (agent != NULL && str(cs, "name") != NULL &&
		    strcmp(str(cs, "name"), agent) == 0) {
			p->agent_finished = t;
			p->agent_started = when(get(get(cs, "state"), "running"), "startedAt");
			p->agent_began = p->agent_started ? p->agent_started :
			    when(get(get(cs, "state"), "terminated"), "startedAt");
		}
		p->waiting_error |= waiting_error(cs, 0);
	}
	cJSON_ArrayForEach(cs, get(status, "initContainerStatuses"))
		p->waiting_error |= waiting_error(cs, 1);
	agent_requests(item, agent, p);
	cJSON_ArrayForEach(cond, get(status, "conditions")) {
		if (str(cond, "type") != NULL && strcmp(str(cond, "type"), "PodScheduled") == 0 &&
		    str(cond, "status") != NULL && strcmp(str(cond, "status"), "True") == 0)
			p->scheduled = when(cond, "lastTransitionTime");
		if (str(cond, "type") != NULL && strcmp(str(cond, "type"), "PodScheduled") == 0 &&
		    str(cond, "status") != NULL && strcmp(str(cond, "status"), "False") == 0 &&
		    str(cond, "reason") != NULL && strcmp(str(cond, "reason"), "Unschedulable") == 0)
			p->unschedulable = 1;
	}
}

int
pod_list_add(struct pod_list *l, const struct pod_info *pod)
{
	struct pod_info p = *pod;

	if (array_grow(&l->pods, &l->cap, l->n, sizeof(*l->pods), 256) == -1)
		return -1;
	if ((p.namespace = strpool_add(&l->strings, p.namespace)) == NULL ||
	    (p.name = strpool_add(&l->strings, p.name)) == NULL ||
	    (p.uid = strpool_add(&l->strings, p.uid)) == NULL ||
	    (p.node = strpool_add(&l->strings, p.node)) == NULL ||
	    (p.owner_name != NULL && (p.owner_name = strpool_add(&l->strings, p.owner_name)) == NULL) ||
	    (p.owner_uid != NULL && (p.owner_uid = strpool_add(&l->strings, p.owner_uid)) == NULL) ||
	    plan_job_ref_keep(&l->strings, &p.job) == -1 ||
	    (p.interruption != NULL &&
	    (p.interruption = strpool_add(&l->strings, p.interruption)) == NULL) ||
	    (p.retired != NULL && (p.retired = strpool_add(&l->strings, p.retired)) == NULL) ||
	    (p.pool != NULL && (p.pool = strpool_add(&l->strings, p.pool)) == NULL))
		return -1;
	l->pods[l->n++] = p;
	return 0;
}

struct pods_scan {
	struct pod_list	*l;
	char		*cont;
	char		*err;
	size_t		 errlen;
	int		 found;
};

static int
scan_pod(const char *text, size_t len, void *cls)
{
	struct pods_scan *sc = cls;
	struct pod_list *l = sc->l;
	struct pod_info p;
	cJSON *item;
	int rc = -1;

	if ((item = cJSON_ParseWithLength(text, len)) == NULL) {
		snprintf(sc->err, sc->errlen, "pod list: an item is not valid JSON");
		return -1;
	}
	parse_pod(item, &p);
	/* A pod the API server would never send: skip, do not guess. */
	if (p.namespace == NULL || p.name == NULL || p.uid == NULL)
		rc = 0;
	else if ((rc = pod_list_add(l, &p)) == -1)
		snprintf(sc->err, sc->errlen, "out of memory");
	cJSON_Delete(item);
	return rc;
}

static int
scan_podlist(const char *key, size_t keylen, const char *value, size_t len, void *cls)
{
	struct pods_scan *sc = cls;
	const char *cont;
	cJSON *meta;

	if (keylen == 5 && memcmp(key, "items", 5) == 0) {
		sc->found = 1;
		if (len == 4 && memcmp(value, "null", 4) == 0)
			return 0;
		return jsonscan_array(value, len, scan_pod, sc);
	}
	if (keylen == 8 && memcmp(key, "metadata", 8) == 0) {
		meta = cJSON_ParseWithLength(value, len);
		cont = str(meta, "continue");
		free(sc->cont);		/* a repeated "metadata" key: the last one wins */
		sc->cont = NULL;
		if (cont != NULL && cont[0] != '\0' && (sc->cont = strdup(cont)) == NULL) {
			cJSON_Delete(meta);
			return -1;
		}
		cJSON_Delete(meta);
	}
	return 0;
}

int
kube_parse_pods(struct pod_list *l, const char *body, size_t len, char **continue_token,
    char *err, size_t errlen)
{
	struct pods_scan sc = { l, NULL, err, errlen, 0 };

	*continue_token = NULL;
	err[0] = '\0';
	if (jsonscan_object(body, len, scan_podlist, &sc) == -1 || !sc.found) {
		if (err[0] == '\0')
			snprintf(err, errlen, "pod list: not a PodList");
		free(sc.cont);
		return -1;
	}
	*continue_token = sc.cont;
	return 0;
}

void
pod_list_release(struct pod_list *l)
{
	strpool_release(&l->strings);
	free(l->pods);
	memset(l, 0, sizeof(*l));
}

/* Job conditions after which its controller starts no pod again. */
static int
job_terminal(const char *type)
{
	static const char *const terminal[] = { "Complete", "Failed", "SuccessCriteriaMet",
		"FailureTarget", NULL };
	size_t i;

	for (i = 0; type != NULL && terminal[i] != NULL; i++)
		if (strcmp(type, terminal[i]) == 0)
			return 1;
	return 0;
}

/* Whether a Job object has a terminal condition that is True. */
static int
job_finished(const cJSON *job)
{
	const cJSON *conds = get(get(job, "status"), "conditions"), *c;

	for (c = cJSON_IsArray(conds) ? conds->child : NULL; c != NULL; c = c->next)
		if (job_terminal(str(c, "type")) && str(c, "status") != NULL &&
		    strcmp(str(c, "status"), "True") == 0)
			return 1;
	return 0;
}

int
kube_parse_job(const char *body, size_t len, struct job_info *j, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body ? body : "", len);
	const char *uid;
	int rc = -1;

	memset(j, 0, sizeof(*j));
	if (!cJSON_IsObject(root) || str(root, "kind") == NULL ||
	    strcmp(str(root, "kind"), "Job") != 0 || !cJSON_IsObject(get(root, "metadata"))) {
		snprintf(err, errlen, "get job: the answer is not a Job");
		goto out;
	}
	j->exists = 1;
	uid = str(get(root, "metadata"), "uid");
	if (uid != NULL && strlen(uid) < sizeof(j->uid))
		memcpy(j->uid, uid, strlen(uid) + 1);
	j->finished = job_finished(root);
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

struct kube_object
kube_pod_object(const struct pod_info *pod)
{
	struct kube_object o = { "v1", "Pod", pod->namespace, pod->name, pod->uid };

	return o;
}

/* ---- Nodes ------------------------------------------------------------------ */

static int
parse_node(struct node_list *l, const cJSON *item)
{
	const cJSON *taint;
	struct node_info n;
	char keys[4096];
	size_t used = 0;
	const char *k;

	memset(&n, 0, sizeof(n));
	keys[0] = '\0';
	n.unschedulable = cJSON_IsTrue(get(get(item, "spec"), "unschedulable"));
	cJSON_ArrayForEach(taint, get(get(item, "spec"), "taints")) {
		if ((k = str(taint, "key")) != NULL && strlen(k) + 1 < sizeof(keys) - used)
			used += (size_t)snprintf(keys + used, sizeof(keys) - used, "%s\n", k);
	}
	if (str(get(item, "metadata"), "name") == NULL ||
	    array_grow(&l->nodes, &l->cap, l->n, sizeof(*l->nodes), 64) == -1 ||
	    (n.name = strpool_add(&l->strings, str(get(item, "metadata"), "name"))) == NULL ||
	    (n.taints = strpool_add(&l->strings, keys)) == NULL)
		return -1;
	l->nodes[l->n++] = n;
	return 0;
}

int
kube_parse_nodes(struct node_list *l, const char *body, size_t len, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body != NULL ? body : "", len);
	const cJSON *item;
	int rc = -1;

	if (str(root, "kind") == NULL || strcmp(str(root, "kind"), "NodeList") != 0 ||
	    !cJSON_IsArray(get(root, "items"))) {
		snprintf(err, errlen, "list nodes: the answer is not a NodeList");
		goto out;
	}
	cJSON_ArrayForEach(item, get(root, "items"))
		if (parse_node(l, item) == -1) {
			snprintf(err, errlen, "list nodes: out of memory, or a node without a name");
			goto out;
		}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

void
node_list_release(struct node_list *l)
{
	strpool_release(&l->strings);
	free(l->nodes);
	memset(l, 0, sizeof(*l));
}

/* ---- Jobs that never get a pod ------------------------------------------ */

static int
opts_in(const cJSON *meta)
{
	const char *a = str(get(meta, "annotations"), "pipewarden.io/inject");
	const char *l = str(get(meta, "labels"), "pipewarden.io/inject");

	if (a != NULL)
		return strcmp(a, "true") == 0;
	return l != NULL && strcmp(l, "true") == 0;
}

static long long
count(const cJSON *status, const char *key)
{
	const cJSON *v = get(status, key);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ? (long long)v->valuedouble : 0;
}

static int
parse_job_summary(struct job_list *l, const cJSON *item)
{
	const cJSON *meta = get(item, "metadata"), *status = get(item, "status");
	struct job_summary j;

	memset(&j, 0, sizeof(j));
	if (str(meta, "namespace") == NULL || str(meta, "name") == NULL || str(meta, "uid") == NULL)
		return 0;	/* not an object the API server sends: skipped */
	j.created = when(meta, "creationTimestamp");
	j.opted_in = opts_in(get(get(get(item, "spec"), "template"), "metadata"));
	j.suspended = cJSON_IsTrue(get(get(item, "spec"), "suspend"));
	j.pods = count(status, "active") + count(status, "succeeded") + count(status, "failed");
	j.finished = job_finished(item);
	if (array_grow(&l->items, &l->cap, l->n, sizeof(*l->items), 64) == -1 ||
	    (j.namespace = strpool_add(&l->strings, str(meta, "namespace"))) == NULL ||
	    (j.name = strpool_add(&l->strings, str(meta, "name"))) == NULL ||
	    (j.uid = strpool_add(&l->strings, str(meta, "uid"))) == NULL)
		return -1;
	l->items[l->n++] = j;
	return 0;
}

int
kube_parse_jobs(struct job_list *l, const char *body, size_t len, char **cont, char *err,
    size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body != NULL ? body : "", len);
	const cJSON *item;
	const char *c;
	int rc = -1;

	*cont = NULL;
	if (str(root, "kind") == NULL || strcmp(str(root, "kind"), "JobList") != 0 ||
	    !cJSON_IsArray(get(root, "items"))) {
		snprintf(err, errlen, "list jobs: the answer is not a JobList");
		goto out;
	}
	cJSON_ArrayForEach(item, get(root, "items"))
		if (parse_job_summary(l, item) == -1) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	c = str(get(root, "metadata"), "continue");
	if (c != NULL && c[0] != '\0' && (*cont = strdup(c)) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

void
job_list_release(struct job_list *l)
{
	strpool_release(&l->strings);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

int
kube_parse_newest_event(const char *body, size_t len, char *msg, size_t msglen, char *err,
    size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(body != NULL ? body : "", len);
	const cJSON *item;
	time_t t, newest = -1;
	int rc = -1;

	msg[0] = '\0';
	if (str(root, "kind") == NULL || strcmp(str(root, "kind"), "EventList") != 0 ||
	    !cJSON_IsArray(get(root, "items"))) {
		snprintf(err, errlen, "list events: the answer is not an EventList");
		goto out;
	}
	cJSON_ArrayForEach(item, get(root, "items")) {
		if ((t = when(item, "lastTimestamp")) == 0 && (t = when(item, "eventTime")) == 0)
			t = when(get(item, "metadata"), "creationTimestamp");
		if (t >= newest && str(item, "message") != NULL) {
			newest = t;
			snprintf(msg, msglen, "%s", str(item, "message"));
		}
	}
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

/* ---- the Lease ---------------------------------------------------------- */

int
kube_parse_lease(const char *body, size_t len, struct lease *l, char *err, size_t errlen)
{
	const cJSON *spec, *meta, *v;
	cJSON *root;
	int rc = -1;

	memset(l, 0, sizeof(*l));
	root = cJSON_ParseWithLength(body, len);
	meta = get(root, "metadata");
	spec = get(root, "spec");
	if (str(meta, "resourceVersion") == NULL) {
		snprintf(err, errlen, "lease: not a Lease");
		goto out;
	}
	l->exists = 1;
	snprintf(l->resource_version, sizeof(l->resource_version), "%s",
	    str(meta, "resourceVersion"));
	snprintf(l->holder, sizeof(l->holder), "%s",
	    str(spec, "holderIdentity") ? str(spec, "holderIdentity") : "");
	v = get(spec, "leaseDurationSeconds");
	l->duration = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9 ?
	    (long long)v->valuedouble : 0;
	v = get(spec, "leaseTransitions");
	l->transitions = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15 ?
	    (long long)v->valuedouble : 0;
	if (str(spec, "renewTime") != NULL)
		time_parse(str(spec, "renewTime"), &l->renew, &l->renew_ns);
	if (str(spec, "acquireTime") != NULL)
		time_parse(str(spec, "acquireTime"), &l->acquire, &l->acquire_ns);
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}
