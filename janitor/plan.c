#include <stdlib.h>
#include <string.h>

#include "../common/array.h"
#include "../common/names.h"
#include "plan.h"

static int
add(struct plan *p, struct action a)
{
	if (array_grow(&p->items, &p->cap, p->n, sizeof(*p->items), 64) == -1)
		return -1;
	p->items[p->n++] = a;
	return 0;
}

int
plan_is_delete(const struct action *a)
{
	return a->kind == ACT_DELETE_POD || a->kind == ACT_DELETE_JOB ||
	    a->kind == ACT_DELETE_AGENT;
}

/* When a finished pod finished: its containers' latest finishedAt, else
 * its creation (a pod evicted before any container ran). */
static time_t
finished_at(const struct pod_info *pod)
{
	return pod->finished != 0 ? pod->finished : pod->created;
}

/*
 * Why a pod should go (a static reason), or NULL to keep it; *keep_reason
 * says why not when it is kept.
 */
static const char *
pod_verdict(const struct janitor_config *cfg, time_t now, const struct pod_info *pod,
    const char **keep_reason)
{
	*keep_reason = NULL;
	if (pod->deleting) {
		*keep_reason = "terminating";
		return NULL;
	}
	/* The leader retired its agent (the registration is gone): the pod
	 * goes, unless a controller would bring it back. */
	if (pod->retired != NULL && pod->owner != OWNER_OTHER)
		return "retired";
	switch (pod->phase) {
	case PHASE_SUCCEEDED:
	case PHASE_FAILED:
		if (now - finished_at(pod) > cfg->finished_pod_ttl_seconds)
			return "finished";
		*keep_reason = "finished-within-ttl";
		return NULL;
	case PHASE_RUNNING:
		if (pod->agent_finished != 0 &&
		    now - pod->agent_finished > cfg->finished_pod_ttl_seconds)
			return "agent-finished";
		*keep_reason = "running";
		return NULL;
	case PHASE_PENDING:
		/* A container that cannot start goes sooner than one still
		 * pulling a big image or waiting for a node being added. */
		if (pod->waiting_error && now - pod->created > cfg->stuck_pending_seconds)
			return "stuck-pending";
		if (now - pod->created > cfg->pending_timeout_seconds)
			return pod->unschedulable ? "unschedulable" : "pending-timeout";
		*keep_reason = "pending";
		return NULL;
	case PHASE_UNKNOWN:
		break;
	}
	*keep_reason = "unknown-phase";
	return NULL;
}

/* Whether a Job deletion for the same Job is already planned. */
static int
job_planned(const struct plan *p, const struct pod_info *pod)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->items[i].kind == ACT_DELETE_JOB &&
		    strcmp(p->items[i].pod->owner_uid, pod->owner_uid) == 0)
			return 1;
	return 0;
}

static int
plan_pod(const struct plan_input *in, struct plan *p, const struct pod_info *pod)
{
	const struct janitor_config *cfg = in->cfg;
	const char *reason, *keep;
	struct action a = { ACT_KEEP_POD, NULL, pod, NULL, NULL };

	if ((reason = pod_verdict(cfg, in->now, pod, &keep)) == NULL) {
		a.reason = keep;
		return add(p, a);
	}
	/* Another controller would recreate a Pending pod at once. */
	if (pod->owner == OWNER_OTHER && pod->phase == PHASE_PENDING) {
		a.reason = "owned-by-controller";
		return add(p, a);
	}
	if (pod->owner == OWNER_JOB && job_planned(p, pod))
		return 0;
	a.kind = pod->owner == OWNER_JOB ? ACT_DELETE_JOB : ACT_DELETE_POD;
	a.reason = reason;
	p->pod_deletions++;
	return add(p, a);
}

static int	same_str(const char *a, const char *b);

static int
kept_by_glob(const struct janitor_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nkeep_agents; i++)
		if (names_glob_match(cfg->keep_agents[i], name))
			return 1;
	return 0;
}

