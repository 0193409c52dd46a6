/*
 * What the leader writes about pipeline jobs: the run each pod works on,
 * and the jobs an abnormal end interrupted (also of pods gone since its
 * last pass, which it remembers).
 */
#include <stdio.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

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
void
jobs_record_interruptions(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
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
		act_key(key, sizeof(key), "patch", pod->uid);
		if (act_held(j, key))
			continue;
		if (j->opts->dry_run) {
			log_info("would record a job interruption", "namespace", pod->namespace,
			    "pod", pod->name, "pool", pool->pool, "reason", pod->end_reason, NULL);
			continue;
		}
		signals_check(j);
		if (j->stopping || mono() >= c->deadline || !leader_may_act(j, c))
			break;
		c->patches++;
		kr = kube_annotate(&j->kube, pod, ann, value, 1, err, sizeof(err));
		if (kr == KUBE_REFUSED)
			act_refused(j, key, "pod", pod->namespace, pod->name, err);
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
void
jobs_record_gone(struct janitor *j, struct cycle *c, size_t pi, const struct pool_agents *pool,
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
			signals_check(j);
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
void
jobs_remember(struct janitor *j, struct cycle *c, size_t pi, const struct pool_agents *pool,
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
void
jobs_annotate(struct janitor *j, struct cycle *c, const struct pool_agents *pool,
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

		act_key(key, sizeof(key), "patch", pod->uid);
		if (act_held(j, key))
			continue;
		if (j->opts->dry_run) {
			log_info("would annotate the pod with its pipeline job", "namespace",
			    pod->namespace, "pod", pod->name, "pool", pool->pool, "pipeline",
			    job->pipeline ? job->pipeline : "", "run", job->run ? job->run : "",
			    "requestId", job->request_id, NULL);
			continue;
		}
		signals_check(j);
		if (j->stopping || mono() >= c->deadline || !leader_may_act(j, c))
			break;
		c->patches++;
		kr = kube_annotate_pod(&j->kube, pod, job, err, sizeof(err));
		if (kr == KUBE_REFUSED)
			act_refused(j, key, "pod", pod->namespace, pod->name, err);
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
