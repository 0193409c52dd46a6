/*
 * The janitor's plan: tables of plain data, the fixture pool of
 * ../shared/fixtures/azure-devops/agents-page-1.json with its expected
 * decisions, and a randomized property test whose invariants are written
 * apart from plan.c: never a busy, online, disabled, young, kept or
 * unmanaged agent, never a pod of another node, never more than the cap.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../common/config.h"
#include "../../common/file.h"
#include "../../common/names.h"
#include "../../common/timefmt.h"
#include "../../janitor/ado.h"
#include "../../janitor/holdback.h"
#include "../../janitor/lease.h"
#include "../../janitor/plan.h"
#include "check.h"

/* An agent that runs no job, a pod without the job annotations. */
#define NO_JOB	{ NULL, NULL, NULL, NULL }

#define NOW	1788264000	/* the ADO fixtures' "now": 2026-09-01T12:00:00Z */
#define NODE	"node-a"

static struct janitor_config
default_cfg(void)
{
	static char *keep[] = { "keda-placeholder*" };
	struct janitor_config c;

	memset(&c, 0, sizeof(c));
	c.interval_seconds = 60;
	c.offline_grace_seconds = 600;
	c.finished_pod_ttl_seconds = 300;
	c.stuck_pending_seconds = 900;
	c.pending_timeout_seconds = 3600;
	c.max_deletions_per_cycle = 50;
	c.only_managed_agents = 1;
	c.keep_agents = keep;
	c.nkeep_agents = 1;
	c.lease_name = "pipewarden-janitor";
	return c;
}

static const struct action *
find_agent(const struct plan *p, long long id)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->items[i].agent != NULL && p->items[i].agent->id == id)
			return &p->items[i];
	return NULL;
}

static const struct action *
find_pod(const struct plan *p, const char *name)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->items[i].pod != NULL && strcmp(p->items[i].pod->name, name) == 0)
			return &p->items[i];
	return NULL;
}

static void
expect_agent(const struct plan *p, long long id, enum action_kind kind, const char *reason)
{
	const struct action *a = find_agent(p, id);
	int ok = a != NULL && a->kind == kind && strcmp(a->reason, reason) == 0;

	if (!ok)
		fprintf(stderr, "agent %lld: want %d/%s, got %d/%s\n", id, kind, reason,
		    a ? (int)a->kind : -1, a ? a->reason : "(none)");
	CHECK(ok);
}

static void
expect_pod(const struct plan *p, const char *name, enum action_kind kind, const char *reason)
{
	const struct action *a = find_pod(p, name);
	int ok = a != NULL && a->kind == kind && (reason == NULL || strcmp(a->reason, reason) == 0);

	if (!ok)
		fprintf(stderr, "pod %s: want %d/%s, got %d/%s\n", name, kind,
		    reason ? reason : "", a ? (int)a->kind : -1, a ? a->reason : "(none)");
	CHECK(ok);
}

/* The fixture pool, with the decisions its README lists. */
static const char *find_agent_uid(const struct agent_list *l, long long id);

static void
test_fixture_pool(void)
{
	const char *path = "../shared/fixtures/azure-devops/agents-page-1.json";
	struct janitor_config cfg = default_cfg();
	struct plan_input in;
	struct agent_list l;
	struct pool_agents pool;
	struct pod_info pod;
	struct plan p;
	char err[256], *body;
	size_t len;

	if ((body = file_read(path, 1 << 22, &len)) == NULL) {
		printf("skipped: ../shared not found (the fixture pool)\n");
		return;
	}
	CHECK(ado_parse_agents(body, len, &l, err, sizeof(err)) == 0);
	free(body);
	CHECK(l.n == 12);
	memset(&in, 0, sizeof(in));
	in.cfg = &cfg;
	in.now = NOW;
	in.node = NODE;
	in.leader = 1;
	in.all_pods_complete = 1;
	pool = (struct pool_agents){ "aks-pool", l.agents, l.n, 1 };
	in.pools = &pool;
	in.npools = 1;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.agent_deletions == 3);
	expect_agent(&p, 24588, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 24950, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 24977, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 18422, ACT_KEEP_AGENT, "unmanaged");
	expect_agent(&p, 22971, ACT_KEEP_AGENT, "keep-agents");
	expect_agent(&p, 24911, ACT_KEEP_AGENT, "disabled");
	expect_agent(&p, 24990, ACT_KEEP_AGENT, "unmanaged");
	expect_agent(&p, 25103, ACT_KEEP_AGENT, "busy");
	expect_agent(&p, 25110, ACT_KEEP_AGENT, "grace");
	expect_agent(&p, 25114, ACT_KEEP_AGENT, "online");
	expect_agent(&p, 25116, ACT_KEEP_AGENT, "online");
	expect_agent(&p, 25118, ACT_KEEP_AGENT, "online");
	plan_release(&p);

	/* A listed pod whose uid is the agent's PIPEWARDEN_POD_UID spares it;
	 * a pod that merely has the agent's name does not. */
	memset(&pod, 0, sizeof(pod));
	pod.namespace = "ci";
	pod.node = "node-z";
	pod.phase = PHASE_RUNNING;
	pod.created = NOW - 60;
	pod.name = "somebody-else";
	pod.uid = find_agent_uid(&l, 24588);
	in.all_pods = &pod;
	in.n_all_pods = 1;
	CHECK(pod.uid != NULL);
	CHECK(plan_make(&in, &p) == 0);
	expect_agent(&p, 24588, ACT_KEEP_AGENT, "pod-exists");
	CHECK(p.agent_deletions == 2);
	plan_release(&p);
	pod.name = "aks-pool-agents-b4n7r-q1zsd";	/* 24977's name */
	pod.uid = "00000000-dead-beef-0000-000000000000";
	CHECK(plan_make(&in, &p) == 0);
	expect_agent(&p, 24977, ACT_DELETE_AGENT, "offline");
	plan_release(&p);

	/* A failed or partial pod list deletes no agent. */
	in.all_pods_complete = 0;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.agent_deletions == 0);
	expect_agent(&p, 24588, ACT_KEEP_AGENT, "incomplete-list");
	plan_release(&p);
	in.all_pods_complete = 1;

	/* onlyManagedAgents: false lets the other team's idle agent go, never
	 * the busy one. */
	cfg.only_managed_agents = 0;
	in.n_all_pods = 0;
	CHECK(plan_make(&in, &p) == 0);
	expect_agent(&p, 24990, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 18422, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 25103, ACT_KEEP_AGENT, "busy");
	plan_release(&p);
	cfg.only_managed_agents = 1;

	/* A cap of 2 deletes two and says why the third is spared. */
	cfg.max_deletions_per_cycle = 2;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.agent_deletions == 2);
	expect_agent(&p, 24977, ACT_KEEP_AGENT, "deletion-cap");
	plan_release(&p);
	cfg.max_deletions_per_cycle = 50;

	/* Not the leader: no pool work at all. */
	in.leader = 0;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.n == 0);
	plan_release(&p);
	agent_list_release(&l);

	/* Without includeCapabilities nothing shows PIPEWARDEN_MANAGED, and
	 * without includeAssignedRequest the busy agent looks idle: nothing
	 * may go. */
	body = file_read("../shared/fixtures/azure-devops/agents-page-1-no-includes.json",
	    1 << 22, &len);
	CHECK(body != NULL);
	if (body != NULL) {
		CHECK(ado_parse_agents(body, len, &l, err, sizeof(err)) == 0);
		free(body);
		pool = (struct pool_agents){ "aks-pool", l.agents, l.n, 1 };
		in.leader = 1;
		CHECK(plan_make(&in, &p) == 0);
		CHECK(p.agent_deletions == 0);
		plan_release(&p);
		agent_list_release(&l);
	}
}