/* Why an agent is kept, or NULL when it may be deleted.  Every rule must
 * let it go; the first that does not names the reason.  complete: the
 * agents and every managed pod were listed whole; pods finds the pod that
 * backs an agent. */
static const char *
agent_keep_reason(const struct janitor_config *cfg, time_t now, int complete,
    const struct pod_lookup *pods, const struct agent_info *ag)
{
	time_t since = ag->status_changed != 0 ? ag->status_changed : ag->created;

	if (ag->online)
		return "online";
	if (ag->busy)
		return "busy";
	if (!ag->enabled)
		return "disabled";
	if (cfg->only_managed_agents && !ag->managed)
		return "unmanaged";
	if (kept_by_glob(cfg, ag->name))
		return "keep-agents";
	if (now - since <= cfg->offline_grace_seconds)
		return "grace";
	if (!complete)
		return "incomplete-list";
	if (plan_lookup_agent(pods, ag) != NULL)
		return "pod-exists";
	return NULL;
}

const char *
plan_agent_recheck(const struct janitor_config *cfg, time_t now, const struct agent_info *listed,
    const struct agent_info *fresh, const struct pod_lookup *pods)
{
	const char *why;

	if (fresh->id != listed->id || fresh->status_changed != listed->status_changed)
		return "changed";
	if (!same_str(fresh->pod_uid, listed->pod_uid))
		return "re-registered";
	if ((why = agent_keep_reason(cfg, now, 1, pods, fresh)) != NULL)
		return why;
	return NULL;
}

int
plan_node_pods(const struct plan_input *in, struct plan *p)
{
	size_t i;

	/* Only pods of this node, whatever the list held. */
	for (i = 0; i < in->n_node_pods; i++) {
		const struct pod_info *pod = &in->node_pods[i];
		if (pod->node == NULL || in->node == NULL || strcmp(pod->node, in->node) != 0)
			continue;
		if (plan_pod(in, p, pod) == -1)
			goto nomem;
	}
	return 0;
nomem:
	plan_release(p);
	return -1;
}

int
plan_unscheduled_pods(const struct plan_input *in, struct plan *p)
{
	size_t i;

	if (!in->leader)
		return 0;
	/* Pods that never reached a node belong to no node's replica. */
	for (i = 0; i < in->n_all_pods; i++) {
		const struct pod_info *pod = &in->all_pods[i];
		if (pod->node[0] != '\0' || pod->phase != PHASE_PENDING)
			continue;
		if (plan_pod(in, p, pod) == -1)
			goto nomem;
	}
	return 0;
nomem:
	plan_release(p);
	return -1;
}

int
plan_pool_agents(const struct plan_input *in, const struct pool_agents *pool,
    struct plan *p)
{
	struct pod_lookup lk = { NULL, NULL, 0 };
	int complete = pool->complete && in->all_pods_complete;
	size_t i;

	if (!in->leader)
		return 0;
	if (plan_lookup_init(&lk, in->all_pods, in->n_all_pods) == -1)
		goto nomem;
	for (i = 0; i < pool->n; i++) {
		const struct agent_info *ag = &pool->agents[i];
		struct action a = { ACT_KEEP_AGENT, NULL, NULL, ag, pool->pool };

		a.reason = agent_keep_reason(in->cfg, in->now, complete, &lk, ag);
		if (a.reason == NULL) {
			a.kind = ACT_DELETE_AGENT;
			a.reason = "offline";
			p->agent_deletions++;
		}
		if (add(p, a) == -1)
			goto nomem;
	}
	plan_lookup_release(&lk);
	return 0;
nomem:
	plan_lookup_release(&lk);
	plan_release(p);
	return -1;
}

