/*
 * Agent lifecycle, the leader's part: retire the agent pods that hold a
 * node without running a job (plan_retirements says which and why), with
 * Azure DevOps as the lock.  The agent's registration is deleted first: a
 * 200, 204 or 404 means it can never be given a job again, a 400 "running
 * a job" means it just took one and nothing is retired.  Then the pod is
 * annotated pipewarden.io/retired, and the replica on its node removes it
 * by the owner rules (the token's scope stays as the admission policy
 * narrows it).
 */
#include <stdio.h>
#include <string.h>

#include "../common/log.h"
#include "janitor.h"

/* Delete the agent's registration.  Return 1 when the pod may go, 0 when
 * the agent just took a job (kept), -1 when Azure DevOps failed. */
static int
unregister(struct janitor *j, struct cycle *c, const struct retirement *r)
{
	enum ado_delete_result ar;
	char err[512], id[32];

	if (r->agent == NULL)
		return 1;	/* never registered: nothing to unregister */
	err[0] = '\0';
	ar = ado_delete_agent(&j->ado, c->pool_id, r->agent->id, err, sizeof(err));
	snprintf(id, sizeof(id), "%lld", r->agent->id);
	if (ar == ADO_DELETED || ar == ADO_GONE)
		return 1;
	if (ar == ADO_BUSY) {
		metrics_add(j->m_agents_kept, 1, c->pool_name, "busy");
		log_info("not retired: the agent just took a job", "pool", c->pool_name,
		    "agent", r->agent->name, "agentId", id, "pod", r->pod->name, NULL);
		return 0;
	}
	c->failed = 1;
	loop_pool_error(j, c->pool_name);
	log_error("retiring failed: no more retirements in this pool this cycle", "pool",
	    c->pool_name, "agent", r->agent->name, "agentId", id, "error", err, NULL);
	return -1;
}

/* Mark the pod retired (its node's replica removes it), and say so. */
static void
mark_retired(struct janitor *j, struct cycle *c, const struct retirement *r, const char *key)
{
	static const char *const ann[1] = { KUBE_ANN_RETIRED };
	const char *value[1] = { r->reason };
	const char *agent = r->agent != NULL ? r->agent->name : "";
	enum kube_delete_result kr;
	struct kube_object about;
	char err[512], msg[512];

	c->patches++;
	kr = kube_annotate(&j->kube, r->pod, ann, value, 1, err, sizeof(err));
	if (kr == KUBE_REFUSED) {
		act_refused(j, key, "pod", r->pod->namespace, r->pod->name, err);
		return;
	}
	if (kr != KUBE_DELETED) {
		if (kr == KUBE_FAILED) {
			c->failed = 1;
			log_error("marking a pod retired failed; the next cycle tries again",
			    "namespace", r->pod->namespace, "pod", r->pod->name, "error", err, NULL);
		}
		return;
	}
	metrics_add(j->m_agents_retired, 1, c->pool_name, r->reason);
	log_info("retired", "pool", c->pool_name, "agent", agent, "namespace",
	    r->pod->namespace, "pod", r->pod->name, "node", r->pod->node, "reason", r->reason,
	    NULL);
	if (r->agent != NULL)
		snprintf(msg, sizeof(msg), "pipewarden-janitor retired agent %s of pool %s (%s): "
		    "its registration is deleted and the pod goes", agent, c->pool_name, r->reason);
	else
		snprintf(msg, sizeof(msg), "pipewarden-janitor retired the pod (%s): no agent of "
		    "pool %s carries its uid or name; check the agent's token, its pool and its "
		    "network path to Azure DevOps", r->reason, c->pool_name);
	about = kube_pod_object(r->pod);
	if (kube_event(&j->kube, &about, "Normal", "PipewardenRetired", "Retire", msg, c->now,
	    err, sizeof(err)) == -1)
		log_warn("could not record an Event", "pod", r->pod->name, "error", err, NULL);
}

void
retire_pool(struct janitor *j, struct cycle *c, const struct pool_agents *pool)
{
	struct retire_plan rp = { NULL, 0, 0 };
	struct plan_input in;
	size_t i, max = (size_t)j->cfg->janitor.max_deletions_per_cycle;
	char key[192];

	loop_plan_input(j, c, &in);
	if (plan_retirements(&in, pool, c->nodes.nodes, c->nodes.n, &rp) == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	for (i = 0; i < rp.n; i++) {
		const struct retirement *r = &rp.items[i];

		act_key(key, sizeof(key), "patch", r->pod->uid);
		if (act_held(j, key))
			continue;
		if (j->opts->dry_run) {
			log_info("would retire", "pool", pool->pool, "agent", r->agent != NULL ?
			    r->agent->name : "", "namespace", r->pod->namespace, "pod", r->pod->name,
			    "reason", r->reason, NULL);
			continue;
		}
		signals_check(j);
		if (j->stopping || mono() >= c->deadline || !leader_may_act(j, c) ||
		    c->agent_attempts >= max ||
		    c->patches >= (size_t)j->cfg->janitor.max_patches_per_cycle)
			break;
		if (r->agent != NULL)
			c->agent_attempts++;
		switch (unregister(j, c, r)) {
		case 1:
			mark_retired(j, c, r, key);
			break;
		case -1:
			i = rp.n;	/* Azure DevOps failed: this pool's work stops */
			break;
		}
	}
	retire_plan_release(&rp);
}
