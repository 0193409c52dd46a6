#ifndef PW_JANITOR_H
#define PW_JANITOR_H

/*
 * The janitor's own state and the parts of its loop, one concern a file
 * (private to janitor/: loop.h is what main.c sees).
 *
 *	signals.c	SIGTERM, and waits it cuts short
 *	setup.c		start, stop, config reload
 *	leader.c	the Lease
 *	act.c		carrying out planned deletions
 *	jobs.c		pipeline jobs: annotations, interruptions, gone pods
 *	retire.c	agent lifecycle: idle, never-registered, draining
 *	waiting.c	why a job waits: queue, wait, startup, duration metrics
 *	health.c	/metrics and /healthz
 *	loop.c		the cycle's phases and the loop
 *	reportcmd.c	`pipewarden-janitor report`
 */

#include <stddef.h>
#include <time.h>

#include "../common/config.h"
#include "../common/file.h"
#include "../common/metrics.h"
#include "ado.h"
#include "holdback.h"
#include "kube.h"
#include "lease.h"
#include "loop.h"
#include "plan.h"
#include "timing.h"

struct MHD_Daemon;

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
	struct metric_family	*m_agents_retired;
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
	struct metric_family	*m_job_wait;
	struct metric_family	*m_job_duration;
	struct metric_family	*m_pod_startup;
	struct metric_family	*m_jobs_queued;
	struct metric_family	*m_oldest_queued;
	struct metric_family	*m_pipeline_cpu;
	struct metric_family	*m_pipeline_memory;
	struct metric_family	*m_jobs_without_pod;

	struct seen_set		 timing_seen;	/* requests and pod phases observed
						 * (leader; timing.h) */
};

/* One cycle's working state; the phases fill it in turn. */
struct cycle {
	time_t		 now;
	double		 start, deadline;	/* monotonic */
	struct plan	 plan;			/* every phase appends (one cap) */
	struct pod_list	 node_pods;		/* this node's managed pods */
	struct pod_list	 all_pods;		/* every managed pod (leader) */
	int		 all_pods_complete;
	struct node_list nodes;			/* every Node (leader), for the
						 * lifecycle's node-draining */
	long long	 pool_id;		/* of the pool being worked on */
	const char	*pool_name;		/* ... and its name */
	int		 failed;
	int		 over_deadline;
	double		 plan_cpu;		/* CPU seconds in the pure plan */
	size_t		 patches;		/* pod annotation patches made */
	size_t		 pod_attempts;		/* pod and Job deletions attempted */
	size_t		 agent_attempts;	/* agent deletions attempted */
	const struct pod_lookup *pods;		/* every managed pod, for an agent's
						 * re-read (pool phases) */
};


/* Monotonic seconds, and this process's CPU seconds (the plan's cost). */
static inline double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline double
cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- signals.c ---- */

/* Wait up to seconds, or until SIGTERM/SIGINT (cls: the janitor).  Return
 * -1 when stopping. */
int	signals_wait(void *cls, double seconds);

/* Poll for a signal without waiting. */
void	signals_check(struct janitor *j);

/* For the HTTP client: whether to give up a request in flight. */
int	signals_stopping(void *cls);

/* ---- setup.c ---- */

/* Everything both the loop and the report need: signals, the config, the
 * Kubernetes and Azure DevOps clients, the metrics.  Takes ownership of
 * cfg.  Return 0, or -1 (logged); setup_close() releases either way. */
int	setup_open(struct janitor *j, const struct janitor_options *opts, struct config *cfg);
void	setup_close(struct janitor *j);

/* Load the config again if its file changed; a bad one is logged and
 * counted, and the old one stays. */
void	setup_reload(struct janitor *j);

/* ---- leader.c ---- */

/* Take or keep the Lease.  Return 1 when leader, 0 when not, -1 on error. */
int	leader_elect(struct janitor *j, char *err, size_t errlen);

/* Write the Lease before a leader phase's writes.  Return 1 while leader;
 * 0 once it is lost (every leader-only write of the cycle is then held). */
int	leader_renew(struct janitor *j, struct cycle *c);

/* Whether a leader-only write may start now (the Lease held and renewed
 * at most half its duration ago). */
int	leader_may_act(struct janitor *j, struct cycle *c);

/* No longer the leader: drop the pool gauges and what the leader
 * remembered. */
void	leader_lose(struct janitor *j);

/* Release the Lease on the way out, as client-go does. */
void	leader_release(struct janitor *j);

/* Forget what every pool's pods ran. */
void	leader_forget(struct pod_list *seen, size_t npools);

/* ---- act.c ---- */

/* Delete what the plan's items [first, n) say (see act.c). */
void	act_deletions(struct janitor *j, struct cycle *c, size_t first, int leader_only);

/* Plan items [first, n): keep every Job deletion whose Job must stay. */
void	act_check_jobs(struct janitor *j, struct cycle *c, size_t first);

/* A cycle begins: refusals are counted in cycles. */
void	act_new_cycle(struct janitor *j);

/* Hold one planned deletion: it becomes a kept item with this reason. */
void	act_hold(struct plan *p, struct action *a, const char *reason);

/* The holdback key of a write: "<kind>/<uid>". */
void	act_key(char *key, size_t len, const char *kind, const char *uid);

/* Whether the object of key is held back this cycle after a refusal. */
int	act_held(const struct janitor *j, const char *key);

/* A write the API server refused (403, 422): hold the object back, log
 * once, and go on with the others. */
void	act_refused(struct janitor *j, const char *key, const char *what, const char *ns,
	    const char *name, const char *err);

/* ---- jobs.c ---- */

void	jobs_annotate(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
	    const struct pod_lookup *lk);
void	jobs_record_interruptions(struct janitor *j, struct cycle *c,
	    const struct pool_agents *pool, const struct pod_lookup *lk, struct patch_plan *pp);
void	jobs_record_gone(struct janitor *j, struct cycle *c, size_t pi,
	    const struct pool_agents *pool, const struct pod_lookup *lk, struct pod_list *next);
void	jobs_remember(struct janitor *j, struct cycle *c, size_t pi,
	    const struct pool_agents *pool, const struct pod_lookup *lk,
	    const struct patch_plan *recorded, struct pod_list *next);

/* ---- waiting.c ---- */

/* One pool's queue gauges and timing histograms (after its agents' work). */
void	waiting_pool(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
	    const struct pod_lookup *lk);

/* The agent Jobs that never got a pod (leader, once a cycle). */
void	waiting_jobs(struct janitor *j, struct cycle *c);

/* After a leader's cycle: forget requests and pods no list showed lately. */
void	waiting_prune(struct janitor *j);

/* ---- retire.c ---- */

/* Retire this pool's agent pods that hold a node without running a job
 * (plan_retirements), within the cycle's caps, under a fresh Lease. */
void	retire_pool(struct janitor *j, struct cycle *c, const struct pool_agents *pool);

/* ---- health.c ---- */

/* Serve /metrics and /healthz on port (an internal thread).  Return 0, or
 * -1 (logged). */
int	health_start(struct janitor *j, unsigned int port);

/* ---- loop.c ---- */

/* The pure plan's input for this janitor and cycle. */
void	loop_plan_input(const struct janitor *j, const struct cycle *c, struct plan_input *in);

/* The pool's id: cached, else looked up.  Return it, or -1 with a message. */
long long	loop_pool_id(struct janitor *j, size_t i, char *err, size_t errlen);

/* Count a pool's failure; the reason is the Azure DevOps client's last
 * error. */
void	loop_pool_error(struct janitor *j, const char *pool);

#endif