static const char *
find_agent_uid(const struct agent_list *l, long long id)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->agents[i].id == id)
			return l->agents[i].pod_uid;
	return NULL;
}

/* The project's own pool: the same kinds of agent as the fixture's. */
static void
test_own_pool(void)
{
	struct janitor_config cfg = default_cfg();
	const struct agent_info agents[] = {
		/* id, name, online, enabled, busy, changed, created, managed, uid */
		{ 1, "vm-agent", 0, 1, 0, NOW - 86400, NOW - 900000, 0, NULL, NO_JOB, 0, 0 },
		{ 2, "keda-placeholder-aks", 0, 1, 0, 0, NOW - 8000000, 1, "u-2", NO_JOB, 0, 0 },
		{ 3, "dead-1", 0, 1, 0, NOW - 700, NOW - 9000, 1, "u-3", NO_JOB, 0, 0 },
		{ 4, "disabled", 0, 0, 0, NOW - 90000, NOW - 99000, 1, "u-4", NO_JOB, 0, 0 },
		{ 5, "busy-offline", 0, 1, 1, NOW - 1900, NOW - 9000, 1, "u-5", NO_JOB, 0, 0 },
		{ 6, "young", 0, 1, 0, NOW - 600, NOW - 9000, 1, "u-6", NO_JOB, 0, 0 },
		{ 7, "online", 1, 1, 0, NOW - 99999, NOW - 99999, 1, "u-7", NO_JOB, 0, 0 },
		{ 8, "never-connected", 0, 1, 0, 0, NOW - 601, 1, "u-8", NO_JOB, 0, 0 },
		{ 9, "backed", 0, 1, 0, NOW - 9000, NOW - 9999, 1, "u-9", NO_JOB, 0, 0 },
		{ 10, "by-name", 0, 1, 0, NOW - 9000, NOW - 9999, 1, NULL, NO_JOB, 0, 0 },
		{ 11, "KEDA-Placeholder-2", 0, 1, 0, NOW - 9000, NOW - 9999, 1, "u-11", NO_JOB, 0, 0 },
	};
	struct pod_info pods[2];
	struct pool_agents pool = { "aks-pool", agents, sizeof(agents) / sizeof(agents[0]), 1 };
	struct plan_input in;
	struct plan p;

	memset(pods, 0, sizeof(pods));
	pods[0] = (struct pod_info){ "ci", "pod-9", "u-9", "n", PHASE_RUNNING, NOW, 0, 0,
	    0, 0, 0, OWNER_JOB, "j", "ju", NO_JOB, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0 };
	pods[1] = (struct pod_info){ "ci", "by-name", "u-x", "n", PHASE_RUNNING, NOW, 0, 0,
	    0, 0, 0, OWNER_JOB, "j2", "ju2", NO_JOB, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0 };
	memset(&in, 0, sizeof(in));
	in.cfg = &cfg;
	in.now = NOW;
	in.node = NODE;
	in.leader = 1;
	in.all_pods = pods;
	in.n_all_pods = 2;
	in.all_pods_complete = 1;
	in.pools = &pool;
	in.npools = 1;
	CHECK(plan_make(&in, &p) == 0);
	expect_agent(&p, 1, ACT_KEEP_AGENT, "unmanaged");
	expect_agent(&p, 2, ACT_KEEP_AGENT, "keep-agents");
	expect_agent(&p, 3, ACT_DELETE_AGENT, "offline");
	expect_agent(&p, 4, ACT_KEEP_AGENT, "disabled");
	expect_agent(&p, 5, ACT_KEEP_AGENT, "busy");
	expect_agent(&p, 6, ACT_KEEP_AGENT, "grace");	/* exactly the grace: kept */
	expect_agent(&p, 7, ACT_KEEP_AGENT, "online");
	expect_agent(&p, 8, ACT_DELETE_AGENT, "offline");	/* aged from createdOn */
	expect_agent(&p, 9, ACT_KEEP_AGENT, "pod-exists");
	expect_agent(&p, 10, ACT_KEEP_AGENT, "pod-exists");
	expect_agent(&p, 11, ACT_KEEP_AGENT, "keep-agents");	/* glob ignores case */
	CHECK(p.agent_deletions == 2);
	plan_release(&p);

	pool.complete = 0;	/* the agents list itself failed */
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.agent_deletions == 0);
	plan_release(&p);
}

static struct pod_info
mkpod(const char *name, const char *node, enum pod_phase phase, time_t created,
    time_t finished, enum owner_kind owner, const char *owner_uid)
{
	struct pod_info p;

	memset(&p, 0, sizeof(p));
	p.namespace = "ci";
	p.name = name;
	p.uid = name;
	p.node = node;
	p.phase = phase;
	p.created = created;
	p.finished = finished;
	p.owner = owner;
	p.owner_name = owner_uid;
	p.owner_uid = owner_uid;
	return p;
}

