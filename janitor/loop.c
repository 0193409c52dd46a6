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
#include "kube.h"
#include "lease.h"
#include "loop.h"
#include "plan.h"

struct janitor {
	const struct janitor_options *opts;
	struct config		*cfg;		/* owned snapshot */
	struct file_watch	 cfg_watch;
	struct kube		 kube;
	struct ado		 ado;
	struct elector		 elector;
	long long		*pool_ids;	/* per cfg->pools; 0: not looked up */
	int			 sigfd;
	int			 stopping;
	struct MHD_Daemon	*metrics;

	struct metric_family	*m_agents_deleted;
	struct metric_family	*m_agents_kept;
	struct metric_family	*m_pods_deleted;
	struct metric_family	*m_agents;
	struct metric_family	*m_duration;
	struct metric_family	*m_ado_requests;
	struct metric_family	*m_is_leader;
	struct metric_family	*m_reload_errors;
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wait up to seconds, or until SIGTERM/SIGINT.  Return -1 when stopping. */
static int
wait_or_stop(void *cls, double seconds)
{
	struct janitor *j = cls;
	struct signalfd_siginfo si;
	struct pollfd pfd;
	double until = mono() + seconds, left;
	int ms;

	while (!j->stopping && (left = until - mono()) > 0) {
		ms = left > 1e6 ? 1000000000 : (int)(left * 1000) + 1;
		pfd.fd = j->sigfd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, ms) > 0 &&
		    read(j->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			j->stopping = 1;
			log_info("stopping: no new deletion starts", "signal",
			    si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", NULL);
		}
	}
	return j->stopping ? -1 : 0;
}

/* Poll for a signal without waiting. */
static void
check_stop(struct janitor *j)
{
	wait_or_stop(j, 0.0001);
}

static void
reload_config(struct janitor *j)
{
	struct config *cfg;
	long long *ids;
	char err[512];

	if (!file_watch_changed(&j->cfg_watch))
		return;
	if ((cfg = config_load(j->opts->config_path, err, sizeof(err))) == NULL) {
		metrics_add(j->m_reload_errors, 1);
		log_error("config reload failed; the previous config stays in force",
		    "file", j->opts->config_path, "error", err, NULL);
		return;
	}
	if ((ids = calloc(cfg->npools + 1, sizeof(*ids))) == NULL) {
		config_free(cfg);
		return;
	}
	config_free(j->cfg);
	free(j->pool_ids);
	j->cfg = cfg;
	j->pool_ids = ids;
	j->elector.duration = 2 * cfg->janitor.interval_seconds + 15;
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
	if (j->opts->dry_run)	/* no write of any kind */
		return 1;
	lease_next(&j->elector, step, &cur, ts.tv_sec, ts.tv_nsec, &next);
	rc = kube_put_lease(&j->kube, j->cfg->janitor.lease_name, &next, err, errlen);
	if (rc == -1)
		return -1;
	if (rc == 0 && step != LEASE_RENEW)
		log_info("became the leader: pool work is mine", "lease",
		    j->cfg->janitor.lease_name, "identity", j->opts->identity, NULL);
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
	j->elector.leader = 0;
	metrics_set(j->m_is_leader, 0);
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

static long long
pool_id_of(const struct janitor *j, const char *pool)
{
	size_t i;

	for (i = 0; i < j->cfg->npools; i++)
		if (strcmp(j->cfg->pools[i], pool) == 0)
			return j->pool_ids[i];
	return -1;
}

/* Carry out the plan.  Return 1 when a deletion failed. */
static int
act(struct janitor *j, const struct plan *p, time_t now)
{
	enum kube_delete_result kr;
	enum ado_delete_result ar;
	char err[512], msg[512];
	int failed = 0, agents_stopped = 0;
	size_t i;

	for (i = 0; i < p->n; i++) {
		const struct action *a = &p->items[i];

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
		if (j->stopping)
			break;
		err[0] = '\0';
		if (a->kind == ACT_DELETE_AGENT) {
			if (agents_stopped)
				continue;
			ar = ado_delete_agent(&j->ado, pool_id_of(j, a->pool), a->agent->id,
			    err, sizeof(err));
			if (ar == ADO_DELETED) {
				metrics_add(j->m_agents_deleted, 1, a->pool, a->reason);
				log_action(j, "deleted", a, LOG_INFO, "");
			} else if (ar == ADO_GONE) {
				log_action(j, "already gone", a, LOG_INFO, "");
			} else if (ar == ADO_BUSY) {
				metrics_add(j->m_agents_kept, 1, a->pool, "busy");
				log_action(j, "kept: Azure DevOps says it is running a job", a,
				    LOG_INFO, "");
			} else {
				failed = 1;
				agents_stopped = 1;	/* an outage or auth error: stop */
				log_action(j, "delete failed; no more agent deletions this cycle",
				    a, LOG_ERROR, err);
			}
			continue;
		}
		kr = a->kind == ACT_DELETE_JOB ?
		    kube_delete_job(&j->kube, a->pod->namespace, a->pod->owner_name,
		    a->pod->owner_uid, err, sizeof(err)) :
		    kube_delete_pod(&j->kube, a->pod->namespace, a->pod->name, a->pod->uid,
		    err, sizeof(err));
		if (kr == KUBE_DELETED) {
			metrics_add(j->m_pods_deleted, 1, a->reason);
			log_action(j, "deleted", a, LOG_INFO, "");
			snprintf(msg, sizeof(msg), "pipewarden-janitor deleted %s %s: %s",
			    a->kind == ACT_DELETE_JOB ? "Job" : "pod",
			    a->kind == ACT_DELETE_JOB ? a->pod->owner_name : a->pod->name,
			    a->reason);
			if (kube_event(&j->kube, a->pod, "PipewardenCleanup", msg, now, err,
			    sizeof(err)) == -1)
				log_warn("could not record an Event", "pod", a->pod->name,
				    "error", err, NULL);
		} else if (kr == KUBE_GONE || kr == KUBE_REPLACED) {
			log_action(j, kr == KUBE_GONE ? "already gone" :
			    "not deleted: replaced since it was listed", a, LOG_INFO, "");
		} else {
			failed = 1;
			log_action(j, "delete failed", a, LOG_ERROR, err);
		}
	}
	return failed;
}

/*
 * Why the Job of a planned Job deletion must stay, or NULL to go ahead.
 * The Job is read (a finished pod's Job goes only once the Job finished:
 * between retries it has no live pod), then its pods are listed in its
 * namespace by controller-uid (from the API server's cache): a retry or a
 * parallel pod may still be at work on any node.  When a read fails the
 * Job stays too, and *failed is set.
 */
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

static const char *
job_keep_reason(struct janitor *j, const struct action *a, time_t now, int *failed)
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
		why = plan_job_keep(&j->cfg->janitor, now, a->pod, &job, job_pods.pods,
		    job_pods.n);
		pod_list_release(&job_pods);
		if (why != NULL)
			log_info(job_keep_message(why), "namespace", a->pod->namespace,
			    "pod", a->pod->name, "job", a->pod->owner_name, "reason", why, NULL);
		return why;
	}
	log_error("reading a Job or its pods failed: the Job is kept this cycle", "namespace",
	    a->pod->namespace, "job", a->pod->owner_name, "error", err, NULL);
	*failed = 1;
	return "job-pods-unknown";
}

