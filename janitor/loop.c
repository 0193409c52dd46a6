#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "../common/buf.h"
#include "../common/file.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "ado.h"
#include "holdback.h"
#include "kube.h"
#include "lease.h"
#include "loop.h"
#include "plan.h"
#include "report.h"

struct janitor {
	const struct janitor_options *opts;
	struct config		*cfg;		/* owned snapshot */
	struct file_watch	 cfg_watch;
	struct kube		 kube;
	struct ado		 ado;
	struct elector		 elector;
	long long		*pool_ids;	/* per cfg->pools; 0: not looked up */
	struct pod_list		*seen;		/* per cfg->pools, owned: the pods the
						 * leader saw running its jobs at its
						 * last pass (plan_gone_jobs) */
	struct holdback		 held;		/* objects whose write was refused */
	unsigned long		 cycles;	/* cycles begun, for the holdback */
	int			 sigfd;
	int			 stopping;
	struct MHD_Daemon	*metrics;
	double			 renewed_at;	/* monotonic: the last Lease write */
	int			 lease_lost;	/* this cycle: leader-only work is held */
	long long		 last_cycle_done;/* monotonic seconds; read by /healthz */
	long long		 health_interval;/* intervalSeconds, for /healthz */

	struct metric_family	*m_agents_deleted;
	struct metric_family	*m_agents_kept;
	struct metric_family	*m_pods_deleted;
	struct metric_family	*m_agents;
	struct metric_family	*m_duration;
	struct metric_family	*m_ado_requests;
	struct metric_family	*m_is_leader;
	struct metric_family	*m_reload_errors;
	struct metric_family	*m_pool_errors;
	struct metric_family	*m_interruptions;
	struct metric_family	*m_last_cycle;
};

/* One cycle's working state; the phases fill it in turn. */
struct cycle {
	time_t		 now;
	double		 start, deadline;	/* monotonic */
	struct plan	 plan;			/* every phase appends (one cap) */
	struct pod_list	 node_pods;		/* this node's managed pods */
	struct pod_list	 all_pods;		/* every managed pod (leader) */
	int		 all_pods_complete;
	long long	 pool_id;		/* of the pool being worked on */
	int		 failed;
	int		 over_deadline;
	double		 plan_cpu;		/* CPU seconds in the pure plan */
	size_t		 patches;		/* pod annotation patches made */
	size_t		 pod_attempts;		/* pod and Job deletions attempted */
	size_t		 agent_attempts;	/* agent deletions attempted */
	const struct pod_lookup *pods;		/* every managed pod, for an agent's
						 * re-read (pool phases) */
};

static void	pool_error(struct janitor *j, const char *pool);

/* CPU seconds this process has used (the plan's cost, for make bench). */
static double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Read a pending SIGTERM/SIGINT, waiting at most ms milliseconds. */
static void
read_signal(struct janitor *j, int ms)
{
	struct signalfd_siginfo si;
	struct pollfd pfd;

	pfd.fd = j->sigfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, ms) > 0 && read(j->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		j->stopping = 1;
		log_info("stopping: no new deletion starts", "signal",
		    si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", NULL);
	}
}

/* Wait up to seconds, or until SIGTERM/SIGINT.  Return -1 when stopping. */
static int
wait_or_stop(void *cls, double seconds)
{
	struct janitor *j = cls;
	double until = mono() + seconds, left;

	while (!j->stopping && (left = until - mono()) > 0)
		read_signal(j, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1);
	return j->stopping ? -1 : 0;
}

/* Poll for a signal without waiting. */
static void
check_stop(struct janitor *j)
{
	if (!j->stopping)
		read_signal(j, 0);
}

/* For the HTTP client: whether to give up a request in flight. */
static int
stopping_now(void *cls)
{
	struct janitor *j = cls;

	check_stop(j);
	return j->stopping;
}

/* The janitor's own identity: config janitor.identity, else what the Azure
 * webhook put on its pod (AZURE_CLIENT_ID ...); never the agents'. */
static int
configure_ado(struct janitor *j, const struct config *cfg)
{
	const struct janitor_options *o = j->opts;
	const char *cid = cfg->janitor.client_id, *tid = cfg->janitor.tenant_id;

	if (cid[0] == '\0')
		cid = o->client_id;
	if (tid[0] == '\0')
		tid = o->tenant_id;
	if (ado_configure(&j->ado, cfg->organization_url, cid, tid,
	    o->authority != NULL && o->authority[0] != '\0' ? o->authority :
	    cfg->authority_host) == -1)
		return -1;
	ado_set_api_version(&j->ado, cfg->janitor.api_version);
	return 0;
}

/* Forget what every pool's pods ran: a leader that comes back starts anew. */
static void
forget_jobs(struct pod_list *seen, size_t npools)
{
	size_t i;

	for (i = 0; seen != NULL && i < npools; i++)
		pod_list_release(&seen[i]);
}

/* No longer the leader: the pool gauges and what the leader remembered are
 * the leader's only. */
static void
lose_leadership(struct janitor *j)
{
	j->elector.leader = 0;
	metrics_set(j->m_is_leader, 0);
	metrics_clear(j->m_agents);
	forget_jobs(j->seen, j->cfg->npools);
}

static void
reload_config(struct janitor *j)
{
	struct config *cfg;
	struct pod_list *seen;
	long long *ids;
	size_t i, k;
	char err[512];

	if (!file_watch_changed(&j->cfg_watch))
		return;
	if ((cfg = config_load(j->opts->config_path, err, sizeof(err))) == NULL ||
	    config_janitor_auth(cfg, j->opts->pat_file != NULL, err, sizeof(err)) == -1) {
		config_free(cfg);
		metrics_add(j->m_reload_errors, 1);
		log_error("config reload failed; the previous config stays in force",
		    "file", j->opts->config_path, "error", err, NULL);
		return;
	}
	ids = calloc(cfg->npools + 1, sizeof(*ids));
	seen = calloc(cfg->npools + 1, sizeof(*seen));
	if (ids == NULL || seen == NULL) {
		free(ids);
		free(seen);
		config_free(cfg);
		return;
	}
	/* The client takes its own copies: nothing keeps pointing into the
	 * config freed below. */
	if (configure_ado(j, cfg) == -1) {
		metrics_add(j->m_reload_errors, 1);
		log_error("config reload failed: out of memory; the previous config stays "
		    "in force", "file", j->opts->config_path, NULL);
		free(ids);
		free(seen);
		config_free(cfg);
		return;
	}
	/* A pool that stays keeps what its pods ran (moved, not copied). */
	for (i = 0; i < cfg->npools; i++)
		for (k = 0; k < j->cfg->npools; k++)
			if (strcmp(cfg->pools[i], j->cfg->pools[k]) == 0 && j->seen[k].n > 0) {
				seen[i] = j->seen[k];
				memset(&j->seen[k], 0, sizeof(j->seen[k]));
			}
	forget_jobs(j->seen, j->cfg->npools);
	free(j->seen);
	config_free(j->cfg);
	free(j->pool_ids);
	j->cfg = cfg;
	j->pool_ids = ids;
	j->seen = seen;
	j->elector.duration = 2 * cfg->janitor.interval_seconds + 15;
	__atomic_store_n(&j->health_interval, cfg->janitor.interval_seconds, __ATOMIC_RELAXED);
	log_info("config reloaded", "file", j->opts->config_path, NULL);
}

