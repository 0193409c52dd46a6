/*
 * Carrying out a phase's planned deletions: the cap on attempts, the
 * Lease and deadline checks, an agent read again before its DELETE, a
 * Job read before it goes, and writes the API server refused held back.
 */
#include <stdio.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

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
void
act_hold(struct plan *p, struct action *a, const char *reason)
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

/* The holdback key of what a write touches: the Job, or the pod. */
void
act_key(char *key, size_t len, const char *kind, const char *uid)
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

int
act_held(const struct janitor *j, const char *key)
{
	return holdback_held(&j->held, key, j->cycles);
}

void
act_refused(struct janitor *j, const char *key, const char *what, const char *ns,
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
		act_hold(&c->plan, a, why);
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
		loop_pool_error(j, a->pool);
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
		act_refused(j, key, what(a), a->pod->namespace, a->kind == ACT_DELETE_JOB ?
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
void
act_deletions(struct janitor *j, struct cycle *c, size_t first, int leader_only)
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
		attempts = a->kind == ACT_DELETE_AGENT ? &c->agent_attempts : &c->pod_attempts;
		if (j->opts->dry_run) {		/* what a real cycle would attempt */
			if (*attempts >= max)
				act_hold(&c->plan, a, "deletion-cap");
			else
				(*attempts)++;
			log_action(j, plan_is_delete(a) ? "would delete" : "keep", a, LOG_INFO, "");
			continue;
		}
		signals_check(j);
		if (j->stopping) {
			act_hold(&c->plan, a, "stopping");
			continue;
		}
		if (mono() >= c->deadline) {
			if (!c->over_deadline)
				log_error("the cycle's time budget is spent: what is left waits "
				    "for the next cycle", NULL);
			c->over_deadline = c->failed = 1;
			act_hold(&c->plan, a, "cycle-deadline");
			continue;
		}
		if (leader_only && !leader_may_act(j, c)) {
			act_hold(&c->plan, a, "lease-lost");
			continue;
		}
		if (a->kind == ACT_DELETE_AGENT && agents_stopped) {
			act_hold(&c->plan, a, "azure-devops-unavailable");
			continue;
		}
		if (a->kind != ACT_DELETE_AGENT) {
			act_key(key, sizeof(key), what(a), a->kind == ACT_DELETE_JOB ?
			    a->pod->owner_uid : a->pod->uid);
			if (act_held(j, key)) {
				act_hold(&c->plan, a, "refused-earlier");
				continue;
			}
		}
		if (*attempts >= max) {
			act_hold(&c->plan, a, "deletion-cap");
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
void
act_check_jobs(struct janitor *j, struct cycle *c, size_t first)
{
	const char *why;
	size_t i;

	for (i = first; i < c->plan.n && !j->stopping; i++) {
		struct action *a = &c->plan.items[i];
		if (a->kind == ACT_DELETE_JOB && (why = job_keep_reason(j, c, a)) != NULL)
			act_hold(&c->plan, a, why);
	}
}

void
act_new_cycle(struct janitor *j)
{
	j->cycles++;
	holdback_prune(&j->held, j->cycles, max_skip(j));
}