static void
test_pods(void)
{
	struct janitor_config cfg = default_cfg();
	struct pod_info pods[15], unsched[3];
	struct plan_input in;
	struct plan p;

	pods[0] = mkpod("done-old", NODE, PHASE_SUCCEEDED, NOW - 9000, NOW - 301, OWNER_JOB, "job-1");
	pods[1] = mkpod("done-young", NODE, PHASE_SUCCEEDED, NOW - 9000, NOW - 300, OWNER_JOB, "job-2");
	pods[2] = mkpod("failed-bare", NODE, PHASE_FAILED, NOW - 9000, NOW - 1000, OWNER_NONE, NULL);
	pods[3] = mkpod("failed-rs", NODE, PHASE_FAILED, NOW - 9000, NOW - 1000, OWNER_OTHER, "rs-1");
	pods[4] = mkpod("running", NODE, PHASE_RUNNING, NOW - 9000, 0, OWNER_JOB, "job-3");
	pods[5] = mkpod("sidecar-keeps-it", NODE, PHASE_RUNNING, NOW - 9000, 0, OWNER_JOB, "job-4");
	pods[5].agent_finished = NOW - 400;
	pods[6] = mkpod("pending-stuck", NODE, PHASE_PENDING, NOW - 901, 0, OWNER_JOB, "job-5");
	pods[6].waiting_error = 1;				/* ImagePullBackOff */
	pods[7] = mkpod("pending-young", NODE, PHASE_PENDING, NOW - 899, 0, OWNER_JOB, "job-6");
	pods[7].waiting_error = 1;
	pods[8] = mkpod("pending-rs", NODE, PHASE_PENDING, NOW - 9000, 0, OWNER_OTHER, "rs-2");
	pods[9] = mkpod("pending-bare", NODE, PHASE_PENDING, NOW - 9000, 0, OWNER_NONE, NULL);
	pods[10] = mkpod("terminating", NODE, PHASE_SUCCEEDED, NOW - 9000, NOW - 9000, OWNER_NONE, NULL);
	pods[10].deleting = 1;
	pods[11] = mkpod("other-node", "node-b", PHASE_FAILED, NOW - 9000, NOW - 9000, OWNER_NONE, NULL);
	pods[12] = mkpod("same-job-twice", NODE, PHASE_FAILED, NOW - 9000, NOW - 9000, OWNER_JOB, "job-1");
	pods[13] = mkpod("evicted-no-statuses", NODE, PHASE_FAILED, NOW - 9000, 0, OWNER_NONE, NULL);
	/* Still pulling a big image: only pendingTimeoutSeconds takes it. */
	pods[14] = mkpod("pending-pulling", NODE, PHASE_PENDING, NOW - 3599, 0, OWNER_NONE, NULL);
	/* Waiting for a node the cluster autoscaler adds: the same. */
	unsched[0] = mkpod("unschedulable", "", PHASE_PENDING, NOW - 3601, 0, OWNER_JOB, "job-7");
	unsched[0].unschedulable = 1;
	unsched[1] = mkpod("unscheduled-young", "", PHASE_PENDING, NOW - 3000, 0, OWNER_JOB, "job-8");
	unsched[1].unschedulable = 1;
	unsched[2] = mkpod("unscheduled-rs", "", PHASE_PENDING, NOW - 4000, 0, OWNER_OTHER, "rs-3");

	memset(&in, 0, sizeof(in));
	in.cfg = &cfg;
	in.now = NOW;
	in.node = NODE;
	in.node_pods = pods;
	in.n_node_pods = 15;
	in.all_pods = unsched;
	in.n_all_pods = 3;
	in.all_pods_complete = 1;
	CHECK(plan_make(&in, &p) == 0);
	expect_pod(&p, "done-old", ACT_DELETE_JOB, "finished");
	expect_pod(&p, "done-young", ACT_KEEP_POD, "finished-within-ttl");
	expect_pod(&p, "failed-bare", ACT_DELETE_POD, "finished");
	expect_pod(&p, "failed-rs", ACT_DELETE_POD, "finished");
	expect_pod(&p, "running", ACT_KEEP_POD, "running");
	expect_pod(&p, "sidecar-keeps-it", ACT_DELETE_JOB, "agent-finished");
	expect_pod(&p, "pending-stuck", ACT_DELETE_JOB, "stuck-pending");
	expect_pod(&p, "pending-young", ACT_KEEP_POD, "pending");
	expect_pod(&p, "pending-rs", ACT_KEEP_POD, "owned-by-controller");
	expect_pod(&p, "pending-bare", ACT_DELETE_POD, "pending-timeout");
	expect_pod(&p, "pending-pulling", ACT_KEEP_POD, "pending");
	expect_pod(&p, "terminating", ACT_KEEP_POD, "terminating");
	CHECK(find_pod(&p, "other-node") == NULL);
	CHECK(find_pod(&p, "same-job-twice") == NULL);	/* job-1 goes once */
	expect_pod(&p, "evicted-no-statuses", ACT_DELETE_POD, "finished");
	CHECK(find_pod(&p, "unschedulable") == NULL);	/* not the leader */
	CHECK(p.pod_deletions == 7);
	plan_release(&p);

	in.leader = 1;
	CHECK(plan_make(&in, &p) == 0);
	expect_pod(&p, "unschedulable", ACT_DELETE_JOB, "unschedulable");
	expect_pod(&p, "unscheduled-young", ACT_KEEP_POD, "pending");
	expect_pod(&p, "unscheduled-rs", ACT_KEEP_POD, "owned-by-controller");
	plan_release(&p);

	cfg.max_deletions_per_cycle = 3;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.pod_deletions == 3);
	expect_pod(&p, "pending-bare", ACT_KEEP_POD, "deletion-cap");
	plan_release(&p);
	cfg.max_deletions_per_cycle = 0;
	CHECK(plan_make(&in, &p) == 0);
	CHECK(p.pod_deletions == 0);
	plan_release(&p);
}

/* A Job of uid "job-1" that has finished. */
static const struct job_info job_done = { 1, 1, "job-1" };

static int
job_live(const struct janitor_config *cfg, const struct pod_info *pod, const struct pod_info *job)
{
	const char *why = plan_job_keep(cfg, NOW, pod, &job_done, job, 6);

	return why != NULL && strcmp(why, "job-has-live-pod") == 0;
}

static int
keep_is(const char *why, const char *want)
{
	return why != NULL && strcmp(why, want) == 0;
}

/*
 * A Job goes for a finished pod only once the Job itself has finished: in
 * the Job controller's back-off between a failed pod and its retry the Job
 * has no live pod at all.  A stuck pod's Job goes without a terminal
 * condition (that pod is why it cannot finish).
 */
static void
test_job_state(void)
{
	struct janitor_config cfg = default_cfg();
	struct job_info retrying = { 1, 0, "job-1" }, gone = { 0, 0, "" },
	    replaced = { 1, 1, "job-1-again" };
	struct pod_info failed, stuck, sidecar, list[3];

	failed = mkpod("failed", NODE, PHASE_FAILED, NOW - 9000, NOW - 1000, OWNER_JOB, "job-1");
	stuck = mkpod("stuck", NODE, PHASE_PENDING, NOW - 1000, 0, OWNER_JOB, "job-1");
	stuck.waiting_error = 1;
	sidecar = mkpod("sidecar", NODE, PHASE_RUNNING, NOW - 9000, 0, OWNER_JOB, "job-1");
	sidecar.agent_finished = NOW - 1000;
	list[0] = failed;
	list[1] = stuck;
	list[2] = sidecar;
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &retrying, list, 1), "job-not-finished"));
	/* A sidecar keeps the pod Running: the Job never ends by itself. */
	CHECK(plan_job_keep(&cfg, NOW, &sidecar, &retrying, list + 2, 1) == NULL);
	CHECK(plan_job_keep(&cfg, NOW, &stuck, &retrying, list + 1, 1) == NULL);
	/* The old failed pod's Job, while its retry is stuck: it goes. */
	CHECK(plan_job_keep(&cfg, NOW, &failed, &retrying, list, 2) == NULL);
	CHECK(plan_job_keep(&cfg, NOW, &failed, &job_done, list, 1) == NULL);
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &gone, list, 1), "job-gone"));
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &replaced, list, 1), "job-replaced"));
	/* Finished, but a sibling still at work: the live-pod guard holds. */
	list[1] = mkpod("retry", NODE, PHASE_RUNNING, NOW - 30, 0, OWNER_JOB, "job-1");
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &retrying, list, 2), "job-has-live-pod"));
	list[1] = mkpod("retry", NODE, PHASE_RUNNING, NOW - 30, 0, OWNER_JOB, "job-1");
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &job_done, list, 2), "job-has-live-pod"));
}