/* Take or keep the Lease.  Return 1 when leader, 0 when not, -1 on error. */
static int
elect(struct janitor *j, char *err, size_t errlen)
{
	struct lease cur, next;
	struct timespec ts;
	enum lease_step step;
	int rc;

	if (kube_get_lease(&j->kube, j->cfg->janitor.lease_name, &cur, err, errlen) == -1)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	step = lease_decide(&j->elector, &cur, ts.tv_sec, mono());
	if (step == LEASE_WAIT)
		return 0;
	if (j->opts->dry_run) {	/* no write of any kind */
		j->renewed_at = mono();
		return 1;
	}
	lease_next(&j->elector, step, &cur, ts.tv_sec, ts.tv_nsec, &next);
	rc = kube_put_lease(&j->kube, j->cfg->janitor.lease_name, &next, err, errlen);
	if (rc == -1)
		return -1;
	if (rc == 0 && step != LEASE_RENEW)
		log_info("became the leader: pool work is mine", "lease",
		    j->cfg->janitor.lease_name, "identity", j->opts->identity, NULL);
	if (rc == 0)
		j->renewed_at = mono();
	return rc == 0;
}

static void
release_lease(struct janitor *j)
{
	struct lease cur, next;
	struct timespec ts;
	char err[512];

	if (!j->elector.leader || j->opts->dry_run)
		return;
	if (kube_get_lease(&j->kube, j->cfg->janitor.lease_name, &cur, err, sizeof(err)) == -1 ||
	    !cur.exists || strcmp(cur.holder, j->opts->identity) != 0)
		return;
	/* What client-go writes on release: no holder, a 1 s duration. */
	clock_gettime(CLOCK_REALTIME, &ts);
	next = cur;
	next.holder[0] = '\0';
	next.duration = 1;
	next.renew = ts.tv_sec;
	next.renew_ns = ts.tv_nsec;
	if (kube_put_lease(&j->kube, j->cfg->janitor.lease_name, &next, err, sizeof(err)) == 0)
		log_info("released the lease", "lease", j->cfg->janitor.lease_name, NULL);
	lose_leadership(j);
}

static const char *
what(const struct action *a)
{
	switch (a->kind) {
	case ACT_DELETE_POD:	return "pod";
	case ACT_DELETE_JOB:	return "job";
	case ACT_DELETE_AGENT:	return "agent";
	case ACT_KEEP_POD:	return "pod";
	case ACT_KEEP_AGENT:	return "agent";
	}
	return "";
}

static void
log_action(const struct janitor *j, const char *msg, const struct action *a,
    enum log_level level, const char *error)
{
	char id[32];

	if (a->agent != NULL) {
		snprintf(id, sizeof(id), "%lld", a->agent->id);
		log_msg(level, msg, "kind", what(a), "pool", a->pool, "agent", a->agent->name,
		    "agentId", id, "reason", a->reason, "dryRun", j->opts->dry_run ? "true" :
		    "false", "error", error, NULL);
	} else {
		log_msg(level, msg, "kind", what(a), "namespace", a->pod->namespace,
		    "pod", a->pod->name, "job", a->kind == ACT_DELETE_JOB ?
		    a->pod->owner_name : "", "node", a->pod->node, "reason", a->reason,
		    "dryRun", j->opts->dry_run ? "true" : "false", "error", error, NULL);
	}
}

/* ---- carrying out a phase's plan ------------------------------------------ */

/* Hold one planned deletion: it becomes a kept item with this reason. */
static void
hold(struct plan *p, struct action *a, const char *reason)
{
	if (!plan_is_delete(a))
		return;
	if (a->kind == ACT_DELETE_AGENT)
		p->agent_deletions--;
	else
		p->pod_deletions--;
	a->kind = a->agent != NULL ? ACT_KEEP_AGENT : ACT_KEEP_POD;
	a->reason = reason;
}

/* Write the Lease (renew or take).  On failure every remaining leader-only
 * deletion of the cycle is held: another replica may lead by now. */
static int
renew(struct janitor *j, struct cycle *c)
{
	char err[512];
	int rc;

	if (j->lease_lost)
		return 0;
	if ((rc = elect(j, err, sizeof(err))) == 1)
		return 1;
	if (rc == -1) {
		log_error("renewing the lease failed: no more pool work this cycle", "lease",
		    j->cfg->janitor.lease_name, "error", err, NULL);
		c->failed = 1;
	} else {
		log_warn("lost the lease: no more pool work this cycle", "lease",
		    j->cfg->janitor.lease_name, NULL);
	}
	j->lease_lost = 1;
	lose_leadership(j);
	return 0;
}

/*
 * Whether a leader-only write may start now: the Lease is held and its last
 * renewal is at most half the Lease ago.  A cycle renews right before each
 * leader phase and ends half a Lease after its start, so a stale renewal
 * cannot occur inside one; should it, the write is held (never renewed
 * here: losing the Lease drops what the leader remembers, which a phase may
 * be reading).
 */
static int
leader_may_act(struct janitor *j, struct cycle *c)
{
	(void)c;
	return !j->lease_lost && mono() - j->renewed_at <= (double)j->elector.duration / 2;
}

/* The holdback key of what a write touches: the Job, or the pod. */
static void
held_key(char *key, size_t len, const char *kind, const char *uid)
{
	snprintf(key, len, "%s/%s", kind, uid);
}

/* A write the API server refused (403, 422): hold the object back, log
 * once per interval, and go on with the others. */