/* Keep every planned Job deletion whose Job must stay.  Return 1 when a
 * list failed. */
static int
check_jobs(struct janitor *j, struct plan *p, time_t now)
{
	const char *why;
	int failed = 0;
	size_t i;

	for (i = 0; i < p->n && !j->stopping; i++) {
		struct action *a = &p->items[i];
		if (a->kind != ACT_DELETE_JOB ||
		    (why = job_keep_reason(j, a, now, &failed)) == NULL)
			continue;
		a->kind = ACT_KEEP_POD;
		a->reason = why;
		p->pod_deletions--;
	}
	return failed;
}

/* Turn every deletion of the plan into a kept item with this reason. */
static void
hold_deletions(struct plan *p, const char *reason)
{
	size_t i;

	for (i = 0; i < p->n; i++) {
		if (!plan_is_delete(&p->items[i]))
			continue;
		p->items[i].kind = p->items[i].agent != NULL ? ACT_KEEP_AGENT : ACT_KEEP_POD;
		p->items[i].reason = reason;
	}
	p->pod_deletions = p->agent_deletions = 0;
}

static void
count_agents(struct janitor *j, const struct pool_agents *pools, size_t n)
{
	size_t i, k;

	metrics_clear(j->m_agents);
	for (i = 0; i < n; i++) {
		double online = 0, offline = 0, busy = 0;
		if (!pools[i].complete)
			continue;
		for (k = 0; k < pools[i].n; k++) {
			busy += pools[i].agents[k].busy;
			online += pools[i].agents[k].online;
			offline += !pools[i].agents[k].online;
		}
		metrics_set(j->m_agents, online, pools[i].pool, "online");
		metrics_set(j->m_agents, offline, pools[i].pool, "offline");
		metrics_set(j->m_agents, busy, pools[i].pool, "busy");
	}
}