void
plan_cap(struct plan *p, size_t first, long long max)
{
	size_t i, pods = 0, agents = 0;

	for (i = first; i < p->n; i++) {
		struct action *a = &p->items[i];
		size_t *n = a->kind == ACT_DELETE_AGENT ? &agents : &pods;

		if (!plan_is_delete(a))
			continue;
		if (*n < (size_t)max) {
			(*n)++;
			continue;
		}
		if (a->kind == ACT_DELETE_AGENT)
			p->agent_deletions--;
		else
			p->pod_deletions--;
		a->kind = a->agent != NULL ? ACT_KEEP_AGENT : ACT_KEEP_POD;
		a->reason = "deletion-cap";
	}
}

int
plan_make(const struct plan_input *in, struct plan *p)
{
	size_t j;

	memset(p, 0, sizeof(*p));
	if (plan_node_pods(in, p) == -1 || plan_unscheduled_pods(in, p) == -1)
		return -1;
	for (j = 0; in->leader && j < in->npools; j++)
		if (plan_pool_agents(in, &in->pools[j], p) == -1)
			return -1;
	plan_cap(p, 0, in->cfg->max_deletions_per_cycle);
	return 0;
}

/* Whether the pod has ended (its Job may then be between retries). */
static int
terminal(const struct pod_info *pod)
{
	return pod->phase == PHASE_SUCCEEDED || pod->phase == PHASE_FAILED;
}

const char *
plan_job_keep(const struct janitor_config *cfg, time_t now, const struct pod_info *pod,
    const struct job_info *job, const struct pod_info *job_pods, size_t n)
{
	const char *keep;
	int listed = 0, stuck_sibling = 0;
	size_t i;

	if (!job->exists)
		return "job-gone";
	if (strcmp(job->uid, pod->owner_uid) != 0)
		return "job-replaced";
	for (i = 0; i < n; i++) {
		const struct pod_info *o = &job_pods[i];
		if (strcmp(o->uid, pod->uid) == 0) {
			listed = 1;
			continue;
		}
		if (o->deleting || terminal(o))
			continue;
		if (pod_verdict(cfg, now, o, &keep) == NULL)
			return "job-has-live-pod";
		stuck_sibling = 1;
	}
	if (!listed)
		return "job-pods-unknown";
	/* A stuck sibling is reason enough: it is why the Job cannot finish. */
	if (terminal(pod) && !job->finished && !stuck_sibling)
		return "job-not-finished";
	return NULL;
}

void
plan_release(struct plan *p)
{
	free(p->items);
	memset(p, 0, sizeof(*p));
}

/* ---- the pipeline job behind each pod ------------------------------------ */

