/*
 * "Why is my job waiting" (timing.h): the pure part.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/array.h"
#include "timing.h"

/* Observation flags of a seen entry. */
#define SEEN_WAIT		1u
#define SEEN_DURATION		2u
#define SEEN_SCHEDULING		4u
#define SEEN_STARTING		8u
#define SEEN_REGISTERING	16u

void
request_list_release(struct request_list *l)
{
	strpool_release(&l->strings);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

void
seen_release(struct seen_set *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->items[i].key);
	free(s->items);
	memset(s, 0, sizeof(*s));
}

void
seen_prune(struct seen_set *s, unsigned long cycle, unsigned long keep)
{
	size_t i, k = 0;

	for (i = 0; i < s->n; i++) {
		if (s->items[i].cycle + keep < cycle)
			free(s->items[i].key);
		else
			s->items[k++] = s->items[i];
	}
	s->n = k;
}

void
obs_list_release(struct obs_list *l)
{
	free(l->items);
	memset(l, 0, sizeof(*l));
}

struct seen_entry *
seen_touch(struct seen_set *s, const char *key, unsigned long cycle)
{
	size_t lo = 0, hi = s->n, mid;
	int c;
	char *copy;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(s->items[mid].key, key)) == 0) {
			s->items[mid].cycle = cycle;
			return &s->items[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (array_grow(&s->items, &s->cap, s->n, sizeof(*s->items), 64) == -1 ||
	    (copy = strdup(key)) == NULL)
		return NULL;
	memmove(&s->items[lo + 1], &s->items[lo], (s->n - lo) * sizeof(*s->items));
	s->items[lo].key = copy;
	s->items[lo].flags = 0;
	s->items[lo].cycle = cycle;
	s->n++;
	return &s->items[lo];
}

static int
observe(struct obs_list *out, enum obs_kind kind, time_t from, time_t to,
    const struct job_request *req, const struct pod_info *pod)
{
	if (array_grow(&out->items, &out->cap, out->n, sizeof(*out->items), 16) == -1)
		return -1;
	/* Clocks of two systems: a negative span is read as none. */
	out->items[out->n].kind = kind;
	out->items[out->n].seconds = to > from ? (double)(to - from) : 0;
	out->items[out->n].req = req;
	out->items[out->n].pod = pod;
	out->n++;
	return 0;
}

const char *
timing_result_label(const char *result)
{
	static const char *const known[] = { "succeeded", "succeededWithIssues", "failed",
		"canceled", "skipped", "abandoned", NULL };
	size_t i;

	for (i = 0; result != NULL && known[i] != NULL; i++)
		if (strcmp(result, known[i]) == 0)
			return known[i];
	return "other";
}

int
timing_requests(const struct request_list *reqs, struct seen_set *seen,
    unsigned long cycle, struct obs_list *out)
{
	const struct job_request *r;
	struct seen_entry *e;
	char key[32];
	size_t i;

	for (i = 0; i < reqs->n; i++) {
		r = &reqs->items[i];
		snprintf(key, sizeof(key), "r%lld", r->id);
		if ((e = seen_touch(seen, key, cycle)) == NULL)
			return -1;
		if (r->queued > 0 && r->assigned > 0 && !(e->flags & SEEN_WAIT)) {
			if (observe(out, OBS_WAIT, r->queued, r->assigned, r, NULL) == -1)
				return -1;
			e->flags |= SEEN_WAIT;
		}
		/* Received -> finished; a request canceled before any agent took
		 * it never ran, and is no duration. */
		if (r->received > 0 && r->finished > 0 && r->result != NULL &&
		    !(e->flags & SEEN_DURATION)) {
			if (observe(out, OBS_DURATION, r->received, r->finished, r, NULL) == -1)
				return -1;
			e->flags |= SEEN_DURATION;
		}
	}
	return 0;
}

void
timing_queue(const struct request_list *reqs, time_t now, size_t *queued, double *oldest)
{
	const struct job_request *r;
	size_t i;

	*queued = 0;
	*oldest = 0;
	for (i = 0; i < reqs->n; i++) {
		r = &reqs->items[i];
		if (r->assigned > 0 || r->finished > 0 || r->result != NULL || r->queued <= 0)
			continue;
		(*queued)++;
		if (now > r->queued && (double)(now - r->queued) > *oldest)
			*oldest = (double)(now - r->queued);
	}
}

time_t *
timing_online_times(const struct pool_agents *pool, const struct pod_lookup *lk,
    const struct pod_info *pods, size_t npods)
{
	const struct pod_info *pod;
	time_t *online = calloc(npods + 1, sizeof(*online));
	size_t i;

	/* One pass over the agents, a lookup each: never pods x agents. */
	for (i = 0; online != NULL && i < pool->n; i++) {
		if (!pool->agents[i].online || pool->agents[i].pod_uid == NULL ||
		    (pod = plan_lookup_agent(lk, &pool->agents[i])) == NULL ||
		    pod < pods || pod >= pods + npods)
			continue;
		online[pod - pods] = pool->agents[i].status_changed;
	}
	return online;
}

static int
pod_phase(struct obs_list *out, struct seen_entry *e, unsigned flag, enum obs_kind kind,
    time_t from, time_t to, const struct pod_info *pod)
{
	if (from <= 0 || to <= 0 || (e->flags & flag))
		return 0;
	if (observe(out, kind, from, to, NULL, pod) == -1)
		return -1;
	e->flags |= flag;
	return 0;
}

int
timing_pods(const struct pool_agents *pool, const char *label, const struct pod_info *pods,
    size_t npods, const struct pod_lookup *lk, struct seen_set *seen, unsigned long cycle,
    struct obs_list *out)
{
	const struct pod_info *p;
	struct seen_entry *e;
	time_t *online;
	char key[160];
	size_t i;
	int rc = -1;

	if ((online = timing_online_times(pool, lk, pods, npods)) == NULL)
		return -1;
	for (i = 0; i < npods; i++) {
		p = &pods[i];
		if (p->pool == NULL || strcmp(p->pool, label) != 0 || strlen(p->uid) > 128)
			continue;
		snprintf(key, sizeof(key), "p%s", p->uid);
		if ((e = seen_touch(seen, key, cycle)) == NULL ||
		    pod_phase(out, e, SEEN_SCHEDULING, OBS_SCHEDULING, p->created,
		    p->scheduled, p) == -1 ||
		    pod_phase(out, e, SEEN_STARTING, OBS_STARTING, p->scheduled,
		    p->agent_began, p) == -1 ||
		    pod_phase(out, e, SEEN_REGISTERING, OBS_REGISTERING, p->agent_began,
		    online[i], p) == -1)
			goto out;
	}
	rc = 0;
out:
	free(online);
	return rc;
}

void
timing_pod_phases(const struct pod_info *p, time_t online, time_t now, long long secs[3],
    int done[3])
{
	const time_t from[3] = { p->created, p->scheduled, p->agent_began };
	const time_t to[3] = { p->scheduled, p->agent_began, online };
	int k;

	for (k = 0; k < 3; k++) {
		done[k] = from[k] > 0 && to[k] > 0;
		if (from[k] <= 0)
			secs[k] = -1;
		else
			secs[k] = (done[k] ? to[k] : now) > from[k] ?
			    (long long)((done[k] ? to[k] : now) - from[k]) : 0;
	}
}

const struct pod_info *
timing_request_pod(const struct job_request *req, const struct pool_agents *pool,
    const struct pod_lookup *lk)
{
	size_t i;

	for (i = 0; req->agent_id > 0 && i < pool->n; i++)
		if (pool->agents[i].id == req->agent_id)
			return plan_lookup_agent(lk, &pool->agents[i]);
	return NULL;
}

/* Whether a managed pod is owned by the Job with this uid. */
static int
owns_pod(const struct pod_lookup *pods, const char *uid)
{
	size_t i;

	for (i = 0; i < pods->n; i++)
		if (pods->by_uid[i]->owner == OWNER_JOB && pods->by_uid[i]->owner_uid != NULL &&
		    strcmp(pods->by_uid[i]->owner_uid, uid) == 0)
			return 1;
	return 0;
}

size_t
timing_jobs_without_pod(const struct job_list *jobs, const struct pod_lookup *pods,
    long long after, time_t now, const struct job_summary **out)
{
	const struct job_summary *jb;
	size_t i, n = 0;

	for (i = 0; i < jobs->n; i++) {
		jb = &jobs->items[i];
		if (!jb->opted_in || jb->suspended || jb->finished || jb->pods > 0 ||
		    jb->created <= 0 || (long long)(now - jb->created) <= after ||
		    owns_pod(pods, jb->uid))
			continue;
		out[n++] = jb;
	}
	return n;
}

const char *
timing_failed_create_cause(const char *message)
{
	if (message == NULL || message[0] == '\0')
		return "no FailedCreate Event yet";
	if (strstr(message, "admission webhook \"inject.pipewarden.io\"") != NULL)
		return "this webhook denied it";
	if (strstr(message, "exceeded quota") != NULL)
		return "a ResourceQuota";
	if (strstr(message, "violates PodSecurity") != NULL)
		return "Pod Security";
	if (strstr(message, "admission webhook") != NULL)
		return "another admission webhook";
	return "the Job controller";
}