/* At most an hour's worth of cycles between two tries of a refused write. */
static unsigned long
max_skip(const struct janitor *j)
{
	long long n = 3600 / j->cfg->janitor.interval_seconds;

	return n > 1 ? (unsigned long)n : 1;
}

static int
held_back(const struct janitor *j, const char *key)
{
	return holdback_held(&j->held, key, j->cycles);
}

static void
refused(struct janitor *j, const char *key, const char *what, const char *ns,
    const char *name, const char *err)
{
	unsigned long skip = holdback_refused(&j->held, key, j->cycles, max_skip(j));
	char cycles[32];

	snprintf(cycles, sizeof(cycles), "%lu", skip);
	log_warn(skip == 0 ? "write refused; out of memory to hold it back" :
	    "write refused: held back, the other objects go on", "kind", what,
	    "namespace", ns, "name", name, "skipCycles", cycles, "error", err, NULL);
}

static void
count_deletion(struct janitor *j, const struct action *a)
{
	if (a->kind == ACT_DELETE_AGENT)
		metrics_add(j->m_agents_deleted, 1, a->pool, a->reason);
	else
		metrics_add(j->m_pods_deleted, 1, a->reason);
}

/*
 * Read the agent again right before its DELETE: an agent registered again
 * under its name keeps its id, and DELETE has no precondition.  Return NULL
 * to go ahead, or why it is kept ("gone" when it no longer exists; NULL
 * with *failed set when the read failed).
 */
static const char *
recheck_agent(struct janitor *j, struct cycle *c, const struct action *a, char *err,
    size_t errlen, int *failed)
{
	struct agent_list fresh;
	const char *why = NULL;
	int rc;

	*failed = 0;
	rc = ado_get_agent(&j->ado, c->pool_id, a->agent->id, &fresh, err, errlen);
	if (rc == -1)
		*failed = 1;
	else if (rc == 0)
		why = "gone";
	else if (fresh.n != 1)
		why = "changed";
	else
		why = plan_agent_recheck(&j->cfg->janitor, c->now, a->agent, &fresh.agents[0],
		    c->pods);
	agent_list_release(&fresh);
	return why;
}

/* Delete one agent (a planned ACT_DELETE_AGENT), after reading it again.
 * Return -1 when Azure DevOps failed (no more agent deletions in this
 * pool this cycle), else 0. */
static int
delete_agent(struct janitor *j, struct cycle *c, struct action *a)
{
	enum ado_delete_result ar;
	const char *why;
	char err[512];
	int failed;

	err[0] = '\0';
	why = recheck_agent(j, c, a, err, sizeof(err), &failed);
	if (!failed && why != NULL && strcmp(why, "gone") == 0) {
		log_action(j, "already gone", a, LOG_INFO, "");
		return 0;
	}
	if (!failed && why != NULL) {
		metrics_add(j->m_agents_kept, 1, a->pool, why);
		log_action(j, "kept: the agent changed since it was listed", a, LOG_INFO, why);
		hold(&c->plan, a, why);
		return 0;
	}
	ar = failed ? ADO_FAILED : ado_delete_agent(&j->ado, c->pool_id, a->agent->id, err,
	    sizeof(err));
	if (ar == ADO_DELETED) {
		count_deletion(j, a);
		log_action(j, "deleted", a, LOG_INFO, "");
	} else if (ar == ADO_GONE) {
		log_action(j, "already gone", a, LOG_INFO, "");
	} else if (ar == ADO_BUSY) {
		metrics_add(j->m_agents_kept, 1, a->pool, "busy");
		log_action(j, "kept: Azure DevOps says it is running a job", a, LOG_INFO, "");
	} else {
		c->failed = 1;
		pool_error(j, a->pool);
		log_action(j, "delete failed; no more deletions in this pool this cycle", a,
		    LOG_ERROR, err);
		return -1;
	}
	return 0;
}

/* Delete a pod, or its Job (a planned ACT_DELETE_POD or ACT_DELETE_JOB). */
static void
delete_pod(struct janitor *j, struct cycle *c, struct action *a, const char *key)
{
	enum kube_delete_result kr;
	struct kube_object about;
	char err[512], msg[512];

	err[0] = '\0';
	kr = a->kind == ACT_DELETE_JOB ?
	    kube_delete_job(&j->kube, a->pod->namespace, a->pod->owner_name,
	    a->pod->owner_uid, err, sizeof(err)) :
	    kube_delete_pod(&j->kube, a->pod->namespace, a->pod->name, a->pod->uid,
	    err, sizeof(err));
	if (kr != KUBE_REFUSED)
		holdback_clear(&j->held, key);
	if (kr == KUBE_DELETED) {
		count_deletion(j, a);
		log_action(j, "deleted", a, LOG_INFO, "");
		snprintf(msg, sizeof(msg), "pipewarden-janitor deleted %s %s: %s",
		    a->kind == ACT_DELETE_JOB ? "Job" : "pod",
		    a->kind == ACT_DELETE_JOB ? a->pod->owner_name : a->pod->name,
		    a->reason);
		about = kube_pod_object(a->pod);
		if (kube_event(&j->kube, &about, "Normal", "PipewardenCleanup", "Delete", msg,
		    c->now, err, sizeof(err)) == -1)
			log_warn("could not record an Event", "pod", a->pod->name,
			    "error", err, NULL);
	} else if (kr == KUBE_GONE || kr == KUBE_REPLACED) {
		log_action(j, kr == KUBE_GONE ? "already gone" :
		    "not deleted: replaced since it was listed", a, LOG_INFO, "");
	} else if (kr == KUBE_REFUSED) {
		refused(j, key, what(a), a->pod->namespace, a->kind == ACT_DELETE_JOB ?
		    a->pod->owner_name : a->pod->name, err);
	} else {
		c->failed = 1;
		log_action(j, "delete failed", a, LOG_ERROR, err);
	}
}

/*
 * Delete what the plan's items [first, n) say, in order.  At most
 * maxDeletionsPerCycle deletions are attempted a cycle (pods and agents
 * apart); an object held back after a refusal is not attempted and costs
 * nothing.  Leader-only items start only while the Lease is fresh; nothing
 * starts past the cycle's deadline or once stopping.  An agent delete that
 * fails on an outage or auth error stops the agent deletions of this call
 * (one pool).
 */