static int
same_str(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

int
plan_job_ref_equal(const struct job_ref *a, const struct job_ref *b)
{
	return same_str(a->request_id, b->request_id) && same_str(a->pipeline, b->pipeline) &&
	    same_str(a->run, b->run) && same_str(a->run_url, b->run_url);
}

int
plan_job_ref_keep(struct strpool *sp, struct job_ref *j)
{
	const char **f[4] = { &j->request_id, &j->pipeline, &j->run, &j->run_url };
	size_t i;

	for (i = 0; i < 4; i++)
		if (*f[i] != NULL && (*f[i] = strpool_add(sp, *f[i])) == NULL)
			return -1;
	return 0;
}

static int
cmp_pod_uid(const void *a, const void *b)
{
	return strcmp((*(const struct pod_info *const *)a)->uid,
	    (*(const struct pod_info *const *)b)->uid);
}

static int
cmp_pod_name(const void *a, const void *b)
{
	return strcmp((*(const struct pod_info *const *)a)->name,
	    (*(const struct pod_info *const *)b)->name);
}

/* The pod among sorted that has key as its uid (by_uid) or name. */
static const struct pod_info *
find_pod(const struct pod_info *const *sorted, size_t n, const char *key, int by_uid)
{
	struct pod_info probe;
	const struct pod_info *pp = &probe;
	const struct pod_info *const *hit;

	memset(&probe, 0, sizeof(probe));
	probe.uid = probe.name = key;
	hit = bsearch(&pp, sorted, n, sizeof(*sorted), by_uid ? cmp_pod_uid : cmp_pod_name);
	return hit != NULL ? *hit : NULL;
}

static int
patch_plan_add(struct patch_plan *out, const struct pod_info *pod, const struct agent_info *ag)
{
	if (array_grow(&out->items, &out->cap, out->n, sizeof(*out->items), 16) == -1)
		return -1;
	out->items[out->n].pod = pod;
	out->items[out->n].agent = ag;
	out->n++;
	return 0;
}

int
plan_lookup_init(struct pod_lookup *lk, const struct pod_info *pods, size_t n)
{
	size_t i;

	lk->n = n;
	lk->by_uid = calloc(n + 1, sizeof(*lk->by_uid));
	lk->by_name = calloc(n + 1, sizeof(*lk->by_name));
	if (lk->by_uid == NULL || lk->by_name == NULL) {
		plan_lookup_release(lk);
		return -1;
	}
	for (i = 0; i < n; i++)
		lk->by_uid[i] = lk->by_name[i] = &pods[i];
	qsort(lk->by_uid, n, sizeof(*lk->by_uid), cmp_pod_uid);
	qsort(lk->by_name, n, sizeof(*lk->by_name), cmp_pod_name);
	return 0;
}

const struct pod_info *
plan_lookup_agent(const struct pod_lookup *lk, const struct agent_info *ag)
{
	return ag->pod_uid != NULL ? find_pod(lk->by_uid, lk->n, ag->pod_uid, 1) :
	    find_pod(lk->by_name, lk->n, ag->name, 0);
}

void
plan_lookup_release(struct pod_lookup *lk)
{
	free(lk->by_uid);
	free(lk->by_name);
	lk->by_uid = lk->by_name = NULL;
	lk->n = 0;
}

int
plan_pod_annotations(const struct pool_agents *pool, const struct pod_lookup *pods,
    int only_managed, size_t max, struct patch_plan *out)
{
	const struct agent_info *ag;
	const struct pod_info *pod;
	size_t i;

	for (i = 0; i < pool->n && out->n < max; i++) {
		ag = &pool->agents[i];
		if (!ag->busy || ag->job.request_id == NULL || (only_managed && !ag->managed))
			continue;
		pod = plan_lookup_agent(pods, ag);
		if (pod == NULL || pod->deleting || plan_job_ref_equal(&pod->job, &ag->job))
			continue;
		if (patch_plan_add(out, pod, ag) == -1)
			return -1;
	}
	return 0;
}

int
plan_interruption_recorded(const struct pod_info *pod, const char *request_id)
{
	const char *v = pod->interruption, *colon;

	if (v == NULL || request_id == NULL)
		return 0;
	/* A value without a request (an earlier version's) is its reason
	 * alone, written for the request annotated then. */
	if ((colon = strchr(v, ':')) == NULL)
		return pod->job.request_id != NULL && strcmp(pod->job.request_id, request_id) == 0;
	return strlen(request_id) == (size_t)(colon - v) &&
	    strncmp(v, request_id, (size_t)(colon - v)) == 0;
}

int
plan_interrupted(const struct pod_info *pod, const struct agent_info *ag)
{
	if (pod->end_reason == NULL || plan_interruption_recorded(pod, ag->job.request_id))
		return 0;
	/* A death before the request was assigned belongs to the job before. */
	if (pod->end_time == 0 || ag->assigned == 0)
		return 1;
	if (pod->end_time < ag->assigned)
		return 0;
	/* A restarted container's death (lastState, the agent running again)
	 * belongs to a request assigned before the container started again.
	 * The times are whole seconds: a container killed, restarted and
	 * given its next job within one second ties the death with the next
	 * job's assignTime, and only its start tells them apart (the real
	 * node does that in well under a second). */
	return pod->agent_started == 0 || ag->assigned < pod->agent_started;
}

int
plan_interruptions(const struct pool_agents *pool, const struct pod_lookup *pods,
    int only_managed, size_t max, struct patch_plan *out)
{
	const struct pod_info *pod;
	size_t i;

	for (i = 0; i < pool->n && out->n < max; i++) {
		if (!pool->agents[i].busy || pool->agents[i].job.request_id == NULL ||
		    (only_managed && !pool->agents[i].managed))
			continue;
		pod = plan_lookup_agent(pods, &pool->agents[i]);
		if (pod != NULL && plan_interrupted(pod, &pool->agents[i]) &&
		    patch_plan_add(out, pod, &pool->agents[i]) == -1)
			return -1;
	}
	return 0;
}

/* An agent that counts for pod writes: busy with a known request, and
 * with only_managed, registered by a managed pod. */
static int
runs_job(const struct agent_info *ag, int only_managed)
{
	return ag->busy && ag->job.request_id != NULL && (!only_managed || ag->managed);
}

int
plan_gone_jobs(const struct pool_agents *pool, const struct pod_lookup *pods,
    const struct pod_lookup *seen, int only_managed, struct patch_plan *out)
{
	const struct agent_info *ag;
	const struct pod_info *was;
	size_t i;

	for (i = 0; i < pool->n; i++) {
		ag = &pool->agents[i];
		if (!runs_job(ag, only_managed) || (was = plan_lookup_agent(seen, ag)) == NULL)
			continue;
		/* Still there (by its uid: a pod replaced under its name is gone). */
		if (find_pod(pods->by_uid, pods->n, was->uid, 1) != NULL)
			continue;
		if (was->job.request_id == NULL || strcmp(was->job.request_id, ag->job.request_id) != 0)
			continue;
		/* Its agent container had ended: the job ended with it, unless
		 * the pod was being deleted (the SIGTERM of a delete ends the
		 * agent while Azure DevOps still holds the job: the real node). */
		if (was->end_reason == NULL && !was->going && (was->agent_finished != 0 ||
		    was->phase == PHASE_SUCCEEDED || was->phase == PHASE_FAILED))
			continue;
		if (patch_plan_add(out, was, ag) == -1)
			return -1;
	}
	return 0;
}

const char *
plan_gone_reason(const struct pod_info *seen, int node_gone)
{
	if (seen->end_reason != NULL)
		return seen->end_reason;
	return node_gone ? "NodeDeleted" : "Deleted";
}

int
plan_running_jobs(const struct pool_agents *pool, const struct pod_lookup *pods,
    int only_managed, struct patch_plan *out)
{
	const struct pod_info *pod;
	size_t i;

	for (i = 0; i < pool->n; i++) {
		if (!runs_job(&pool->agents[i], only_managed))
			continue;
		pod = plan_lookup_agent(pods, &pool->agents[i]);
		if (pod != NULL && !plan_interruption_recorded(pod, pool->agents[i].job.request_id) &&
		    patch_plan_add(out, pod, &pool->agents[i]) == -1)
			return -1;
	}
	return 0;
}

void
patch_plan_release(struct patch_plan *p)
{
	free(p->items);
	p->items = NULL;
	p->n = p->cap = 0;
}

/* ---- agent lifecycle -------------------------------------------------------- */

static int
cmp_node(const void *key, const void *elem)
{
	return strcmp(key, ((const struct node_info *)elem)->name);
}

/* Whether the node named name is cordoned or carries a drain taint. */
static int
node_draining(const struct janitor_config *cfg, const struct node_info *nodes, size_t n,
    const char *name)
{
	const struct node_info *node = bsearch(name, nodes, n, sizeof(*nodes), cmp_node);
	const char *t;
	size_t i, len;

	if (node == NULL)
		return 0;
	if (node->unschedulable)
		return 1;
	for (t = node->taints; t != NULL && *t != '\0'; t += len + 1) {
		len = strcspn(t, "\n");
		for (i = 0; i < cfg->ndrain_taints; i++)
			if (strlen(cfg->drain_taints[i]) == len &&
			    strncmp(cfg->drain_taints[i], t, len) == 0)
				return 1;
	}
	return 0;
}

/* A pod the lifecycle may retire: working, bound, not going, not retired
 * yet, and removable without a controller bringing it back. */
static int
retirable(const struct pod_info *pod)
{
	return pod->phase == PHASE_RUNNING && !pod->deleting && !pod->going &&
	    pod->retired == NULL && pod->owner != OWNER_OTHER && pod->node[0] != '\0';
}

static int
retire_add(struct retire_plan *out, const struct pod_info *pod, const struct agent_info *ag,
    const char *reason)
{
	if (array_grow(&out->items, &out->cap, out->n, sizeof(*out->items), 16) == -1)
		return -1;
	out->items[out->n].pod = pod;
	out->items[out->n].agent = ag;
	out->items[out->n].reason = reason;
	out->n++;
	return 0;
}

/* Why the pod of a registered agent should go, or NULL. */
static const char *
agent_retire_reason(const struct plan_input *in, const struct agent_info *ag,
    const struct pod_info *pod, const struct node_info *nodes, size_t nnodes)
{
	const struct janitor_config *cfg = in->cfg;
	time_t since = ag->status_changed > ag->last_finished ? ag->status_changed :
	    ag->last_finished;

	if (ag->busy || !ag->enabled || kept_by_glob(cfg, ag->name) ||
	    (cfg->only_managed_agents && !ag->managed))
		return NULL;
	if (node_draining(cfg, nodes, nnodes, pod->node))
		return "node-draining";
	if (cfg->idle_agent_seconds > 0 && ag->online && since != 0 &&
	    in->now - since > cfg->idle_agent_seconds)
		return "idle";
	return NULL;
}

int
plan_retirements(const struct plan_input *in, const struct pool_agents *pool,
    const struct node_info *nodes, size_t nnodes, struct retire_plan *out)
{
	const struct janitor_config *cfg = in->cfg;
	struct pod_lookup lk = { NULL, NULL, 0 };
	const struct pod_info *pod;
	unsigned char *registered = NULL;
	char label[64];
	const char *why;
	size_t i;
	int rc = -1;

	if (!in->leader)
		return 0;
	names_label_value(pool->pool, label);
	if (plan_lookup_init(&lk, in->all_pods, in->n_all_pods) == -1 ||
	    (registered = calloc(in->n_all_pods + 1, 1)) == NULL)
		goto out;
	/* Every pod an agent names is registered; one that any busy agent
	 * names (1 | 2) runs a job and is never retired. */
	for (i = 0; i < pool->n; i++)
		if ((pod = plan_lookup_agent(&lk, &pool->agents[i])) != NULL)
			registered[pod - in->all_pods] |= pool->agents[i].busy ? 3 : 1;
	for (i = 0; i < pool->n; i++) {
		const struct agent_info *ag = &pool->agents[i];
		if ((pod = plan_lookup_agent(&lk, ag)) == NULL || (registered[pod - in->all_pods] & 2))
			continue;
		/* The pod's label says which pool its agent registers in. */
		if (pod->pool != NULL && strcmp(pod->pool, label) != 0)
			continue;
		if (retirable(pod) && (why = agent_retire_reason(in, ag, pod, nodes, nnodes)) != NULL &&
		    retire_add(out, pod, ag, why) == -1)
			goto out;
	}
	for (i = 0; cfg->registration_timeout_seconds > 0 && pool->complete &&
	    in->all_pods_complete && i < in->n_all_pods; i++) {
		pod = &in->all_pods[i];
		if (!registered[i] && pod->pool != NULL && strcmp(pod->pool, label) == 0 &&
		    retirable(pod) && pod->agent_started != 0 &&
		    in->now - pod->agent_started > cfg->registration_timeout_seconds &&
		    retire_add(out, pod, NULL, "never-registered") == -1)
			goto out;
	}
	rc = 0;
out:
	free(registered);
	plan_lookup_release(&lk);
	return rc;
}

void
retire_plan_release(struct retire_plan *p)
{
	free(p->items);
	memset(p, 0, sizeof(*p));
}