/* A Job with a pod still at work is kept: deleting it would kill that pod. */
static void
test_job_busy(void)
{
	struct janitor_config cfg = default_cfg();
	struct pod_info failed, job[6];

	failed = mkpod("failed", NODE, PHASE_FAILED, NOW - 9000, NOW - 1000, OWNER_JOB, "job-1");
	job[0] = failed;				/* itself: never counts */
	job[1] = mkpod("done", "node-b", PHASE_SUCCEEDED, NOW - 9000, NOW - 10, OWNER_JOB, "job-1");
	job[2] = mkpod("gone", "node-b", PHASE_RUNNING, NOW - 9000, 0, OWNER_JOB, "job-1");
	job[2].deleting = 1;
	job[3] = mkpod("stuck", "", PHASE_PENDING, NOW - 901, 0, OWNER_JOB, "job-1");
	job[3].waiting_error = 1;
	job[4] = mkpod("sidecar-done", "node-b", PHASE_RUNNING, NOW - 9000, 0, OWNER_JOB, "job-1");
	job[4].agent_finished = NOW - 400;
	/* Not in its own Job's list: the label is missing, the pods unknown. */
	CHECK(keep_is(plan_job_keep(&cfg, NOW, &failed, &job_done, job, 0), "job-pods-unknown"));
	CHECK(plan_job_keep(&cfg, NOW, &failed, &job_done, job + 1, 4) != NULL);
	CHECK(plan_job_keep(&cfg, NOW, &failed, &job_done, job, 1) == NULL);
	/* Finished (even young), terminating, stuck, agent done: none at work. */
	CHECK(plan_job_keep(&cfg, NOW, &failed, &job_done, job, 5) == NULL);

	job[5] = mkpod("retry", "node-b", PHASE_RUNNING, NOW - 30, 0, OWNER_JOB, "job-1");
	CHECK(job_live(&cfg, &failed, job));
	job[5] = mkpod("retry", "", PHASE_PENDING, NOW - 30, 0, OWNER_JOB, "job-1");
	CHECK(job_live(&cfg, &failed, job));
	job[5] = mkpod("lost-node", "node-c", PHASE_UNKNOWN, NOW - 9000, 0, OWNER_JOB, "job-1");
	CHECK(job_live(&cfg, &failed, job));
	job[5].agent_finished = NOW - 400;		/* Unknown stays "at work" */
	CHECK(job_live(&cfg, &failed, job));
}

/* ---- property test ------------------------------------------------------ */

static unsigned long long rng_state;

static unsigned int
rnd(unsigned int n)
{
	rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (unsigned int)(rng_state >> 33) % n;
}

static const char *const node_names[] = { NODE, "node-b", "" };
static const char *const agent_names[] = { "a-1", "a-2", "keda-placeholder-x",
	"KEDA-PLACEHOLDER", "vm-7", "a-3", "pod-1", "pod-2" };
static const char *const uids[] = { "u-1", "u-2", "u-3", "u-4", "u-5" };

/* The invariants, written apart from plan.c. */
static int
agent_ok_to_delete(const struct plan_input *in, const struct pool_agents *pool,
    const struct agent_info *a)
{
	const struct janitor_config *c = in->cfg;
	time_t since = a->status_changed ? a->status_changed : a->created;
	size_t i;

	if (a->online || a->busy || !a->enabled || !pool->complete ||
	    !in->all_pods_complete || !in->leader)
		return 0;
	if (c->only_managed_agents && !a->managed)
		return 0;
	if (in->now - since <= c->offline_grace_seconds)
		return 0;
	for (i = 0; i < c->nkeep_agents; i++)
		if (names_glob_match(c->keep_agents[i], a->name))
			return 0;
	for (i = 0; i < in->n_all_pods; i++) {
		if (a->pod_uid && strcmp(in->all_pods[i].uid, a->pod_uid) == 0)
			return 0;
		if (!a->pod_uid && strcmp(in->all_pods[i].name, a->name) == 0)
			return 0;
	}
	return 1;
}

static int
pod_ok_to_delete(const struct plan_input *in, const struct pod_info *p)
{
	const struct janitor_config *c = in->cfg;
	int mine = strcmp(p->node, in->node) == 0 || (in->leader && p->node[0] == '\0');

	if (!mine || p->deleting)
		return 0;
	if (p->phase == PHASE_PENDING)
		return p->owner != OWNER_OTHER && in->now - p->created >
		    (p->waiting_error ? c->stuck_pending_seconds : c->pending_timeout_seconds);
	if (p->phase == PHASE_SUCCEEDED || p->phase == PHASE_FAILED)
		return in->now - (p->finished ? p->finished : p->created) > c->finished_pod_ttl_seconds;
	if (p->phase == PHASE_RUNNING)
		return p->agent_finished && in->now - p->agent_finished > c->finished_pod_ttl_seconds;
	return 0;
}

static void
test_property(int runs)
{
	static char *keep[] = { "keda-placeholder*", "vm-*" };
	struct agent_info agents[3][40];
	struct pool_agents pools[3];
	struct pod_info node_pods[40], all_pods[60];
	struct janitor_config cfg;
	struct plan_input in;
	struct plan p;
	int run, bad = 0, deleted_agents = 0, deleted_pods = 0;
	size_t i, j, n_agent_del, n_pod_del;

	rng_state = 20261123;
	for (run = 0; run < runs; run++) {
		cfg = default_cfg();
		cfg.keep_agents = keep;
		cfg.nkeep_agents = 1 + rnd(2);
		cfg.only_managed_agents = rnd(4) != 0;
		cfg.max_deletions_per_cycle = rnd(8);
		cfg.offline_grace_seconds = rnd(1000);
		cfg.finished_pod_ttl_seconds = rnd(600);
		cfg.stuck_pending_seconds = 1 + rnd(1800);
		cfg.pending_timeout_seconds = cfg.stuck_pending_seconds + rnd(3600);
		memset(&in, 0, sizeof(in));
		in.cfg = &cfg;
		in.now = NOW;
		in.node = NODE;
		in.leader = rnd(3) != 0;
		in.all_pods_complete = rnd(5) != 0;
		in.n_node_pods = rnd(40);
		in.n_all_pods = rnd(60);
		for (i = 0; i < in.n_node_pods + in.n_all_pods; i++) {
			struct pod_info *pd = i < in.n_node_pods ? &node_pods[i] :
			    &all_pods[i - in.n_node_pods];
			memset(pd, 0, sizeof(*pd));
			pd->namespace = "ci";
			pd->name = agent_names[rnd(8)];
			pd->uid = uids[rnd(5)];
			pd->node = node_names[rnd(3)];
			pd->phase = (enum pod_phase)rnd(5);
			pd->created = NOW - rnd(4000);
			pd->finished = rnd(3) ? NOW - rnd(2000) : 0;
			pd->agent_finished = rnd(3) ? 0 : NOW - rnd(2000);
			pd->deleting = rnd(6) == 0;
			pd->unschedulable = rnd(2);
			pd->waiting_error = rnd(2);
			pd->owner = (enum owner_kind)rnd(3);
			pd->owner_uid = pd->owner_name = uids[rnd(5)];
		}
		in.node_pods = node_pods;
		in.all_pods = all_pods;
		in.npools = rnd(4);
		for (j = 0; j < in.npools; j++) {
			pools[j].pool = "pool";
			pools[j].agents = agents[j];
			pools[j].n = rnd(40);
			pools[j].complete = rnd(6) != 0;
			for (i = 0; i < pools[j].n; i++) {
				struct agent_info *a = &agents[j][i];
				a->id = (long long)(j * 100 + i);
				a->name = agent_names[rnd(8)];
				a->online = rnd(3) == 0;
				a->enabled = rnd(5) != 0;
				a->busy = rnd(4) == 0;
				a->created = NOW - rnd(100000);
				a->status_changed = rnd(4) ? NOW - rnd(3000) : 0;
				a->managed = rnd(5) != 0;
				a->pod_uid = rnd(3) ? uids[rnd(5)] : NULL;
			}
		}
		in.pools = pools;
		if (plan_make(&in, &p) == -1) {
			bad++;
			continue;
		}
		n_agent_del = n_pod_del = 0;
		for (i = 0; i < p.n; i++) {
			const struct action *a = &p.items[i];
			const struct pool_agents *pool = NULL;
			if (a->kind == ACT_DELETE_AGENT) {
				n_agent_del++;
				for (j = 0; j < in.npools; j++)
					if (a->agent >= pools[j].agents &&
					    a->agent < pools[j].agents + pools[j].n)
						pool = &pools[j];
				if (pool == NULL || !agent_ok_to_delete(&in, pool, a->agent))
					bad++;
			} else if (a->kind == ACT_DELETE_POD || a->kind == ACT_DELETE_JOB) {
				n_pod_del++;
				if (!pod_ok_to_delete(&in, a->pod) ||
				    (a->kind == ACT_DELETE_JOB) != (a->pod->owner == OWNER_JOB))
					bad++;
			}
		}
		if (n_agent_del > (size_t)cfg.max_deletions_per_cycle ||
		    n_pod_del > (size_t)cfg.max_deletions_per_cycle ||
		    n_agent_del != p.agent_deletions || n_pod_del != p.pod_deletions)
			bad++;
		deleted_agents += (int)n_agent_del;
		deleted_pods += (int)n_pod_del;
		plan_release(&p);
	}
	printf("property test: %d random cycles, %d agent and %d pod deletions "
	    "checked, %d violations\n", runs, deleted_agents, deleted_pods, bad);
	CHECK(bad == 0);
	CHECK(deleted_agents > 0 && deleted_pods > 0);	/* the test has teeth */
}