static void
act(struct janitor *j, struct cycle *c, size_t first, int leader_only)
{
	size_t max = (size_t)j->cfg->janitor.max_deletions_per_cycle, *attempts;
	int agents_stopped = 0;
	char key[192];
	size_t i;

	for (i = first; i < c->plan.n; i++) {
		struct action *a = &c->plan.items[i];

		if (!plan_is_delete(a)) {
			if (a->kind == ACT_KEEP_AGENT && strcmp(a->reason, "online") != 0)
				metrics_add(j->m_agents_kept, 1, a->pool, a->reason);
			log_action(j, "keep", a, j->opts->dry_run ? LOG_INFO : LOG_DEBUG, "");
			continue;
		}
		if (j->opts->dry_run) {
			log_action(j, "would delete", a, LOG_INFO, "");
			continue;
		}
		check_stop(j);
		if (j->stopping) {
			hold(&c->plan, a, "stopping");
			continue;
		}
		if (mono() >= c->deadline) {
			if (!c->over_deadline)
				log_error("the cycle's time budget is spent: what is left waits "
				    "for the next cycle", NULL);
			c->over_deadline = c->failed = 1;
			hold(&c->plan, a, "cycle-deadline");
			continue;
		}
		if (leader_only && !leader_may_act(j, c)) {
			hold(&c->plan, a, "lease-lost");
			continue;
		}
		if (a->kind == ACT_DELETE_AGENT && agents_stopped) {
			hold(&c->plan, a, "azure-devops-unavailable");
			continue;
		}
		if (a->kind != ACT_DELETE_AGENT) {
			held_key(key, sizeof(key), what(a), a->kind == ACT_DELETE_JOB ?
			    a->pod->owner_uid : a->pod->uid);
			if (held_back(j, key)) {
				hold(&c->plan, a, "refused-earlier");
				continue;
			}
		}
		attempts = a->kind == ACT_DELETE_AGENT ? &c->agent_attempts : &c->pod_attempts;
		if (*attempts >= max) {
			hold(&c->plan, a, "deletion-cap");
			continue;
		}
		(*attempts)++;
		if (a->kind == ACT_DELETE_AGENT)
			agents_stopped = delete_agent(j, c, a) == -1;
		else
			delete_pod(j, c, a, key);
	}
}

static const char *
job_keep_message(const char *why)
{
	if (strcmp(why, "job-has-live-pod") == 0)
		return "kept: its Job has a pod still at work";
	if (strcmp(why, "job-not-finished") == 0)
		return "kept: its Job has not finished (between retries)";
	if (strcmp(why, "job-pods-unknown") == 0)
		return "kept: its Job's pods cannot be listed by batch.kubernetes.io/controller-uid";
	return "not deleted: its Job is gone or was replaced";
}

/*
 * Why the Job of a planned Job deletion must stay, or NULL to go ahead.
 * The Job is read (a finished pod's Job goes only once the Job finished:
 * between retries it has no live pod), then its pods are listed in its
 * namespace by controller-uid (from the API server's cache): a retry or a
 * parallel pod may still be at work on any node.  When a read fails the
 * Job stays too, and the cycle has failed.
 */
static const char *
job_keep_reason(struct janitor *j, struct cycle *c, const struct action *a)
{
	struct pod_list job_pods;
	struct job_info job;
	char sel[256], err[512];
	const char *why;

	if ((size_t)snprintf(sel, sizeof(sel), "batch.kubernetes.io/controller-uid=%s",
	    a->pod->owner_uid) >= sizeof(sel)) {
		snprintf(err, sizeof(err), "the Job's uid is too long");
	} else if (kube_get_job(&j->kube, a->pod->namespace, a->pod->owner_name, &job, err,
	    sizeof(err)) == 0 &&
	    kube_list_pods(&j->kube, a->pod->namespace, sel, NULL, 1, &job_pods, err,
	    sizeof(err)) == 0) {
		why = plan_job_keep(&j->cfg->janitor, c->now, a->pod, &job, job_pods.pods,
		    job_pods.n);
		pod_list_release(&job_pods);
		if (why != NULL)
			log_info(job_keep_message(why), "namespace", a->pod->namespace,
			    "pod", a->pod->name, "job", a->pod->owner_name, "reason", why, NULL);
		return why;
	}
	log_error("reading a Job or its pods failed: the Job is kept this cycle", "namespace",
	    a->pod->namespace, "job", a->pod->owner_name, "error", err, NULL);
	c->failed = 1;
	return "job-pods-unknown";
}

/* Plan items [first, n): keep every Job deletion whose Job must stay. */
static void
check_jobs(struct janitor *j, struct cycle *c, size_t first)
{
	const char *why;
	size_t i;

	for (i = first; i < c->plan.n && !j->stopping; i++) {
		struct action *a = &c->plan.items[i];
		if (a->kind == ACT_DELETE_JOB && (why = job_keep_reason(j, c, a)) != NULL)
			hold(&c->plan, a, why);
	}
}

/* ---- the phases -------------------------------------------------------------- */

