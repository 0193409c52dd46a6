#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "report.h"

#define COLUMNS	9

static const char *const phase_names[] = { "Pending", "Running", "Succeeded", "Failed",
	"Unknown" };

/* "3d4h", "2h5m", "31m", "45s". */
static void
duration(long long s, char out[32])
{
	if (s >= 86400)
		snprintf(out, 32, "%lldd%lldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(out, 32, "%lldh%lldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(out, 32, "%lldm", s / 60);
	else
		snprintf(out, 32, "%llds", s < 0 ? 0 : s);
}

/* The plan's action for each agent of the pool, by index (NULL: none). */
static const struct action **
actions_by_agent(const struct report_pool *rp)
{
	const struct action **by = calloc(rp->n + 1, sizeof(*by));
	size_t i, k;

	if (by == NULL)
		return NULL;
	for (i = 0; i < rp->nactions; i++) {
		if (rp->actions[i].agent == NULL)
			continue;
		k = (size_t)(rp->actions[i].agent - rp->agents);
		if (k < rp->n)
			by[k] = &rp->actions[i];
	}
	return by;
}

/* Why the agent's pod would be retired, or NULL. */
static const char *
retire_reason(const struct report_pool *rp, const struct agent_info *ag)
{
	size_t i;

	for (i = 0; i < rp->nretire; i++)
		if (rp->retire[i].agent == ag)
			return rp->retire[i].reason;
	return NULL;
}

static long long
offline_for(const struct agent_info *ag, time_t now)
{
	time_t since = ag->status_changed != 0 ? ag->status_changed : ag->created;

	return ag->online ? -1 : (long long)(now - since);
}

static const char *const startup_phases[3] = { "scheduling", "starting", "registering" };

/* The pool's queue and its pods' startups, as JSON members of p. */
static int
json_waiting(cJSON *p, const struct report_pool *rp, const struct pod_lookup *lk, time_t now)
{
	struct pool_agents pa = { rp->pool, rp->agents, rp->n, 1 };
	time_t *online;
	cJSON *q, *arr, *o, *st, *ph;
	long long secs[3];
	int done[3], k;
	size_t i;

	if ((q = cJSON_AddObjectToObject(p, "queue")) == NULL)
		return -1;
	if (rp->queue_error != NULL) {
		cJSON_AddStringToObject(q, "error", rp->queue_error);
	} else {
		cJSON_AddNumberToObject(q, "jobsQueued", (double)rp->queued);
		cJSON_AddNumberToObject(q, "oldestSeconds", rp->oldest);
	}
	if ((arr = cJSON_AddArrayToObject(p, "pods")) == NULL ||
	    (online = timing_online_times(&pa, lk, rp->pods, rp->npods)) == NULL)
		return -1;
	for (i = 0; i < rp->npods; i++) {
		const struct pod_info *pod = &rp->pods[i];

		if (pod->pool == NULL || strcmp(pod->pool, rp->label) != 0)
			continue;
		if ((o = cJSON_CreateObject()) == NULL) {
			free(online);
			return -1;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "namespace", pod->namespace);
		cJSON_AddStringToObject(o, "name", pod->name);
		cJSON_AddStringToObject(o, "node", pod->node);
		cJSON_AddStringToObject(o, "phase", phase_names[pod->phase]);
		if ((st = cJSON_AddObjectToObject(o, "startup")) == NULL) {
			free(online);
			return -1;
		}
		timing_pod_phases(pod, online[i], now, secs, done);
		for (k = 0; k < 3; k++) {
			if (secs[k] < 0 || (ph = cJSON_AddObjectToObject(st, startup_phases[k])) == NULL)
				continue;
			cJSON_AddNumberToObject(ph, "seconds", (double)secs[k]);
			cJSON_AddBoolToObject(ph, "done", done[k]);
		}
	}
	free(online);
	return 0;
}

static int
json_jobs(cJSON *root, const struct report_job *jobs, size_t njobs, const char *jobs_error,
    time_t now)
{
	cJSON *arr, *o;
	size_t i;

	if (jobs_error != NULL)
		return cJSON_AddStringToObject(root, "jobsWithoutPodError", jobs_error) ? 0 : -1;
	if ((arr = cJSON_AddArrayToObject(root, "jobsWithoutPod")) == NULL)
		return -1;
	for (i = 0; i < njobs; i++) {
		if ((o = cJSON_CreateObject()) == NULL)
			return -1;
		cJSON_AddItemToArray(arr, o);
		cJSON_AddStringToObject(o, "namespace", jobs[i].job->namespace);
		cJSON_AddStringToObject(o, "name", jobs[i].job->name);
		cJSON_AddNumberToObject(o, "seconds", (double)(now - jobs[i].job->created));
		cJSON_AddStringToObject(o, "cause", timing_failed_create_cause(jobs[i].event));
		cJSON_AddStringToObject(o, "event", jobs[i].event);
	}
	return 0;
}

static int
render_json(struct buf *b, const struct report_pool *pools, size_t n,
    const struct pod_lookup *pods, time_t now, const struct report_job *jobs, size_t njobs,
    const char *jobs_error)
{
	cJSON *root = cJSON_CreateObject(), *arr, *p, *agents, *a, *o;
	const struct action **by;
	size_t i, k;
	char *text;
	int rc = -1;

	if (root == NULL || (arr = cJSON_AddArrayToObject(root, "pools")) == NULL)
		goto out;
	for (i = 0; i < n; i++) {
		const struct report_pool *rp = &pools[i];

		if ((p = cJSON_CreateObject()) == NULL)
			goto out;
		cJSON_AddItemToArray(arr, p);
		cJSON_AddStringToObject(p, "pool", rp->pool);
		if (rp->error != NULL) {
			cJSON_AddStringToObject(p, "error", rp->error);
			continue;
		}
		cJSON_AddNumberToObject(p, "id", (double)rp->id);
		if ((agents = cJSON_AddArrayToObject(p, "agents")) == NULL ||
		    (by = actions_by_agent(rp)) == NULL)
			goto out;
		for (k = 0; k < rp->n; k++) {
			const struct agent_info *ag = &rp->agents[k];
			const struct pod_info *pod = plan_lookup_agent(pods, ag);
			long long off = offline_for(ag, now);

			if ((a = cJSON_CreateObject()) == NULL) {
				free(by);
				goto out;
			}
			cJSON_AddItemToArray(agents, a);
			cJSON_AddNumberToObject(a, "id", (double)ag->id);
			cJSON_AddStringToObject(a, "name", ag->name);
			cJSON_AddStringToObject(a, "status", ag->online ? "online" : "offline");
			cJSON_AddBoolToObject(a, "enabled", ag->enabled);
			cJSON_AddBoolToObject(a, "managed", ag->managed);
			cJSON_AddBoolToObject(a, "busy", ag->busy);
			if (ag->busy && (o = cJSON_AddObjectToObject(a, "job")) != NULL) {
				const char *keys[4] = { "requestId", "pipeline", "run", "runUrl" };
				const char *vals[4] = { ag->job.request_id, ag->job.pipeline,
				    ag->job.run, ag->job.run_url };
				size_t f;
				for (f = 0; f < 4; f++)
					if (vals[f] != NULL)
						cJSON_AddStringToObject(o, keys[f], vals[f]);
			}
			if (pod != NULL && (o = cJSON_AddObjectToObject(a, "pod")) != NULL) {
				cJSON_AddStringToObject(o, "namespace", pod->namespace);
				cJSON_AddStringToObject(o, "name", pod->name);
				cJSON_AddStringToObject(o, "node", pod->node);
				cJSON_AddStringToObject(o, "phase", phase_names[pod->phase]);
			} else {
				cJSON_AddNullToObject(a, "pod");
			}
			if (off >= 0)
				cJSON_AddNumberToObject(a, "offlineSeconds", (double)off);
			if (retire_reason(&pools[i], &pools[i].agents[k]) != NULL &&
			    (o = cJSON_AddObjectToObject(a, "nextCycle")) != NULL) {
				cJSON_AddStringToObject(o, "action", "retire");
				cJSON_AddStringToObject(o, "reason",
				    retire_reason(&pools[i], &pools[i].agents[k]));
			} else if (by[k] != NULL &&
			    (o = cJSON_AddObjectToObject(a, "nextCycle")) != NULL) {
				cJSON_AddStringToObject(o, "action", plan_is_delete(by[k]) ?
				    "delete" : "keep");
				cJSON_AddStringToObject(o, "reason", by[k]->reason);
			}
		}
		free(by);
		if (json_waiting(p, rp, pods, now) == -1)
			goto out;
		/* Pods whose agent never registered: no agent row shows them. */
		if ((agents = cJSON_AddArrayToObject(p, "podsToRetire")) == NULL)
			goto out;
		for (k = 0; k < pools[i].nretire; k++) {
			const struct retirement *r = &pools[i].retire[k];
			if (r->agent != NULL || (a = cJSON_CreateObject()) == NULL)
				continue;
			cJSON_AddItemToArray(agents, a);
			cJSON_AddStringToObject(a, "namespace", r->pod->namespace);
			cJSON_AddStringToObject(a, "name", r->pod->name);
			cJSON_AddStringToObject(a, "node", r->pod->node);
			cJSON_AddStringToObject(a, "reason", r->reason);
		}
	}
	if (json_jobs(root, jobs, njobs, jobs_error, now) == -1 ||
	    (text = cJSON_Print(root)) == NULL)
		goto out;
	buf_adds(b, text);
	buf_addc(b, '\n');
	cJSON_free(text);
	rc = b->failed ? -1 : 0;
out:
	cJSON_Delete(root);
	return rc;
}

/* One row of cells, each owned. */
struct row {
	char	*cell[COLUMNS];
};

static char *
cellf(const char *fmt, const char *a, const char *b)
{
	size_t len = strlen(fmt) + (a ? strlen(a) : 0) + (b ? strlen(b) : 0) + 1;
	char *s = malloc(len);

	if (s != NULL)
		snprintf(s, len, fmt, a ? a : "", b ? b : "");
	return s;
}

static int
render_table(struct buf *b, const struct report_pool *rp, const struct pod_lookup *pods,
    time_t now)
{
	static const char *const head[COLUMNS] = { "AGENT", "STATUS", "ENABLED", "MANAGED",
	    "JOB", "POD", "NODE", "OFFLINE", "NEXT CYCLE" };
	struct row *rows = calloc(rp->n + 1, sizeof(*rows));
	const struct action **by = actions_by_agent(rp);
	size_t width[COLUMNS], i, c, k;
	int rc = -1;

	if (rows == NULL || by == NULL)
		goto out;
	for (c = 0; c < COLUMNS; c++) {
		rows[0].cell[c] = strdup(head[c]);
		if (rows[0].cell[c] == NULL)
			goto out;
	}
	for (k = 0; k < rp->n; k++) {
		const struct agent_info *ag = &rp->agents[k];
		const struct pod_info *pod = plan_lookup_agent(pods, ag);
		struct row *r = &rows[k + 1];
		char off[32], ns_name[600];
		long long o = offline_for(ag, now);

		if (o >= 0)
			duration(o, off);
		snprintf(ns_name, sizeof(ns_name), "%s/%s (%s)", pod ? pod->namespace : "",
		    pod ? pod->name : "", pod ? phase_names[pod->phase] : "");
		r->cell[0] = strdup(ag->name);
		r->cell[1] = strdup(ag->online ? "online" : "offline");
		r->cell[2] = strdup(ag->enabled ? "yes" : "no");
		r->cell[3] = strdup(ag->managed ? "yes" : "no");
		r->cell[4] = !ag->busy ? strdup("-") :
		    cellf("%s %s", ag->job.pipeline ? ag->job.pipeline : "(a job)", ag->job.run);
		r->cell[5] = strdup(pod ? ns_name : "-");
		r->cell[6] = strdup(pod && pod->node[0] ? pod->node : "-");
		r->cell[7] = strdup(o >= 0 ? off : "-");
		if (retire_reason(rp, ag) != NULL)
			r->cell[8] = cellf("%s: %s", "retire", retire_reason(rp, ag));
		else
			r->cell[8] = by[k] == NULL ? strdup("-") : cellf("%s: %s",
			    plan_is_delete(by[k]) ? "delete" : "keep", by[k]->reason);
		for (c = 0; c < COLUMNS; c++)
			if (r->cell[c] == NULL)
				goto out;
	}
	for (c = 0; c < COLUMNS; c++) {
		width[c] = 0;
		for (i = 0; i <= rp->n; i++)
			if (strlen(rows[i].cell[c]) > width[c])
				width[c] = strlen(rows[i].cell[c]);
	}
	for (i = 0; i <= rp->n; i++) {
		for (c = 0; c + 1 < COLUMNS; c++)
			buf_addf(b, "%-*s  ", (int)width[c], rows[i].cell[c]);
		buf_addf(b, "%s\n", rows[i].cell[COLUMNS - 1]);
	}
	for (i = 0; i < rp->nretire; i++)
		if (rp->retire[i].agent == NULL)
			buf_addf(b, "pod %s/%s on %s: retire: %s (no agent of this pool carries its "
			    "uid or name)\n", rp->retire[i].pod->namespace, rp->retire[i].pod->name,
			    rp->retire[i].pod->node, rp->retire[i].reason);
	rc = b->failed ? -1 : 0;
out:
	if (rows != NULL)
		for (i = 0; i <= rp->n; i++)
			for (c = 0; c < COLUMNS; c++)
				free(rows[i].cell[c]);
	free(rows);
	free(by);
	return rc;
}

/* The pool's queue, then where each of its pods' start went. */
static int
render_waiting(struct buf *b, const struct report_pool *rp, const struct pod_lookup *lk,
    time_t now)
{
	struct pool_agents pa = { rp->pool, rp->agents, rp->n, 1 };
	time_t *online;
	long long secs[3];
	char cell[3][48], d[32], name[600];
	int done[3], k, head = 0;
	size_t i;

	if (rp->queue_error != NULL) {
		buf_addf(b, "queue: cannot be read: %s\n", rp->queue_error);
	} else if (rp->queued == 0) {
		buf_adds(b, "queue: no job waits for an agent\n");
	} else {
		duration((long long)rp->oldest, d);
		buf_addf(b, "queue: %zu job%s waiting for an agent, the oldest for %s\n", rp->queued,
		    rp->queued == 1 ? "" : "s", d);
	}
	if ((online = timing_online_times(&pa, lk, rp->pods, rp->npods)) == NULL)
		return -1;
	for (i = 0; i < rp->npods; i++) {
		const struct pod_info *pod = &rp->pods[i];

		if (pod->pool == NULL || strcmp(pod->pool, rp->label) != 0)
			continue;
		if (!head++)
			buf_addf(b, "%-40s  %-20s  %-9s  %-14s  %-14s  %s\n", "POD", "NODE", "PHASE",
			    "SCHEDULING", "STARTING", "REGISTERING");
		timing_pod_phases(pod, online[i], now, secs, done);
		for (k = 0; k < 3; k++) {
			duration(secs[k], d);
			snprintf(cell[k], sizeof(cell[k]), "%s%s", secs[k] < 0 ? "-" : d,
			    secs[k] >= 0 && !done[k] ? " so far" : "");
		}
		snprintf(name, sizeof(name), "%s/%s", pod->namespace, pod->name);
		buf_addf(b, "%-40s  %-20s  %-9s  %-14s  %-14s  %s\n", name,
		    pod->node[0] ? pod->node : "-", phase_names[pod->phase], cell[0], cell[1],
		    cell[2]);
	}
	free(online);
	return 0;
}

int
report_render(struct buf *b, int json, const struct report_pool *pools, size_t n,
    const struct pod_lookup *pods, time_t now, const struct report_job *jobs, size_t njobs,
    const char *jobs_error)
{
	char d[32];
	size_t i;

	if (json)
		return render_json(b, pools, n, pods, now, jobs, njobs, jobs_error);
	if (jobs_error != NULL)
		buf_addf(b, "agent Jobs without a pod: cannot be read: %s\n\n", jobs_error);
	for (i = 0; i < njobs; i++) {
		duration((long long)(now - jobs[i].job->created), d);
		buf_addf(b, "job %s/%s has had no pod for %s: %s%s%s\n", jobs[i].job->namespace,
		    jobs[i].job->name, d, timing_failed_create_cause(jobs[i].event),
		    jobs[i].event[0] ? ": " : "", jobs[i].event);
		if (i + 1 == njobs)
			buf_addc(b, '\n');
	}
	for (i = 0; i < n; i++) {
		const struct report_pool *rp = &pools[i];

		if (rp->error != NULL) {
			buf_addf(b, "%spool %s: cannot be read: %s\n", i > 0 ? "\n" : "", rp->pool,
			    rp->error);
			continue;
		}
		buf_addf(b, "%spool %s (id %lld): %zu agents\n", i > 0 ? "\n" : "", rp->pool,
		    rp->id, rp->n);
		if (rp->n > 0 && render_table(b, rp, pods, now) == -1)
			return -1;
		if (render_waiting(b, rp, pods, now) == -1)
			return -1;
	}
	return b->failed ? -1 : 0;
}