static void
test_lease(void)
{
	struct elector e;
	struct lease cur, next;

	memset(&e, 0, sizeof(e));
	e.identity = "me";
	e.duration = 135;
	memset(&cur, 0, sizeof(cur));
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_CREATE);
	lease_next(&e, LEASE_CREATE, &cur, NOW, 5000, &next);
	CHECK_STR(next.holder, "me");
	CHECK(next.transitions == 0 && next.resource_version[0] == '\0' && next.duration == 135);

	cur.exists = 1;
	snprintf(cur.resource_version, sizeof(cur.resource_version), "7");
	snprintf(cur.holder, sizeof(cur.holder), "me");
	cur.renew = NOW - 10;
	cur.duration = 135;
	cur.transitions = 3;
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_RENEW);
	lease_next(&e, LEASE_RENEW, &cur, NOW, 0, &next);
	CHECK(next.transitions == 3 && strcmp(next.resource_version, "7") == 0 && next.renew == NOW);

	cur.holder[0] = '\0';		/* released */
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_TAKE);

	/* Held by another, fresh: wait.  Expired by the wall clock: a
	 * one-shot janitor takes it; a long-running one only after seeing
	 * the record unchanged for the duration on its own clock. */
	snprintf(cur.holder, sizeof(cur.holder), "other");
	cur.renew = NOW - 10;
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_WAIT);
	cur.renew = NOW - 200;
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_TAKE);
	e.observe = 1;
	e.seen = 0;
	CHECK(lease_decide(&e, &cur, NOW, 100.0) == LEASE_WAIT);	/* first sight */
	CHECK(lease_decide(&e, &cur, NOW + 100, 200.0) == LEASE_WAIT);
	CHECK(lease_decide(&e, &cur, NOW + 135, 235.0) == LEASE_TAKE);
	/* A renewal seen meanwhile restarts the observation. */
	snprintf(cur.resource_version, sizeof(cur.resource_version), "8");
	cur.renew = NOW - 300;
	CHECK(lease_decide(&e, &cur, NOW + 140, 240.0) == LEASE_WAIT);
	lease_next(&e, LEASE_TAKE, &cur, NOW, 0, &next);
	CHECK(next.transitions == 4 && strcmp(next.holder, "me") == 0 &&
	    strcmp(next.resource_version, "8") == 0);
}

static void
test_times(void)
{
	time_t t;
	long ns;
	char out[28];

	CHECK(time_parse("2026-08-28T16:20:00Z", &t, &ns) == 0 && t == 1787934000 && ns == 0);
	CHECK(time_parse("2022-09-28T11:20:22.4633333Z", &t, &ns) == 0 && ns == 463333300);
	CHECK(time_parse("2025-03-14T12:00:00.123456Z", &t, &ns) == 0 && t == 1741953600);
	CHECK(time_parse("2025-03-14T13:00:00+01:00", &t, NULL) == 0 && t == 1741953600);
	CHECK(time_parse("2025-03-14 12:00:00Z", &t, NULL) == -1);
	CHECK(time_parse("2025-03-14T12:00:00", &t, NULL) == -1);
	CHECK(time_parse("2025-03-14T12:00:00.Z", &t, NULL) == -1);
	CHECK(time_parse("2025-13-14T12:00:00Z", &t, NULL) == -1);
	CHECK(time_parse(NULL, &t, NULL) == -1);
	time_format_micro(1741953600, 5000, out);
	CHECK_STR(out, "2025-03-14T12:00:00.000005Z");
}

/* n (at most 7) running pods pod-1... with uids u-1..., in namespace ci on node n. */
static void
running_pods(struct pod_info *pods, size_t n)
{
	static const char *const names[] = { "pod-1", "pod-2", "pod-3", "pod-4", "pod-5",
	    "pod-6", "pod-7" };
	static const char *const pod_uids[] = { "u-1", "u-2", "u-3", "u-4", "u-5", "u-6", "u-7" };
	size_t i;

	memset(pods, 0, n * sizeof(*pods));
	for (i = 0; i < n && i < 7; i++) {
		pods[i].namespace = "ci";
		pods[i].name = names[i];
		pods[i].uid = pod_uids[i];
		pods[i].node = "n";
		pods[i].phase = PHASE_RUNNING;
	}
}

