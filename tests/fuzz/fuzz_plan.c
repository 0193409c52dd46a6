/* Janitor plan inputs, drawn from the fuzzer's bytes.  Invariants: never
 * more deletions than the cap; never a pod of another node (or, not being
 * leader, an unscheduled one); never a busy, online, disabled or (with
 * onlyManagedAgents) unmanaged agent; nothing deleted from a partial list;
 * a Job is kept for a live pod only when another of its pods is Pending,
 * Running or Unknown and not terminating. */
#include <string.h>

#include "../../janitor/plan.h"
#include "fuzz.h"

static const uint8_t *p, *end;

static unsigned
take(unsigned n)
{
	return p < end ? (unsigned)(*p++) % n : 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a", "b", "keda-placeholder-1", "c" };
	static const char *const nodes[] = { "n1", "n2", "" };
	static char *keep[] = { "keda-placeholder*" };
	struct pod_info pods[16], all[16];
	struct agent_info agents[32];
	struct pool_agents pool;
	struct janitor_config cfg;
	struct plan_input in;
	struct plan pl;
	size_t i;

	p = data;
	end = data + size;
	memset(&cfg, 0, sizeof(cfg));
	cfg.offline_grace_seconds = take(4) * 300;
	cfg.finished_pod_ttl_seconds = take(4) * 100;
	cfg.stuck_pending_seconds = 1 + take(4) * 300;
	cfg.pending_timeout_seconds = cfg.stuck_pending_seconds + take(4) * 600;
	cfg.max_deletions_per_cycle = take(6);
	cfg.only_managed_agents = take(2);
	cfg.keep_agents = keep;
	cfg.nkeep_agents = 1;
	memset(&in, 0, sizeof(in));
	in.cfg = &cfg;
	in.now = 100000;
	in.node = "n1";
	in.leader = take(2);
	in.all_pods_complete = take(2);
	in.n_node_pods = take(17);
	in.n_all_pods = take(17);
	memset(pods, 0, sizeof(pods));
	memset(all, 0, sizeof(all));
	for (i = 0; i < in.n_node_pods + in.n_all_pods; i++) {
		struct pod_info *q = i < in.n_node_pods ? &pods[i] : &all[i - in.n_node_pods];
		q->namespace = "ns";
		q->name = names[take(4)];
		q->uid = names[take(4)];
		q->node = nodes[take(3)];
		q->phase = (enum pod_phase)take(5);
		q->created = in.now - take(8) * 200;
		q->finished = take(2) ? in.now - take(8) * 100 : 0;
		q->agent_finished = take(2) ? in.now - take(8) * 100 : 0;
		q->deleting = take(4) == 0;
		q->waiting_error = take(2);
		q->owner = (enum owner_kind)take(3);
		q->owner_name = q->owner_uid = names[take(4)];
	}
	in.node_pods = pods;
	in.all_pods = all;
	pool.pool = "aks-pool";
	pool.agents = agents;
	pool.n = take(33);
	pool.complete = take(2);
	for (i = 0; i < pool.n; i++) {
		agents[i].id = (long long)i;
		agents[i].name = names[take(4)];
		agents[i].online = take(2);
		agents[i].enabled = take(2);
		agents[i].busy = take(2);
		agents[i].managed = take(2);
		agents[i].created = in.now - take(8) * 400;
		agents[i].status_changed = take(2) ? in.now - take(8) * 200 : 0;
		agents[i].pod_uid = take(2) ? names[take(4)] : NULL;
	}
	in.pools = &pool;
	in.npools = take(2);
	FUZZ_ASSERT(plan_make(&in, &pl) == 0);
	FUZZ_ASSERT(pl.pod_deletions <= (size_t)cfg.max_deletions_per_cycle);
	FUZZ_ASSERT(pl.agent_deletions <= (size_t)cfg.max_deletions_per_cycle);
	for (i = 0; i < pl.n; i++) {
		const struct action *a = &pl.items[i];
		if (a->kind == ACT_DELETE_AGENT) {
			FUZZ_ASSERT(in.leader && pool.complete && in.all_pods_complete);
			FUZZ_ASSERT(!a->agent->busy && !a->agent->online && a->agent->enabled);
			FUZZ_ASSERT(!cfg.only_managed_agents || a->agent->managed);
			FUZZ_ASSERT(strncmp(a->agent->name, "keda-placeholder", 16) != 0);
		} else if (a->kind == ACT_DELETE_POD || a->kind == ACT_DELETE_JOB) {
			FUZZ_ASSERT(strcmp(a->pod->node, "n1") == 0 ||
			    (in.leader && a->pod->node[0] == '\0'));
			FUZZ_ASSERT(!a->pod->deleting);
		}
		if (a->kind == ACT_DELETE_JOB) {
			/* The cluster's pods stand for the Job's pods. */
			int active = 0;
			size_t k;
			for (k = 0; k < in.n_all_pods; k++)
				active |= strcmp(all[k].uid, a->pod->uid) != 0 && !all[k].deleting &&
				    all[k].phase != PHASE_SUCCEEDED && all[k].phase != PHASE_FAILED;
			struct job_info job = { 1, (int)take(2), "" };
			snprintf(job.uid, sizeof(job.uid), "%s", a->pod->owner_uid);
			const char *why = plan_job_keep(&cfg, in.now, a->pod, &job, all, in.n_all_pods);
			if (why != NULL && strcmp(why, "job-has-live-pod") == 0)
				FUZZ_ASSERT(active);
			/* An ended pod's Job goes only once the Job finished, or
			 * for a stuck sibling. */
			int stuck = 0;
			for (k = 0; k < in.n_all_pods; k++)
				stuck |= strcmp(all[k].uid, a->pod->uid) != 0 && !all[k].deleting &&
				    all[k].phase != PHASE_SUCCEEDED && all[k].phase != PHASE_FAILED;
			if (why == NULL && (a->pod->phase == PHASE_SUCCEEDED ||
			    a->pod->phase == PHASE_FAILED))
				FUZZ_ASSERT(job.finished || stuck);
		}
	}
	plan_release(&pl);
	return 0;
}