static void
plan_input_of(const struct janitor *j, const struct cycle *c, struct plan_input *in)
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
	plan_input_of(j, c, &in);
	t = cpu_now();
	rc = plan_node_pods(&in, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	check_jobs(j, c, first);
	act(j, c, first, 0);
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
	plan_input_of(j, c, &in);
	t = cpu_now();
	rc = plan_unscheduled_pods(&in, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	/* Renew after the reads, right before this phase's deletions. */
	if (!renew(j, c))
		return;
	check_jobs(j, c, first);
	act(j, c, first, 1);
}

/* The pool's id: cached, else looked up.  Return it, or -1 (logged). */
static long long
pool_id(struct janitor *j, size_t i, char *err, size_t errlen)
{
	if (j->pool_ids[i] <= 0 &&
	    (j->pool_ids[i] = ado_pool_id(&j->ado, j->cfg->pools[i], err, errlen)) == -1) {
		j->pool_ids[i] = 0;
		return -1;
	}
	return j->pool_ids[i];
}

/* Count and log a pool's failure; the reason is the client's last error. */
static void
pool_error(struct janitor *j, const char *pool)
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

/* Log and count one interrupted pipeline job, and say it in msg (the
 * Event's message). */
static void
log_interruption(struct janitor *j, const char *pool, const struct pod_info *pod,
    const struct agent_info *ag, const char *reason, int gone, char *msg, size_t msglen)
{
	const char *pipeline = ag->job.pipeline ? ag->job.pipeline : "";
	const char *run = ag->job.run ? ag->job.run : "";

	snprintf(msg, msglen, "pipeline %s run %s (job request %s) was interrupted: %s %s/%s "
	    "%s (%s) while agent %s ran it; Azure DevOps will report that it stopped hearing "
	    "from the agent", ag->job.pipeline ? pipeline : "?", ag->job.run ? run : "?",
	    ag->job.request_id, gone ? "its pod" : "the work of pod", pod->namespace, pod->name,
	    gone ? "is gone" : "ended", reason, ag->name);
	metrics_add(j->m_interruptions, 1, pool, reason);
	log_warn("pipeline job interrupted", "namespace", pod->namespace, "pod", pod->name,
	    "pool", pool, "agent", ag->name, "reason", reason, "podGone", gone ? "true" : "false",
	    "pipeline", pipeline, "run", run, "requestId", ag->job.request_id, NULL);
}

/*
 * What an interruption's Event is about: the pod's Job when the pod is gone
 * or going (kubectl describe job still shows it after the pod) and the Job
 * is still there with the same uid; else the pod, while it is there.
 * Return 1 with *about set, 0 when there is nothing left to put it on.
 */
static int
event_subject(struct janitor *j, const struct pod_info *pod, int gone, struct kube_object *about)
{
	struct job_info job;
	char err[512];

	if ((gone || pod->going) && pod->owner == OWNER_JOB) {
		if (kube_get_job(&j->kube, pod->namespace, pod->owner_name, &job, err,
		    sizeof(err)) == -1)
			log_warn("reading the pod's Job failed", "namespace", pod->namespace, "job",
			    pod->owner_name, "error", err, NULL);
		else if (job.exists && strcmp(job.uid, pod->owner_uid) == 0) {
			about->api_version = "batch/v1";
			about->kind = "Job";
			about->namespace = pod->namespace;
			about->name = pod->owner_name;
			about->uid = pod->owner_uid;
			return 1;
		}
	}
	if (gone)
		return 0;
	*about = kube_pod_object(pod);
	return 1;
}

/*
 * Record, once, each pipeline job of this pool whose pod ended abnormally
 * while its agent ran it (OOMKilled, evicted, preempted, past its deadline,
 * its node gone): a Warning Event (event_subject: on the pod, or on its Job
 * when the pod is going), a log line, the counter, and
 * the annotation pipewarden.io/interruption that makes it once.  The patch
 * counts against maxPatchesPerCycle; leader-only, as the annotations.  *pp
 * (empty, the caller's) is left holding the pods recorded.
 */
static void
record_interruptions(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
    const struct pod_lookup *lk, struct patch_plan *pp)
{
	static const char *const ann[1] = { KUBE_ANN_INTERRUPTION };
	struct kube_object about;
	size_t i, done = 0, max = (size_t)j->cfg->janitor.max_patches_per_cycle;
	char msg[1024], err[512];

	if (c->patches >= max || plan_interruptions(pool, lk, j->cfg->janitor.only_managed_agents,
	    max - c->patches, pp) == -1) {
		pp->n = 0;
		return;
	}
	for (i = 0; i < pp->n; i++) {
		const struct pod_info *pod = pp->items[i].pod;
		const struct agent_info *ag = pp->items[i].agent;
		char recorded[192], key[192];
		const char *value[1] = { recorded };
		enum kube_delete_result kr;

		snprintf(recorded, sizeof(recorded), "%s:%s", ag->job.request_id, pod->end_reason);
		held_key(key, sizeof(key), "patch", pod->uid);
		if (held_back(j, key))
			continue;
		if (j->opts->dry_run) {
			log_info("would record a job interruption", "namespace", pod->namespace,
			    "pod", pod->name, "pool", pool->pool, "reason", pod->end_reason, NULL);
			continue;
		}
		check_stop(j);
		if (j->stopping || mono() >= c->deadline || !leader_may_act(j, c))
			break;
		c->patches++;
		kr = kube_annotate(&j->kube, pod, ann, value, 1, err, sizeof(err));
		if (kr == KUBE_REFUSED)
			refused(j, key, "pod", pod->namespace, pod->name, err);
		if (kr != KUBE_DELETED) {
			if (kr != KUBE_REFUSED)
				log_error("recording a job interruption failed; the next cycle "
				    "tries again", "namespace", pod->namespace, "pod", pod->name,
				    "error", err, NULL);
			continue;
		}
		pp->items[done++] = pp->items[i];
		log_interruption(j, pool->pool, pod, ag, pod->end_reason, 0, msg, sizeof(msg));
		if (event_subject(j, pod, 0, &about) == 1 && kube_event(&j->kube, &about, "Warning",
		    "PipelineJobInterrupted", "Record", msg, c->now, err, sizeof(err)) == -1)
			log_warn("recording an Event failed", "error", err, NULL);
	}
	pp->n = done;
}

/*
 * Record, once, each pipeline job of this pool whose pod is gone while its
 * agent still runs it (plan_gone_jobs over what this leader saw at its last
 * pass): why (plan_gone_reason; a GET of the node tells NodeDeleted), a log
 * line, the counter, and a Warning Event on the pod's Job where it is still
 * there.  Each counts against maxPatchesPerCycle.  What the cap, the
 * deadline or an API error leaves is copied to *next for the next pass.
 */
static void
record_gone_jobs(struct janitor *j, struct cycle *c, size_t pi, const struct pool_agents *pool,
    const struct pod_lookup *lk, struct pod_list *next)
{
	struct pod_lookup seen = { NULL, NULL, 0 };
	struct patch_plan pp = { NULL, 0, 0 };
	struct kube_object about;
	size_t i, max = (size_t)j->cfg->janitor.max_patches_per_cycle;
	const char *reason;
	char msg[1024], err[512];
	int node, held = 0;

	if (j->seen[pi].n == 0)
		return;
	if (plan_lookup_init(&seen, j->seen[pi].pods, j->seen[pi].n) == -1 ||
	    plan_gone_jobs(pool, lk, &seen, j->cfg->janitor.only_managed_agents, &pp) == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		goto out;
	}
	for (i = 0; i < pp.n; i++) {
		const struct pod_info *was = pp.items[i].pod;
		const struct agent_info *ag = pp.items[i].agent;

		node = 1;	/* each pod's own node, read below when it matters */
		if (j->opts->dry_run) {
			log_info("would record a job interruption", "namespace", was->namespace,
			    "pod", was->name, "pool", pool->pool, "podGone", "true", NULL);
			continue;
		}
		if (!held) {
			check_stop(j);
			held = c->patches >= max || j->stopping || mono() >= c->deadline ||
			    !leader_may_act(j, c);
		}
		if (!held && was->end_reason == NULL && was->node[0] != '\0' &&
		    (node = kube_node_exists(&j->kube, was->node, err, sizeof(err))) == -1) {
			log_error("reading a gone pod's node failed; the next cycle tries again",
			    "node", was->node, "error", err, NULL);
			held = 1;
		}
		if (held) {
			if (pod_list_add(next, was) == -1) {
				log_error("out of memory: a gone pod's job is not kept for the next "
				    "cycle", "namespace", was->namespace, "pod", was->name, NULL);
				c->failed = 1;
			}
			continue;
		}
		c->patches++;
		reason = plan_gone_reason(was, node == 0);
		log_interruption(j, pool->pool, was, ag, reason, 1, msg, sizeof(msg));
		if (event_subject(j, was, 1, &about) == 1 && kube_event(&j->kube, &about, "Warning",
		    "PipelineJobInterrupted", "Record", msg, c->now, err, sizeof(err)) == -1)
			log_warn("recording an Event failed", "error", err, NULL);
	}
out:
	patch_plan_release(&pp);
	plan_lookup_release(&seen);
}

/*
 * Remember, for the next pass, the pods whose agents run this pool's jobs
 * (plan_running_jobs), each with the job its agent runs, but those whose
 * interruption was just recorded; then they replace what was remembered.
 * next holds what record_gone_jobs carried over.  Out of memory: the pool's
 * memory is dropped (logged).
 */
static void
remember_jobs(struct janitor *j, struct cycle *c, size_t pi, const struct pool_agents *pool,
    const struct pod_lookup *lk, const struct patch_plan *recorded, struct pod_list *next)
{
	struct patch_plan pp = { NULL, 0, 0 };
	struct pod_info p;
	size_t i, k;
	int failed;

	failed = plan_running_jobs(pool, lk, j->cfg->janitor.only_managed_agents, &pp) == -1;
	for (i = 0; i < pp.n && !failed; i++) {
		for (k = 0; k < recorded->n && recorded->items[k].pod != pp.items[i].pod; k++)
			;
		if (k < recorded->n)
			continue;
		p = *pp.items[i].pod;
		p.job = pp.items[i].agent->job;
		failed = pod_list_add(next, &p) == -1;
	}
	patch_plan_release(&pp);
	pod_list_release(&j->seen[pi]);
	if (failed) {
		log_error("out of memory: the pool's running jobs are not remembered this cycle",
		    "pool", pool->pool, NULL);
		c->failed = 1;
		pod_list_release(next);
	}
	j->seen[pi] = *next;
	memset(next, 0, sizeof(*next));
}

/*
 * Write on each managed pod the pipeline job its agent of this pool runs
 * (pipewarden.io/job-request-id, pipeline, run, run-url), where a value
 * changed, at most maxPatchesPerCycle a cycle.  Leader-only writes: each
 * starts only while the Lease is fresh, none past the cycle's deadline.  A
 * failure is logged and leaves the rest to the next cycle.
 */
static void
annotate_pods(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
    const struct pod_lookup *lk)
{
	struct patch_plan pp = { NULL, 0, 0 };
	size_t i, max = (size_t)j->cfg->janitor.max_patches_per_cycle;
	enum kube_delete_result kr;
	char err[512];

	if (c->patches >= max)
		return;
	if (plan_pod_annotations(pool, lk, j->cfg->janitor.only_managed_agents, max - c->patches,
	    &pp) == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		return;
	}
	for (i = 0; i < pp.n; i++) {
		const struct pod_info *pod = pp.items[i].pod;
		const struct job_ref *job = &pp.items[i].agent->job;
		char key[192];

		held_key(key, sizeof(key), "patch", pod->uid);
		if (held_back(j, key))
			continue;
		if (j->opts->dry_run) {
			log_info("would annotate the pod with its pipeline job", "namespace",
			    pod->namespace, "pod", pod->name, "pool", pool->pool, "pipeline",
			    job->pipeline ? job->pipeline : "", "run", job->run ? job->run : "",
			    "requestId", job->request_id, NULL);
			continue;
		}
		check_stop(j);
		if (j->stopping || mono() >= c->deadline || !leader_may_act(j, c))
			break;
		c->patches++;
		kr = kube_annotate_pod(&j->kube, pod, job, err, sizeof(err));
		if (kr == KUBE_REFUSED)
			refused(j, key, "pod", pod->namespace, pod->name, err);
		else
			holdback_clear(&j->held, key);
		if (kr == KUBE_DELETED)
			log_info("annotated the pod with its pipeline job", "namespace",
			    pod->namespace, "pod", pod->name, "pool", pool->pool, "pipeline",
			    job->pipeline ? job->pipeline : "", "run", job->run ? job->run : "",
			    "requestId", job->request_id, NULL);
		else if (kr == KUBE_FAILED) {
			log_error("annotating a pod failed; the rest waits for the next cycle",
			    "namespace", pod->namespace, "pod", pod->name, "error", err, NULL);
			c->failed = 1;
			break;
		}
	}
	patch_plan_release(&pp);
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
	if ((c->pool_id = pool_id(j, i, err, sizeof(err))) != -1 &&
	    (rc = ado_list_agents(&j->ado, c->pool_id, &list, err, sizeof(err))) == -1 &&
	    cached &&
	    j->ado.last_error == ADO_ERR_NOT_FOUND) {
		log_info("the pool's id gave 404: looking the pool up again", "pool", name,
		    NULL);
		j->pool_ids[i] = 0;
		if ((c->pool_id = pool_id(j, i, err, sizeof(err))) != -1)
			rc = ado_list_agents(&j->ado, c->pool_id, &list, err, sizeof(err));
	}
	if (rc == -1) {
		pool_error(j, name);
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
	if (!renew(j, c))
		goto out;
	plan_input_of(j, c, &in);
	t = cpu_now();
	rc = plan_pool_agents(&in, &pool, &c->plan);
	c->plan_cpu += cpu_now() - t;
	if (rc == -1 || plan_lookup_init(&lk, c->all_pods.pods, c->all_pods.n) == -1) {
		log_error("out of memory while planning", NULL);
		c->failed = 1;
		goto out;
	}
	c->pods = &lk;
	act(j, c, first, 1);
	/* Then what the leader writes on pods: their agents' jobs, and the
	 * jobs their end interrupted. */
	annotate_pods(j, c, &pool, &lk);
	record_interruptions(j, c, &pool, &lk, &recorded);
	record_gone_jobs(j, c, i, &pool, &lk, &next);
	remember_jobs(j, c, i, &pool, &lk, &recorded, &next);
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

	reload_config(j);
	memset(&c, 0, sizeof(c));
	c.now = time(NULL);
	j->cycles++;
	holdback_prune(&j->held, j->cycles, max_skip(j));
	c.start = mono();
	c.deadline = c.start + (double)j->elector.duration / 2;
	j->lease_lost = 0;
	kube_set_deadline(&j->kube, c.deadline);

	/* Elect first, so that racing replicas see the Lease taken at once. */
	if ((leader = elect(j, err, sizeof(err))) == -1) {
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
		metrics_clear(j->m_agents);
		for (i = 0; i < j->cfg->npools && !j->stopping && !j->lease_lost; i++)
			if (c.all_pods_complete)
				phase_pool(j, &c, i, j->cfg->npools - i);
	} else {
		lose_leadership(j);
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
	return c.failed;
}

static enum MHD_Result
serve_metrics(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	struct buf b;
	size_t len;
	char *text;

	(void)version;
	(void)upload_data;
	(void)req_cls;
	if (*upload_data_size > 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	buf_init(&b, 16 * 1024 * 1024);
	if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0) {
		metrics_render(&b);
	} else if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0) {
		/* A wedged loop fails: no cycle finished for ten intervals. */
		struct janitor *j = cls;
		double since = mono() - (double)__atomic_load_n(&j->last_cycle_done,
		    __ATOMIC_RELAXED);
		long long interval = __atomic_load_n(&j->health_interval, __ATOMIC_RELAXED);
		if (since > 10.0 * (double)interval) {
			buf_addf(&b, "no cycle has finished for %.0f s (ten intervals: %lld s)\n",
			    since, 10 * interval);
			status = MHD_HTTP_SERVICE_UNAVAILABLE;
		} else {
			buf_adds(&b, "ok\n");
		}
	} else {
		buf_adds(&b, "no such path (serving /metrics, /healthz)\n");
		status = MHD_HTTP_NOT_FOUND;
	}
	if ((text = buf_detach(&b, &len)) == NULL)
		return MHD_NO;
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static void
register_metrics(struct janitor *j)
{
	static const char *const pool_reason[] = { "pool", "reason", NULL };
	static const char *const reason[] = { "reason", NULL };
	static const char *const pool_status[] = { "pool", "status", NULL };
	static const char *const code[] = { "code", NULL };
	static const double buckets[] = { 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 };

	j->m_agents_deleted = metrics_register("pipewarden_janitor_agents_deleted_total",
	    "Agents deleted from Azure DevOps.", METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_agents_kept = metrics_register("pipewarden_janitor_agents_kept_total",
	    "Offline agents spared, by the rule that spared them.", METRIC_COUNTER,
	    pool_reason, NULL, 0);
	j->m_pods_deleted = metrics_register("pipewarden_janitor_pods_deleted_total",
	    "Pods (or their Jobs) deleted.", METRIC_COUNTER, reason, NULL, 0);
	j->m_agents = metrics_register("pipewarden_janitor_agents",
	    "Agents of each pool at the last cycle, by status.", METRIC_GAUGE,
	    pool_status, NULL, 0);
	j->m_duration = metrics_register("pipewarden_janitor_reconcile_duration_seconds",
	    "Time one cycle took.", METRIC_HISTOGRAM, NULL, buckets,
	    (int)(sizeof(buckets) / sizeof(buckets[0])));
	j->m_ado_requests = metrics_register("pipewarden_janitor_ado_requests_total",
	    "Requests to Azure DevOps and Entra, by HTTP status (error: no answer).",
	    METRIC_COUNTER, code, NULL, 0);
	j->m_is_leader = metrics_register("pipewarden_janitor_is_leader",
	    "1 while this replica holds the Lease and does pool work.", METRIC_GAUGE,
	    NULL, NULL, 0);
	j->m_reload_errors = metrics_register("pipewarden_config_reload_errors_total",
	    "Config reloads that failed; the previous config stayed in force.",
	    METRIC_COUNTER, NULL, NULL, 0);
	j->m_pool_errors = metrics_register("pipewarden_janitor_pool_errors_total",
	    "Cycles in which a pool's work failed (none of its agents deleted), by why.",
	    METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_interruptions = metrics_register("pipewarden_janitor_job_interruptions_total",
	    "Pipeline jobs whose pod ended abnormally while its agent ran them, by reason.",
	    METRIC_COUNTER, pool_reason, NULL, 0);
	j->m_last_cycle = metrics_register("pipewarden_janitor_last_cycle_timestamp_seconds",
	    "When the last cycle finished (Unix time).", METRIC_GAUGE, NULL, NULL, 0);
	metrics_set(j->m_is_leader, 0);
	metrics_add(j->m_reload_errors, 0);
}

/* Everything both the loop and the report need: signals, the config, the
 * Kubernetes and Azure DevOps clients.  Takes ownership of cfg.  Return 0,
 * or -1 (logged); janitor_close() releases either way. */
static int
janitor_open(struct janitor *j, const struct janitor_options *opts, struct config *cfg)
{
	sigset_t mask;
	char err[512];

	memset(j, 0, sizeof(*j));
	j->opts = opts;
	/* the janitor now owns cfg */
	j->cfg = cfg;
	cfg = NULL;
	j->sigfd = -1;
	file_watch_init(&j->cfg_watch, opts->config_path);
	register_metrics(j);
	j->elector.identity = opts->identity;
	j->elector.observe = !opts->once;
	j->elector.duration = 2 * j->cfg->janitor.interval_seconds + 15;
	j->health_interval = j->cfg->janitor.interval_seconds;
	j->last_cycle_done = (long long)mono();
	srand((unsigned int)(time(NULL) ^ getpid()));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((j->sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) == -1 ||
	    (j->pool_ids = calloc(j->cfg->npools + 1, sizeof(*j->pool_ids))) == NULL ||
	    (j->seen = calloc(j->cfg->npools + 1, sizeof(*j->seen))) == NULL) {
		log_error("cannot start", "error", strerror(errno), NULL);
		return -1;
	}
	if (kube_init(&j->kube, opts->kube_api, opts->kube_token_file, opts->kube_ca,
	    opts->namespace, err, sizeof(err)) == -1) {
		log_error("cannot start", "error", err, NULL);
		return -1;
	}
	j->kube.wait = wait_or_stop;
	j->kube.wait_cls = j;
	if (ado_init(&j->ado, opts->ado_ca) == -1 || configure_ado(j, j->cfg) == -1) {
		log_error("cannot start: out of memory", NULL);
		return -1;
	}
	j->ado.pat_path = opts->pat_file;
	j->ado.token_file = opts->federated_token_file;
	j->ado.wait = wait_or_stop;
	j->ado.wait_cls = j;
	/* SIGTERM gives up an Azure DevOps call in flight: the Lease is
	 * released well within the pod's grace period. */
	http_client_set_abort(j->ado.http, stopping_now, j);
	j->ado.m_requests = j->m_ado_requests;
	return 0;
}

static void
janitor_close(struct janitor *j)
{
	if (j->metrics != NULL)
		MHD_stop_daemon(j->metrics);
	ado_release(&j->ado);
	kube_release(&j->kube);
	if (j->sigfd != -1)
		close(j->sigfd);
	free(j->pool_ids);
	holdback_release(&j->held);
	if (j->cfg != NULL)
		forget_jobs(j->seen, j->cfg->npools);
	free(j->seen);
	config_free(j->cfg);
	metrics_free_all();
}

int
janitor_run(const struct janitor_options *opts, struct config *cfg)
{
	struct janitor j;
	int rc = 2, failed;

	if (janitor_open(&j, opts, cfg) == -1)
		goto out;
	if (opts->metrics_port != 0 && !opts->once &&
	    (j.metrics = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	    MHD_USE_DUAL_STACK, (uint16_t)opts->metrics_port, NULL, NULL, serve_metrics,
	    &j, MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    MHD_OPTION_END)) == NULL &&
	    (j.metrics = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL,
	    (uint16_t)opts->metrics_port, NULL, NULL, serve_metrics, &j,
	    MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
	    MHD_OPTION_END)) == NULL) {
		char port[16];
		snprintf(port, sizeof(port), "%u", opts->metrics_port);
		log_error("cannot listen for metrics", "port", port, "error", strerror(errno),
		    NULL);
		goto out;
	}
	log_info("started", "node", opts->node, "identity", opts->identity,
	    "namespace", opts->namespace, "dryRun", opts->dry_run ? "true" : "false",
	    "auth", opts->pat_file != NULL ? "pat" : "workload-identity", NULL);
	for (;;) {
		failed = cycle(&j);
		if (opts->once) {
			rc = failed ? 1 : 0;
			break;
		}
		if (wait_or_stop(&j, (double)j.cfg->janitor.interval_seconds) == -1) {
			rc = 0;
			break;
		}
	}
	release_lease(&j);
	log_info("stopped", NULL);
out:
	janitor_close(&j);
	return rc;
}

int
janitor_report(const struct janitor_options *opts, struct config *cfg, int json)
{
	struct janitor j;
	struct cycle c;
	struct report_pool *pools = NULL;
	struct agent_list *lists = NULL;
	struct pool_agents pa;
	struct plan_input in;
	struct pod_lookup lk = { NULL, NULL, 0 };
	struct buf out;
	char err[512];
	size_t i, first;
	int rc = 2;

	memset(&c, 0, sizeof(c));
	buf_init(&out, 256 * 1024 * 1024);
	if (janitor_open(&j, opts, cfg) == -1)
		goto out;
	rc = 1;
	c.now = time(NULL);
	c.start = mono();
	c.deadline = c.start + 3600;
	if (kube_list_pods(&j.kube, NULL, KUBE_MANAGED_SELECTOR, NULL, 0, &c.all_pods, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "pipewarden-janitor report: listing managed pods failed: %s\n", err);
		goto out;
	}
	c.all_pods_complete = 1;
	pools = calloc(j.cfg->npools + 1, sizeof(*pools));
	lists = calloc(j.cfg->npools + 1, sizeof(*lists));
	if (pools == NULL || lists == NULL || plan_lookup_init(&lk, c.all_pods.pods,
	    c.all_pods.n) == -1)
		goto nomem;
	rc = 0;
	for (i = 0; i < j.cfg->npools; i++) {
		pools[i].pool = j.cfg->pools[i];
		if ((pools[i].id = pool_id(&j, i, err, sizeof(err))) == -1 ||
		    ado_list_agents(&j.ado, pools[i].id, &lists[i], err, sizeof(err)) == -1) {
			if ((pools[i].error = strdup(err)) == NULL)
				goto nomem;
			pools[i].id = 0;
			rc = 1;
			continue;
		}
		/* What a leader would plan now, the cycle's caps included. */
		pa.pool = pools[i].pool;
		pa.agents = lists[i].agents;
		pa.n = lists[i].n;
		pa.complete = 1;
		plan_input_of(&j, &c, &in);
		in.leader = 1;
		first = c.plan.n;
		if (plan_pool_agents(&in, &pa, &c.plan) == -1)
			goto nomem;
		plan_cap(&c.plan, first, j.cfg->janitor.max_deletions_per_cycle);
		pools[i].agents = lists[i].agents;
		pools[i].n = lists[i].n;
		pools[i].nactions = c.plan.n - first;
	}
	/* Each pool's actions, once the plan has stopped growing (and moving). */
	for (i = 0, first = 0; i < j.cfg->npools; i++) {
		pools[i].actions = pools[i].error == NULL ? c.plan.items + first : NULL;
		first += pools[i].nactions;
	}
	if (report_render(&out, json, pools, j.cfg->npools, &lk, c.now) == -1)
		goto nomem;
	fwrite(out.data, 1, out.len, stdout);
	goto out;
nomem:
	fprintf(stderr, "pipewarden-janitor report: out of memory\n");
	rc = 1;
out:
	plan_lookup_release(&lk);
	for (i = 0; pools != NULL && i < j.cfg->npools; i++) {
		free((char *)pools[i].error);
		agent_list_release(&lists[i]);
	}
	free(pools);
	free(lists);
	plan_release(&c.plan);
	pod_list_release(&c.all_pods);
	buf_release(&out);
	janitor_close(&j);
	return rc;
}