/* The leader's annotations: which pods get the pipeline job of their agent. */
static void
test_pod_annotations(void)
{
	const struct job_ref job = { "1401977", "payments-api - CI", "20260901.3",
	    "https://dev.azure.com/contoso/p/_build/results?buildId=88199" };
	const struct job_ref older = { "1400001", "payments-api - CI", "20260901.1", NULL };
	const struct agent_info agents[] = {
		/* busy, backed by uid u-1: patched */
		{ 1, "a-1", 1, 1, 1, 0, NOW - 60, 1, "u-1", job, 0, 0 },
		/* busy, no uid capability, backed by its name: patched */
		{ 2, "pod-2", 1, 1, 1, 0, NOW - 60, 1, NULL, job, 0, 0 },
		/* busy, its pod already says so: nothing */
		{ 3, "a-3", 1, 1, 1, 0, NOW - 60, 1, "u-3", job, 0, 0 },
		/* busy with a new request on the same pod: patched */
		{ 4, "a-4", 1, 1, 1, 0, NOW - 60, 1, "u-4", job, 0, 0 },
		/* busy, its pod terminating: nothing */
		{ 5, "a-5", 1, 1, 1, 0, NOW - 60, 1, "u-5", job, 0, 0 },
		/* idle: nothing (what it ran stays on its pod) */
		{ 6, "a-6", 1, 1, 0, 0, NOW - 60, 1, "u-6", NO_JOB, 0, 0 },
		/* busy, no pod of ours: nothing */
		{ 7, "vm", 1, 1, 1, 0, NOW - 60, 0, NULL, job, 0, 0 },
		/* busy VM agent named like pod-6: not pod-6's while capabilities are known */
		{ 8, "pod-6", 1, 1, 1, 0, NOW - 60, 0, NULL, job, 0, 0 },
	};
	struct pod_info pods[6];
	struct pool_agents pool = { "aks-pool", agents, sizeof(agents) / sizeof(agents[0]), 1 };
	struct patch_plan pp = { NULL, 0, 0 };
	struct pod_lookup lk;

	running_pods(pods, 6);
	pods[2].job = job;
	pods[3].job = older;
	pods[4].deleting = 1;
	CHECK(plan_lookup_init(&lk, pods, 6) == 0);
	CHECK(plan_pod_annotations(&pool, &lk, 1, 100, &pp) == 0);
	CHECK(pp.n == 3);
	CHECK(pp.n == 3 && pp.items[0].pod == &pods[0] && pp.items[0].agent == &agents[0]);
	CHECK(pp.n == 3 && pp.items[1].pod == &pods[1] && pp.items[1].agent == &agents[1]);
	CHECK(pp.n == 3 && pp.items[2].pod == &pods[3] && pp.items[2].agent == &agents[3]);
	patch_plan_release(&pp);
	/* maxPatchesPerCycle counts over the cycle: a plan that already holds
	 * one gets at most max - 1 more. */
	CHECK(plan_pod_annotations(&pool, &lk, 1, 1, &pp) == 0 && pp.n == 1);
	CHECK(plan_pod_annotations(&pool, &lk, 1, 2, &pp) == 0 && pp.n == 2);
	patch_plan_release(&pp);
	CHECK(plan_pod_annotations(&pool, &lk, 1, 0, &pp) == 0 && pp.n == 0);
	/* Without onlyManagedAgents the list has no capabilities: by name. */
	CHECK(plan_pod_annotations(&pool, &lk, 0, 100, &pp) == 0 && pp.n == 4 &&
	    pp.items[3].pod == &pods[5] && pp.items[3].agent == &agents[7]);
	patch_plan_release(&pp);
	CHECK(plan_job_ref_equal(&job, &job) && !plan_job_ref_equal(&job, &older));
	patch_plan_release(&pp);
	/* Interruptions: a busy agent whose pod ended abnormally, once. */
	pods[0].end_reason = "OOMKilled";		/* busy a-1: recorded */
	pods[2].end_reason = "Evicted";			/* busy a-3, already recorded */
	pods[2].interruption = "Evicted";
	pods[5].end_reason = "Preempted";		/* a-6 idle: nothing */
	CHECK(plan_interruptions(&pool, &lk, 1, 100, &pp) == 0 && pp.n == 1 &&
	    pp.items[0].pod == &pods[0] && pp.items[0].agent == &agents[0]);
	patch_plan_release(&pp);
	CHECK(plan_interruptions(&pool, &lk, 1, 0, &pp) == 0 && pp.n == 0);
	plan_lookup_release(&lk);
}

/* Jobs whose pod is gone: what the leader remembers, and what it records. */
static void
test_gone_jobs(void)
{
	const struct job_ref job = { "1401977", "payments-api - CI", "20260901.3", NULL };
	const struct job_ref next = { "1401978", "payments-api - CI", "20260901.4", NULL };
	const struct agent_info agents[] = {
		/* 0: busy, its pod gone: recorded */
		{ 1, "a-1", 0, 1, 1, 0, NOW - 60, 1, "u-1", job, 0, 0 },
		/* 1: busy, its pod still there: nothing */
		{ 2, "a-2", 1, 1, 1, 0, NOW - 60, 1, "u-2", job, 0, 0 },
		/* 2: busy with another request than the one seen: nothing */
		{ 3, "a-3", 0, 1, 1, 0, NOW - 60, 1, "u-3", next, 0, 0 },
		/* 3: idle now (the job ended; Azure DevOps knows how): nothing */
		{ 4, "a-4", 0, 1, 0, 0, NOW - 60, 1, "u-4", NO_JOB, 0, 0 },
		/* 4: busy, its pod gone after its agent container ended: nothing */
		{ 5, "a-5", 0, 1, 1, 0, NOW - 60, 1, "u-5", job, 0, 0 },
		/* 5: busy, its pod gone, OOMKilled when last seen: recorded */
		{ 6, "a-6", 0, 1, 1, 0, NOW - 60, 1, "u-6", job, 0, 0 },
		/* 6: a VM agent named like a remembered pod: never matched */
		{ 7, "pod-7", 0, 1, 1, 0, NOW - 60, 0, NULL, job, 0, 0 },
		/* 7: busy, never seen by this leader: nothing */
		{ 8, "a-8", 0, 1, 1, 0, NOW - 60, 1, "u-8", job, 0, 0 },
		/* 8: busy, its pod gone after it was deleted and its agent
		 * container ended on the SIGTERM: recorded (the real node) */
		{ 9, "a-9", 0, 1, 1, 0, NOW - 60, 1, "u-9", job, 0, 0 },
	};
	struct pod_info was[8], now[2];
	struct pool_agents pool = { "aks-pool", agents, sizeof(agents) / sizeof(agents[0]), 1 };
	struct patch_plan pp = { NULL, 0, 0 };
	struct pod_lookup lk, seen;
	size_t i;

	running_pods(was, 8);
	was[7] = was[0];
	was[7].name = "pod-9";
	was[7].uid = "u-9";
	was[7].deleting = was[7].going = 1;
	was[7].agent_finished = NOW - 10;
	for (i = 0; i < 8; i++)
		was[i].job = job;
	was[4].agent_finished = NOW - 10;
	was[5].end_reason = "OOMKilled";
	was[5].phase = PHASE_FAILED;
	memset(now, 0, sizeof(now));
	now[0] = was[1];
	now[1] = was[3];
	/* pod-1 replaced under its name: the one seen (u-1) is still gone */
	now[1].name = "pod-1";
	now[1].uid = "u-1-new";
	CHECK(plan_lookup_init(&lk, now, 2) == 0);
	CHECK(plan_lookup_init(&seen, was, 8) == 0);
	CHECK(plan_gone_jobs(&pool, &lk, &seen, 1, &pp) == 0 && pp.n == 3);
	CHECK(pp.n == 3 && pp.items[0].pod == &was[0] && pp.items[0].agent == &agents[0]);
	CHECK(pp.n == 3 && pp.items[1].pod == &was[5] && pp.items[1].agent == &agents[5]);
	CHECK(pp.n == 3 && pp.items[2].pod == &was[7] && pp.items[2].agent == &agents[8]);
	CHECK(strcmp(plan_gone_reason(&was[7], 0), "Deleted") == 0);
	patch_plan_release(&pp);
	/* Without onlyManagedAgents, the VM agent named pod-7 counts by name. */
	CHECK(plan_gone_jobs(&pool, &lk, &seen, 0, &pp) == 0 && pp.n == 4 &&
	    pp.items[2].pod == &was[6]);
	patch_plan_release(&pp);
	CHECK(strcmp(plan_gone_reason(&was[5], 1), "OOMKilled") == 0);
	CHECK(strcmp(plan_gone_reason(&was[0], 1), "NodeDeleted") == 0);
	CHECK(strcmp(plan_gone_reason(&was[0], 0), "Deleted") == 0);
	/* Remembered: busy agents' pods that are there, not yet recorded. */
	CHECK(plan_running_jobs(&pool, &lk, 1, &pp) == 0 && pp.n == 1 &&
	    pp.items[0].pod == &now[0] && pp.items[0].agent == &agents[1]);
	patch_plan_release(&pp);
	now[0].interruption = "Evicted";
	CHECK(plan_running_jobs(&pool, &lk, 1, &pp) == 0 && pp.n == 0);
	plan_lookup_release(&seen);
	plan_lookup_release(&lk);
}

