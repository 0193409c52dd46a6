/*
 * "Why is my job waiting": the leader's metrics of a pool's queue, its jobs'
 * wait and duration and its pods' startup (timing.c decides, this file reads
 * the job requests and writes the metrics).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/names.h"
#include "janitor.h"

/* How many cycles a request or pod no list shows any more is remembered:
 * long enough to outlast a pool's outage (its pods are not looked at while
 * its agents cannot be listed), short enough to stay small. */
#define SEEN_KEEP	60
/* At most this many Jobs' Events are read in one cycle. */
#define JOBS_READ_MAX	20

static const char *const phase_names[] = {
	[OBS_SCHEDULING] = "scheduling", [OBS_STARTING] = "starting",
	[OBS_REGISTERING] = "registering",
};

static void
record(struct janitor *j, const char *pool, const struct pool_agents *agents,
    const struct pod_lookup *lk, const struct observation *o)
{
	const struct pod_info *pod;

	switch (o->kind) {
	case OBS_WAIT:
		metrics_observe(j->m_job_wait, o->seconds, pool);
		break;
	case OBS_DURATION:
		metrics_observe(j->m_job_duration, o->seconds, pool,
		    timing_result_label(o->req->result));
		if (!j->cfg->janitor.usage_by_pipeline ||
		    (pod = timing_request_pod(o->req, agents, lk)) == NULL)
			break;
		metrics_add(j->m_pipeline_cpu, pod->cpu_request * o->seconds, pool,
		    o->req->pipeline != NULL ? o->req->pipeline : "");
		metrics_add(j->m_pipeline_memory, pod->memory_request * o->seconds, pool,
		    o->req->pipeline != NULL ? o->req->pipeline : "");
		break;
	default:
		metrics_observe(j->m_pod_startup, o->seconds, pool, phase_names[o->kind]);
		break;
	}
}

/*
 * One pool's queue, waits, durations and pod startups, after its agents'
 * work.  Its own call (the pool's job requests): a failure there is logged,
 * leaves the pool without queue gauges this cycle (the cycle cleared them)
 * and holds back nothing else.
 */
void
waiting_pool(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
    const struct pod_lookup *lk)
{
	struct request_list reqs;
	struct obs_list obs = { NULL, 0, 0 };
	char err[512], label[64];
	double oldest;
	size_t i, queued;

	names_label_value(pool->pool, label);
	if (timing_pods(pool, label, c->all_pods.pods, c->all_pods.n, lk, &j->timing_seen,
	    j->cycles, &obs) == -1)
		log_error("out of memory while timing pod startups", "pool", pool->pool, NULL);
	if (ado_list_job_requests(&j->ado, c->pool_id, &reqs, err, sizeof(err)) == -1) {
		log_error("reading the pool's job requests failed: its queue is not known this "
		    "cycle (nothing else is held back)", "pool", pool->pool,
		    "reason", ado_error_name(j->ado.last_error), "error", err, NULL);
		c->failed = 1;
	} else {
		timing_queue(&reqs, c->now, &queued, &oldest);
		metrics_set(j->m_jobs_queued, (double)queued, pool->pool);
		metrics_set(j->m_oldest_queued, oldest, pool->pool);
		if (timing_requests(&reqs, &j->timing_seen, j->cycles, &obs) == -1)
			log_error("out of memory while timing job requests", "pool", pool->pool,
			    NULL);
	}
	for (i = 0; i < obs.n; i++)
		record(j, pool->pool, pool, lk, &obs.items[i]);
	obs_list_release(&obs);
	request_list_release(&reqs);
}

/* One Job without a pod, first seen: its FailedCreate reason on a Warning
 * Event on the Job, and a log line. */
static void
job_without_pod(struct janitor *j, struct cycle *c, const struct job_summary *jb)
{
	struct kube_object about = { "batch/v1", "Job", jb->namespace, jb->name, jb->uid };
	char err[512], why[1024], msg[1400], age[32];

	if (kube_failed_create(&j->kube, jb->namespace, jb->uid, why, sizeof(why), err,
	    sizeof(err)) == -1) {
		log_warn("reading a Job's FailedCreate Events failed", "namespace", jb->namespace,
		    "job", jb->name, "error", err, NULL);
		why[0] = '\0';
	}
	snprintf(age, sizeof(age), "%lld", (long long)(c->now - jb->created));
	snprintf(msg, sizeof(msg), "no pod for %s s: %s%s%s", age,
	    timing_failed_create_cause(why), why[0] ? ": " : "", why);
	log_warn("an agent Job has no pod", "namespace", jb->namespace, "job", jb->name,
	    "seconds", age, "cause", timing_failed_create_cause(why), "event", why, NULL);
	if (!j->opts->dry_run && kube_event(&j->kube, &about, "Warning", "PipewardenJobWithoutPod",
	    "None", msg, c->now, err, sizeof(err)) == -1)
		log_warn("recording an Event failed", "job", jb->name, "error", err, NULL);
}

/*
 * The leader's agent Jobs that never got a pod: the gauge by namespace, and
 * once per Job an Event saying why (its FailedCreate Event).  Its own reads:
 * a failure is logged and holds back nothing else.
 */
void
waiting_jobs(struct janitor *j, struct cycle *c)
{
	struct job_list jobs;
	struct pod_lookup lk = { NULL, NULL, 0 };
	const struct job_summary **found = NULL;
	struct seen_entry *e;
	char err[512], key[160];
	size_t i, n, read = 0;

	metrics_clear(j->m_jobs_without_pod);
	if (kube_list_jobs(&j->kube, &jobs, err, sizeof(err)) == -1) {
		log_error("listing Jobs failed: agent Jobs without a pod are not known this cycle "
		    "(nothing else is held back)", "error", err, NULL);
		c->failed = 1;
		return;
	}
	if (plan_lookup_init(&lk, c->all_pods.pods, c->all_pods.n) == -1 ||
	    (found = calloc(jobs.n + 1, sizeof(*found))) == NULL) {
		log_error("out of memory while looking for Jobs without a pod", NULL);
		goto out;
	}
	n = timing_jobs_without_pod(&jobs, &lk, j->cfg->janitor.stuck_pending_seconds, c->now,
	    found);
	for (i = 0; i < n; i++) {
		metrics_add(j->m_jobs_without_pod, 1, found[i]->namespace);
		snprintf(key, sizeof(key), "j%.150s", found[i]->uid);
		if ((e = seen_touch(&j->timing_seen, key, j->cycles)) == NULL || e->flags != 0 ||
		    read >= JOBS_READ_MAX || j->stopping || mono() >= c->deadline)
			continue;
		e->flags = 1;
		read++;
		job_without_pod(j, c, found[i]);
	}
out:
	free(found);
	plan_lookup_release(&lk);
	job_list_release(&jobs);
}

/* After a leader's cycle: forget what no list has shown for a while. */
void
waiting_prune(struct janitor *j)
{
	seen_prune(&j->timing_seen, j->cycles, SEEN_KEEP);
}