/* One cycle.  Return 0, or 1 when an API error left part of it undone. */
static int
cycle(struct janitor *j)
{
	struct pod_list node_pods, all_pods;
	struct agent_list *lists = NULL;
	struct pool_agents *pools = NULL;
	struct plan_input in;
	struct plan p;
	char err[512], sel[512];
	double t0 = mono(), plan_cpu_ms = 0;
	struct timespec cpu0, cpu1;
	int failed = 0, leader, ado_failed = 0, rc_plan;
	size_t i;

	reload_config(j);
	memset(&in, 0, sizeof(in));
	memset(&all_pods, 0, sizeof(all_pods));
	memset(&p, 0, sizeof(p));
	in.cfg = &j->cfg->janitor;
	in.now = time(NULL);
	in.node = j->opts->node;

	snprintf(sel, sizeof(sel), "spec.nodeName=%s", j->opts->node);
	if (kube_list_pods(&j->kube, NULL, KUBE_MANAGED_SELECTOR, sel, 1, &node_pods, err,
	    sizeof(err)) == -1) {
		log_error("listing this node's pods failed; no pod of it is deleted this "
		    "cycle", "node", j->opts->node, "error", err, NULL);
		failed = 1;
	}
	in.node_pods = node_pods.pods;
	in.n_node_pods = node_pods.n;

	if ((leader = elect(j, err, sizeof(err))) == -1) {
		log_error("leader election failed; no pool work this cycle", "error", err, NULL);
		failed = 1;
		leader = 0;
	}
	if (leader != j->elector.leader && !leader)
		log_info("not the leader: node work only", "lease",
		    j->cfg->janitor.lease_name, NULL);
	j->elector.leader = leader;
	metrics_set(j->m_is_leader, leader);
	in.leader = leader;
	if (leader) {
		if (kube_list_pods(&j->kube, NULL, KUBE_MANAGED_SELECTOR, NULL, 0, &all_pods, err,
		    sizeof(err)) == -1) {
			log_error("listing managed pods failed: no agent is deleted this cycle",
			    "error", err, NULL);
			failed = 1;
		} else {
			in.all_pods_complete = 1;
		}
		in.all_pods = all_pods.pods;
		in.n_all_pods = all_pods.n;
		lists = calloc(j->cfg->npools + 1, sizeof(*lists));
		pools = calloc(j->cfg->npools + 1, sizeof(*pools));
		if (lists == NULL || pools == NULL) {
			failed = 1;
			goto out;
		}
		for (i = 0; i < j->cfg->npools && !j->stopping; i++) {
			const char *name = j->cfg->pools[i];
			pools[i].pool = name;
			if (j->pool_ids[i] <= 0 &&
			    (j->pool_ids[i] = ado_pool_id(&j->ado, name, err, sizeof(err))) == -1) {
				j->pool_ids[i] = 0;
				log_error("pool lookup failed: nothing is deleted this cycle",
				    "pool", name, "error", err, NULL);
				failed = ado_failed = 1;
				continue;
			}
			if (ado_list_agents(&j->ado, j->pool_ids[i],
			    j->cfg->janitor.only_managed_agents, &lists[i], err, sizeof(err)) == -1) {
				log_error("listing agents failed: nothing is deleted this cycle",
				    "pool", name, "error", err, NULL);
				failed = ado_failed = 1;
				continue;
			}
			pools[i].agents = lists[i].agents;
			pools[i].n = lists[i].n;
			pools[i].complete = 1;
		}
		in.pools = pools;
		in.npools = j->cfg->npools;
		count_agents(j, pools, j->cfg->npools);
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
	rc_plan = plan_make(&in, &p);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
	plan_cpu_ms = (double)(cpu1.tv_sec - cpu0.tv_sec) * 1e3 +
	    (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e6;
	if (rc_plan == -1) {
		log_error("out of memory while planning", NULL);
		failed = 1;
		goto out;
	}
	/* While Azure DevOps is unreachable nothing is deleted (DESIGN). */
	if (ado_failed)
		hold_deletions(&p, "azure-devops-unavailable");
	/* Renew before acting: a Lease lost since the election means another
	 * replica may be doing pool work now. */
	if (leader && p.agent_deletions > 0 && !j->opts->dry_run &&
	    elect(j, err, sizeof(err)) != 1) {
		log_warn("lost the lease before acting: no agent is deleted this cycle", NULL);
		for (i = 0; i < p.n; i++)
			if (p.items[i].kind == ACT_DELETE_AGENT) {
				p.items[i].kind = ACT_KEEP_AGENT;
				p.items[i].reason = "lease-lost";
			}
		p.agent_deletions = 0;
		j->elector.leader = 0;
		metrics_set(j->m_is_leader, 0);
	}
	failed |= check_jobs(j, &p, in.now);
	failed |= act(j, &p, in.now);
out:
	{
		char pods[32], agents[32], ms[32], planms[32];
		snprintf(pods, sizeof(pods), "%zu", p.pod_deletions);
		snprintf(agents, sizeof(agents), "%zu", p.agent_deletions);
		snprintf(ms, sizeof(ms), "%.1f", (mono() - t0) * 1000);
		snprintf(planms, sizeof(planms), "%.2f", plan_cpu_ms);
		log_info("cycle done", "leader", leader ? "true" : "false", "podDeletions",
		    pods, "agentDeletions", agents, "failed", failed ? "true" : "false",
		    "dryRun", j->opts->dry_run ? "true" : "false", "ms", ms,
		    "planCpuMs", planms, NULL);
	}
	metrics_observe(j->m_duration, mono() - t0);
	plan_release(&p);
	for (i = 0; lists != NULL && i < j->cfg->npools; i++)
		agent_list_release(&lists[i]);
	free(lists);
	free(pools);
	pod_list_release(&all_pods);
	pod_list_release(&node_pods);
	return failed;
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

	(void)cls;
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
		buf_adds(&b, "ok\n");
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
	metrics_set(j->m_is_leader, 0);
	metrics_add(j->m_reload_errors, 0);
}

int
janitor_run(const struct janitor_options *opts, struct config *cfg)
{
	struct janitor j;
	sigset_t mask;
	char err[512];
	int rc = 2, failed;

	memset(&j, 0, sizeof(j));
	j.opts = opts;
	/* the janitor now owns cfg */
	j.cfg = cfg;
	cfg = NULL;
	j.sigfd = -1;
	file_watch_init(&j.cfg_watch, opts->config_path);
	register_metrics(&j);
	j.elector.identity = opts->identity;
	j.elector.observe = !opts->once;
	j.elector.duration = 2 * j.cfg->janitor.interval_seconds + 15;
	srand((unsigned int)(time(NULL) ^ getpid()));

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((j.sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) == -1 ||
	    (j.pool_ids = calloc(j.cfg->npools + 1, sizeof(*j.pool_ids))) == NULL) {
		log_error("cannot start", "error", strerror(errno), NULL);
		goto out;
	}
	if (kube_init(&j.kube, opts->kube_api, opts->kube_token_file, opts->kube_ca,
	    opts->namespace, err, sizeof(err)) == -1) {
		log_error("cannot start", "error", err, NULL);
		goto out;
	}
	j.kube.wait = wait_or_stop;
	j.kube.wait_cls = &j;
	if (ado_init(&j.ado, j.cfg->organization_url, opts->ado_ca) == -1) {
		log_error("cannot start: out of memory", NULL);
		goto out;
	}
	j.ado.pat_path = opts->pat_file;
	j.ado.client_id = opts->client_id != NULL ? opts->client_id : j.cfg->client_id;
	j.ado.tenant_id = opts->tenant_id != NULL ? opts->tenant_id : j.cfg->tenant_id;
	j.ado.authority = opts->authority != NULL ? opts->authority : j.cfg->authority_host;
	j.ado.token_file = opts->federated_token_file;
	j.ado.wait = wait_or_stop;
	j.ado.wait_cls = &j;
	j.ado.m_requests = j.m_ado_requests;
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
	if (j.metrics != NULL)
		MHD_stop_daemon(j.metrics);
	ado_release(&j.ado);
	kube_release(&j.kube);
	if (j.sigfd != -1)
		close(j.sigfd);
	free(j.pool_ids);
	config_free(j.cfg);
	metrics_free_all();
	return rc;
}