/* An agent read again before its DELETE: deleted only when nothing changed. */
static void
test_recheck(void)
{
	struct janitor_config cfg = default_cfg();
	const struct agent_info listed = { 3, "dead-1", 0, 1, 0, NOW - 7000, NOW - 9000, 1,
	    "u-3", NO_JOB, 0, 0 };
	struct agent_info fresh = listed;
	struct pod_info pods[1];
	struct pod_lookup lk;

	running_pods(pods, 1);
	CHECK(plan_lookup_init(&lk, pods, 1) == 0);
	CHECK(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk) == NULL);
	/* Registered again under its name (config.sh --replace): same id, back
	 * online, a new pod's uid. */
	fresh.online = 1;
	fresh.status_changed = NOW - 5;
	fresh.pod_uid = "u-new";
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "changed");
	fresh.status_changed = listed.status_changed;
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "re-registered");
	fresh.pod_uid = listed.pod_uid;
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "online");
	fresh.online = 0;
	fresh.busy = 1;
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "busy");
	fresh.busy = 0;
	fresh.enabled = 0;
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "disabled");
	fresh.enabled = 1;
	/* Its pod appeared meanwhile (by uid). */
	pods[0].uid = "u-3";
	plan_lookup_release(&lk);
	CHECK(plan_lookup_init(&lk, pods, 1) == 0);
	CHECK_STR(plan_agent_recheck(&cfg, NOW, &listed, &fresh, &lk), "pod-exists");
	plan_lookup_release(&lk);
}

/* An interruption counts once per (pod, request), and only for a death
 * after the request was assigned. */
static void
test_interruption_per_request(void)
{
	const struct job_ref job = { "1401977", "payments-api - CI", "20260901.3", NULL };
	const struct job_ref before = { "1401976", "payments-api - CI", "20260901.2", NULL };
	struct agent_info ag = { 1, "a-1", 1, 1, 1, 0, NOW - 600, 1, "u-0", job, NOW - 100, 0 };
	struct pod_info pod;

	running_pods(&pod, 1);
	pod.end_reason = "OOMKilled";
	/* A restarted container's lastState: killed before this job came. */
	pod.end_time = NOW - 300;
	CHECK(!plan_interrupted(&pod, &ag));
	/* Killed while it ran this job. */
	pod.end_time = NOW - 50;
	CHECK(plan_interrupted(&pod, &ag));
	/* The container restarted (running again since agent_started): its
	 * death belongs to a request assigned before that start.  Killed,
	 * restarted and given this job within one second (the real node):
	 * the times tie, the start tells. */
	pod.end_time = NOW - 100;
	pod.agent_started = NOW - 100;
	CHECK(!plan_interrupted(&pod, &ag));
	/* Killed in the second it was assigned, restarted a second later: this
	 * job's death. */
	pod.agent_started = NOW - 99;
	CHECK(plan_interrupted(&pod, &ag));
	pod.end_time = NOW - 50;
	pod.agent_started = NOW - 49;
	CHECK(plan_interrupted(&pod, &ag));
	pod.agent_started = 0;
	/* A pod-level end (evicted, preempted) has no time: it ends every job. */
	pod.end_time = 0;
	CHECK(plan_interrupted(&pod, &ag));
	/* Recorded for the job before: this one still counts. */
	pod.end_time = NOW - 50;
	pod.interruption = "1401976:OOMKilled";
	CHECK(!plan_interruption_recorded(&pod, "1401977"));
	CHECK(plan_interrupted(&pod, &ag));
	/* Recorded for this one: once. */
	pod.interruption = "1401977:OOMKilled";
	CHECK(plan_interruption_recorded(&pod, "1401977"));
	CHECK(!plan_interruption_recorded(&pod, "140197"));
	CHECK(!plan_interrupted(&pod, &ag));
	/* An earlier version's value: the reason alone, for the request then
	 * annotated on the pod. */
	pod.interruption = "OOMKilled";
	pod.job = before;
	CHECK(!plan_interruption_recorded(&pod, "1401977"));
	pod.job = job;
	CHECK(plan_interruption_recorded(&pod, "1401977"));
	/* No end at all. */
	pod.interruption = NULL;
	pod.end_reason = NULL;
	CHECK(!plan_interrupted(&pod, &ag));
}

/* A refused object skips the next cycle, then twice as many each time, at
 * most max_skip; another object is never held by it. */
static void
test_holdback(void)
{
	struct holdback h;
	unsigned long s = 0, tries = 0, c;

	memset(&h, 0, sizeof(h));
	CHECK(!holdback_held(&h, "pod/u-1", 1));
	CHECK(holdback_refused(&h, "pod/u-1", 1, 60) == 1);
	CHECK(holdback_held(&h, "pod/u-1", 2) && !holdback_held(&h, "pod/u-1", 3));
	CHECK(!holdback_held(&h, "pod/u-2", 2));
	CHECK(holdback_refused(&h, "pod/u-1", 3, 60) == 2);
	CHECK(holdback_held(&h, "pod/u-1", 5) && !holdback_held(&h, "pod/u-1", 6));
	holdback_clear(&h, "pod/u-1");
	/* Refused every time it is tried: tried in cycles 1, 3, 6, 11, 20,
	 * 37, 70, then once every max_skip + 1 (131, 192). */
	for (c = 1; c <= 200; c++) {
		if (holdback_held(&h, "pod/u-1", c))
			continue;
		tries++;
		s = holdback_refused(&h, "pod/u-1", c, 60);
	}
	CHECK(s == 60 && tries == 9);
	CHECK(holdback_refused(&h, "job/u-9", 200, 60) == 1 && h.n == 2);
	holdback_clear(&h, "pod/u-1");
	CHECK(!holdback_held(&h, "pod/u-1", 201) && h.n == 1);
	/* Not tried again long after its hold: forgotten. */
	holdback_prune(&h, 202, 60);
	CHECK(h.n == 1);
	holdback_prune(&h, 200 + 2 + 60 + 1, 60);
	CHECK(h.n == 0);
	holdback_release(&h);
}

/* Pool names match without regard to case; one agent parses alone. */
static void
test_ado_reads(void)
{
	static const char pools[] = "{\"count\":1,\"value\":[{\"id\":12,\"name\":\"AKS-Pool\"}]}";
	static const char one[] = "{\"id\":7,\"name\":\"a-7\",\"status\":\"offline\","
	    "\"enabled\":true,\"createdOn\":\"2026-09-01T10:00:00Z\","
	    "\"systemCapabilities\":{\"PIPEWARDEN_MANAGED\":\"true\",\"PIPEWARDEN_POD_UID\":\"u-7\"},"
	    "\"assignedRequest\":{\"requestId\":99,\"assignTime\":\"2026-09-01T11:59:00.1234567Z\"}}";
	struct agent_list l;
	char err[256], spelled[64];

	CHECK(ado_parse_pool_id(pools, strlen(pools), "aks-pool", spelled, sizeof(spelled), err,
	    sizeof(err)) == 12);
	CHECK_STR(spelled, "AKS-Pool");
	CHECK(ado_parse_pool_id(pools, strlen(pools), "aks-pool-2", spelled, sizeof(spelled), err,
	    sizeof(err)) == -1);
	CHECK(ado_parse_agent(one, strlen(one), &l, err, sizeof(err)) == 0 && l.n == 1);
	CHECK(l.n == 1 && l.agents[0].id == 7 && l.agents[0].busy &&
	    l.agents[0].assigned == NOW - 60 && strcmp(l.agents[0].pod_uid, "u-7") == 0);
	agent_list_release(&l);
	CHECK(ado_parse_agent("{\"id\":7}", 8, &l, err, sizeof(err)) == -1);
}

/* A pod of the lifecycle table: Running on node, pool aks-pool, its agent
 * container started `started` seconds before NOW, owned by a Job. */
