/*
 * The janitor's cycle: its phases (this node's pods; as leader, the pods
 * that never reached a node and each pool's agents), and the loop that
 * runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

/* ---- the phases -------------------------------------------------------------- */

void
loop_plan_input(const struct janitor *j, const struct cycle *c, struct plan_input *in)
{
	memset(in, 0, sizeof(*in));
	in->cfg = &j->cfg->janitor;
	in->now = c->now;
	in->node = j->opts->node;
	in->node_pods = c->node_pods.pods;
	in->n_node_pods = c->node_pods.n;
	in->leader = j->elector.leader && !j->lease_lost;
	in->all_pods = c->all_pods.pods;
	in->n_all_pods = c->all_pods.n;
	in->all_pods_complete = c->all_pods_complete;
}

/* Node work, every replica: its own node's pods.  Depends on the
 * Kubernetes API only. */
static void
phase_node(struct janitor *j, struct cycle *c)
{
	struct plan_input in;
	char err[512], sel[512];
	size_t first = c->plan.n;
	double t;
	int rc;

	snprintf(sel, sizeof(sel), "spec.nodeName=%s", j->opts->node);
	if (kube_list_pods(&j->kube, NULL, KUBE_MANAGED_SELECTOR, sel, 1, &c->node_pods, err,
	    sizeof(err)) == -1) {
		log_error("listing this node's pods failed; no pod of it is deleted this "
		    "cycle", "node", j->opts->node, "error", err, NULL);
		c->failed = 1;
		return;
	}
	loop_plan_input(j, c, &in);
	t = cpu_now();
	rc = plan_node_pods(&in, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	act_check_jobs(j, c, first);
	act_deletions(j, c, first, 0);
}

/* The leader's pods that never reached a node; also lists every managed pod,
 * which the pools need to know which agents a pod backs. */
static void
phase_unscheduled(struct janitor *j, struct cycle *c)
{
	struct plan_input in;
	char err[512];
	size_t first = c->plan.n;
	double t;
	int rc;

	if (kube_list_pods(&j->kube, NULL, KUBE_MANAGED_SELECTOR, NULL, 0, &c->all_pods, err,
	    sizeof(err)) == -1) {
		log_error("listing managed pods failed: no agent and no unscheduled pod is "
		    "deleted this cycle", "error", err, NULL);
		c->failed = 1;
		return;
	}
	c->all_pods_complete = 1;
	/* The nodes, for the lifecycle: an idle agent on a draining one goes. */
	if (kube_list_nodes(&j->kube, &c->nodes, err, sizeof(err)) == -1) {
		log_error("listing nodes failed: no agent is retired for its node this cycle",
		    "error", err, NULL);
		c->failed = 1;
	}
	loop_plan_input(j, c, &in);
	t = cpu_now();
	rc = plan_unscheduled_pods(&in, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	/* Renew after the reads, right before this phase's deletions. */
	if (!leader_renew(j, c))
		return;
	act_check_jobs(j, c, first);
	act_deletions(j, c, first, 1);
}

/* The pool's id: cached, else looked up.  Return it, or -1 (logged). */
long long
loop_pool_id(struct janitor *j, size_t i, char *err, size_t errlen)
{
	if (j->pool_ids[i] <= 0 &&
	    (j->pool_ids[i] = ado_pool_id(&j->ado, j->cfg->pools[i], err, errlen)) == -1) {
		j->pool_ids[i] = 0;
		return -1;
	}
	return j->pool_ids[i];
}

/* Count and log a pool's failure; the reason is the client's last error. */
void
loop_pool_error(struct janitor *j, const char *pool)
{
	metrics_add(j->m_pool_errors, 1, pool, ado_error_name(j->ado.last_error));
}

static void
pool_gauges(struct janitor *j, const struct pool_agents *pool)
{
	double online = 0, offline = 0, busy = 0;
	size_t k;

	for (k = 0; k < pool->n; k++) {
		busy += pool->agents[k].busy;
		online += pool->agents[k].online;
		offline += !pool->agents[k].online;
	}
	metrics_set(j->m_agents, online, pool->pool, "online");
	metrics_set(j->m_agents, offline, pool->pool, "offline");
	metrics_set(j->m_agents, busy, pool->pool, "busy");
}

/*
 * One pool's agents, the leader only, within its share of what is left of
 * the cycle's time.  A failure here (lookup, list, authentication, a
 * timeout) deletes none of this pool's agents and nothing else.  A cached
 * pool id that gives 404 is dropped and looked up again (a pool deleted and
 * recreated has a new id).
 */
static void
phase_pool(struct janitor *j, struct cycle *c, size_t i, size_t left)
{
	const char *name = j->cfg->pools[i];
	struct agent_list list;
	struct pool_agents pool;
	struct plan_input in;
	struct pod_lookup lk = { NULL, NULL, 0 };
	struct patch_plan recorded = { NULL, 0, 0 };
	struct pod_list next;
	char err[512];
	int cached, rc = -1;
	size_t first = c->plan.n;
	double t;

	memset(&list, 0, sizeof(list));
	memset(&next, 0, sizeof(next));
	ado_set_deadline(&j->ado, mono() + (c->deadline - mono()) / (double)left);
	cached = j->pool_ids[i] > 0;
	if ((c->pool_id = loop_pool_id(j, i, err, sizeof(err))) != -1 &&
	    (rc = ado_list_agents(&j->ado, c->pool_id, &list, err, sizeof(err))) == -1 &&
	    cached &&
	    j->ado.last_error == ADO_ERR_NOT_FOUND) {
		log_info("the pool's id gave 404: looking the pool up again", "pool", name,
		    NULL);
		j->pool_ids[i] = 0;
		if ((c->pool_id = loop_pool_id(j, i, err, sizeof(err))) != -1)
			rc = ado_list_agents(&j->ado, c->pool_id, &list, err, sizeof(err));
	}
	if (rc == -1) {
		loop_pool_error(j, name);
		log_error("pool work failed: none of its agents is deleted this cycle",
		    "pool", name, "reason", ado_error_name(j->ado.last_error), "error", err,
		    NULL);
		c->failed = 1;
		goto out;
	}
	pool.pool = name;
	pool.agents = list.agents;
	pool.n = list.n;
	pool.complete = 1;
	pool_gauges(j, &pool);
	/* Renew after the reads, right before this pool's deletions. */
	if (!leader_renew(j, c))
		goto out;
	loop_plan_input(j, c, &in);
	t = cpu_now();
	rc = plan_pool_agents(&in, &pool, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1 || plan_lookup_init(&lk, c->all_pods.pods, c->all_pods.n) == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		goto out;
	}
	c->pods = &lk;
	c->pool_name = name;
	act_deletions(j, c, first, 1);
	retire_pool(j, c, &pool);
	/* Then what the leader writes on pods: their agents' jobs, and the
	 * jobs their end interrupted. */
	jobs_annotate(j, c, &pool, &lk);
	jobs_record_interruptions(j, c, &pool, &lk, &recorded);
	jobs_record_gone(j, c, i, &pool, &lk, &next);
	jobs_remember(j, c, i, &pool, &lk, &recorded, &next);
	/* Last, with what is left of the pool's time: why its jobs wait. */
	waiting_pool(j, c, &pool, &lk);
	c->pods = NULL;
	/* The plan points into the list: its items go with it. */
	c->plan.n = first;
out:
	patch_plan_release(&recorded);
	plan_lookup_release(&lk);
	ado_set_deadline(&j->ado, 0);
	agent_list_release(&list);
}

/*
 * One cycle, as a sequence of phases: this node's pods (every replica);
 * then, as leader, the pods that never reached a node, then each pool's
 * agents.  Each phase has its own inputs and failure scope; a leader-only
 * phase reads, then renews the Lease right before its deletions, and every
 * leader-only deletion is held once a renewal fails.  The whole cycle ends within half the Lease.  Return 0, or 1
 * when an API error (or the time budget) left part of it undone.
 */
static int
cycle(struct janitor *j)
{
	struct cycle c;
	char err[512], pods[32], agents[32], ms[32], plan_ms[32];
	int leader;
	size_t i;

	setup_reload(j);
	memset(&c, 0, sizeof(c));
	c.now = time(NULL);
	act_new_cycle(j);
	c.start = mono();
	c.deadline = c.start + (double)j->elector.duration / 2;
	j->lease_lost = 0;
	kube_set_deadline(&j->kube, c.deadline);

	/* Elect first, so that racing replicas see the Lease taken at once. */
	if ((leader = leader_elect(j, err, sizeof(err))) == -1) {
		log_error("leader election failed; no pool work this cycle", "error", err, NULL);
		c.failed = 1;
		leader = 0;
	}
	phase_node(j, &c);
	if (!leader && j->elector.leader)
		log_info("not the leader: node work only", "lease",
		    j->cfg->janitor.lease_name, NULL);
	if (leader) {
		j->elector.leader = 1;
		metrics_set(j->m_is_leader, 1);
		phase_unscheduled(j, &c);
		if (c.all_pods_complete && !j->lease_lost)
			waiting_jobs(j, &c);
		metrics_clear(j->m_agents);
		metrics_clear(j->m_jobs_queued);
		metrics_clear(j->m_oldest_queued);
		for (i = 0; i < j->cfg->npools && !j->stopping && !j->lease_lost; i++)
			if (c.all_pods_complete)
				phase_pool(j, &c, i, j->cfg->npools - i);
		waiting_prune(j);
	} else {
		leader_lose(j);
	}
	kube_set_deadline(&j->kube, 0);

	snprintf(pods, sizeof(pods), "%zu", c.plan.pod_deletions);
	snprintf(agents, sizeof(agents), "%zu", c.plan.agent_deletions);
	snprintf(ms, sizeof(ms), "%.1f", (mono() - c.start) * 1000);
	snprintf(plan_ms, sizeof(plan_ms), "%.2f", c.plan_cpu * 1000);
	log_info("cycle done", "leader", leader ? "true" : "false", "leaseLost",
	    j->lease_lost ? "true" : "false", "podDeletions", pods, "agentDeletions", agents,
	    "failed",
	    c.failed ? "true" : "false", "dryRun", j->opts->dry_run ? "true" : "false",
	    "ms", ms, "planCpuMs", plan_ms, NULL);
	metrics_observe(j->m_duration, mono() - c.start);
	metrics_set(j->m_last_cycle, (double)time(NULL));
	__atomic_store_n(&j->last_cycle_done, (long long)mono(), __ATOMIC_RELAXED);
	plan_release(&c.plan);
	pod_list_release(&c.all_pods);
	pod_list_release(&c.node_pods);
	node_list_release(&c.nodes);
	return c.failed;
}

int
janitor_run(const struct janitor_options *opts, struct config *cfg)
{
	struct janitor j;
	int rc = 2, failed;

	if (setup_open(&j, opts, cfg) == -1)
		goto out;
	if (opts->metrics_port != 0 && !opts->once && health_start(&j, opts->metrics_port) == -1)
		goto out;
	log_info("started", "node", opts->node, "identity", opts->identity,
	    "namespace", opts->namespace, "dryRun", opts->dry_run ? "true" : "false",
	    "auth", opts->pat_file != NULL ? "pat" : "workload-identity", NULL);
	for (;;) {
		failed = cycle(&j);
		if (opts->once) {
			rc = failed ? 1 : 0;
			break;
		}
		if (signals_wait(&j, (double)j.cfg->janitor.interval_seconds) == -1) {
			rc = 0;
			break;
		}
	}
	leader_release(&j);
	log_info("stopped", NULL);
out:
	setup_close(&j);
	return rc;
}