static struct pod_info
lc_pod(const char *name, const char *node, time_t started)
{
	struct pod_info p;

	memset(&p, 0, sizeof(p));
	p.namespace = "ci";
	p.name = name;
	p.uid = name;		/* the uid is the name here */
	p.node = node;
	p.phase = PHASE_RUNNING;
	p.owner = OWNER_JOB;
	p.owner_name = name;
	p.owner_uid = name;
	p.pool = "aks-pool";
	p.agent_started = started ? NOW - started : 0;
	return p;
}

/* An agent of the lifecycle table, registered by pod (its uid). */
static struct agent_info
lc_agent(long long id, const char *pod, int online, int busy, time_t idle_for)
{
	struct agent_info a;

	memset(&a, 0, sizeof(a));
	a.id = id;
	a.name = pod;
	a.pod_uid = pod;
	a.online = online;
	a.enabled = 1;
	a.busy = busy;
	a.managed = 1;
	a.status_changed = NOW - idle_for;
	a.created = NOW - 99999;
	return a;
}

static const char *
retired_as(const struct retire_plan *rp, const char *pod)
{
	size_t i;

	for (i = 0; i < rp->n; i++)
		if (strcmp(rp->items[i].pod->name, pod) == 0)
			return rp->items[i].reason;
	return NULL;
}

/* Agent lifecycle: idle, never-registered and node-draining pods, and
 * every pod that must stay. */
static void
test_retirements(void)
{
	struct janitor_config cfg = default_cfg();
	static char *drain[] = { "ToBeDeletedByClusterAutoscaler" };
	const struct node_info nodes[] = {	/* sorted by name */
		{ "cordoned", 1, "" }, { "n", 0, "" },
		{ "tainted-node", 0, "workload\nToBeDeletedByClusterAutoscaler\n" },
	};
	struct pod_info pods[16];
	struct agent_info agents[12];
	struct pool_agents pool = { "aks-pool", agents, 0, 1 };
	struct plan_input in;
	struct retire_plan rp = { NULL, 0, 0 };
	size_t np = 0, na = 0;

	cfg.idle_agent_seconds = 1800;
	cfg.registration_timeout_seconds = 600;
	cfg.drain_taints = drain;
	cfg.ndrain_taints = 1;
	pods[np++] = lc_pod("idle-pod", "n", 5000);
	agents[na++] = lc_agent(1, "idle-pod", 1, 0, 4000);
	pods[np++] = lc_pod("busy-pod", "n", 5000);
	agents[na++] = lc_agent(2, "busy-pod", 1, 1, 4000);
	pods[np++] = lc_pod("young-idle", "n", 5000);
	agents[na++] = lc_agent(3, "young-idle", 1, 0, 100);
	pods[np++] = lc_pod("just-finished", "n", 9000);
	agents[na] = lc_agent(4, "just-finished", 1, 0, 9000);
	agents[na++].last_finished = NOW - 60;
	pods[np++] = lc_pod("drain-pod", "cordoned", 100);
	agents[na++] = lc_agent(5, "drain-pod", 1, 0, 10);
	pods[np++] = lc_pod("drain-busy", "cordoned", 100);
	agents[na++] = lc_agent(6, "drain-busy", 1, 1, 10);
	pods[np++] = lc_pod("tainted", "tainted-node", 100);
	agents[na++] = lc_agent(7, "tainted", 0, 0, 10);
	pods[np++] = lc_pod("never", "n", 700);
	pods[np++] = lc_pod("never-young", "n", 100);
	pods[np] = lc_pod("rs-idle", "n", 5000);
	pods[np++].owner = OWNER_OTHER;
	agents[na++] = lc_agent(8, "rs-idle", 1, 0, 4000);
	pods[np] = lc_pod("other-pool", "n", 9999);
	pods[np++].pool = "linux-large";
	pods[np] = lc_pod("retired-already", "n", 5000);
	pods[np++].retired = "idle";
	agents[na++] = lc_agent(9, "retired-already", 1, 0, 4000);
	pods[np++] = lc_pod("by-name", "n", 5000);
	agents[na] = lc_agent(10, "by-name", 1, 0, 4000);
	agents[na++].pod_uid = NULL;
	pods[np++] = lc_pod("disabled-idle", "n", 5000);
	agents[na] = lc_agent(11, "disabled-idle", 1, 0, 4000);
	agents[na++].enabled = 0;
	pods[np++] = lc_pod("not-started", "n", 0);
	pool.n = na;

	memset(&in, 0, sizeof(in));
	in.cfg = &cfg;
	in.now = NOW;
	in.leader = 1;
	in.all_pods = pods;
	in.n_all_pods = np;
	in.all_pods_complete = 1;
	CHECK(plan_retirements(&in, &pool, nodes, 3, &rp) == 0);
	CHECK(rp.n == 5);
	CHECK_STR(retired_as(&rp, "idle-pod"), "idle");
	CHECK_STR(retired_as(&rp, "by-name"), "idle");
	CHECK_STR(retired_as(&rp, "drain-pod"), "node-draining");
	CHECK_STR(retired_as(&rp, "tainted"), "node-draining");
	CHECK_STR(retired_as(&rp, "never"), "never-registered");
	CHECK(retired_as(&rp, "busy-pod") == NULL && retired_as(&rp, "drain-busy") == NULL &&
	    retired_as(&rp, "rs-idle") == NULL && retired_as(&rp, "retired-already") == NULL &&
	    retired_as(&rp, "disabled-idle") == NULL && retired_as(&rp, "other-pool") == NULL);
	retire_plan_release(&rp);
	/* 0 turns idle and never-registered off; draining stays. */
	cfg.idle_agent_seconds = cfg.registration_timeout_seconds = 0;
	CHECK(plan_retirements(&in, &pool, nodes, 3, &rp) == 0 && rp.n == 2 &&
	    retired_as(&rp, "drain-pod") != NULL && retired_as(&rp, "tainted") != NULL);
	retire_plan_release(&rp);
	cfg.registration_timeout_seconds = 600;
	/* A pool or pods not listed whole: never-registered cannot be told. */
	in.all_pods_complete = 0;
	CHECK(plan_retirements(&in, &pool, nodes, 3, &rp) == 0 && retired_as(&rp, "never") == NULL);
	retire_plan_release(&rp);
	in.all_pods_complete = 1;
	/* Not the leader: nothing. */
	in.leader = 0;
	CHECK(plan_retirements(&in, &pool, nodes, 3, &rp) == 0 && rp.n == 0);
	retire_plan_release(&rp);
	/* The node's replica removes a retired pod by its owner's rules. */
	in.leader = 0;
	in.node = "n";
	in.node_pods = &pods[11];	/* retired-already, a Job's */
	in.n_node_pods = 1;
	{
		struct plan p;
		CHECK(plan_make(&in, &p) == 0 && p.n == 1 && p.items[0].kind == ACT_DELETE_JOB &&
		    strcmp(p.items[0].reason, "retired") == 0);
		plan_release(&p);
	}
}

int
main(int argc, char **argv)
{
	int runs = 20000;

	if (argc > 1)
		runs = (int)strtol(argv[1], NULL, 10);
	test_times();
	test_lease();
	test_own_pool();
	test_pod_annotations();
	test_gone_jobs();
	test_recheck();
	test_interruption_per_request();
	test_holdback();
	test_ado_reads();
	test_retirements();
	test_pods();
	test_job_busy();
	test_job_state();
	test_fixture_pool();
	test_property(runs);
	return check_done();
}
