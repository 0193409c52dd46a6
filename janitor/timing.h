#ifndef PW_TIMING_H
#define PW_TIMING_H

/*
 * "Why is my job waiting": where a job's and an agent pod's time went,
 * from the pool's job requests and the pods' own timestamps.  Pure: plain
 * data in, observations out; each request and each pod phase is observed
 * once, remembered in a seen set the leader keeps from cycle to cycle.
 */

#include <stddef.h>
#include <time.h>

#include "../common/strpool.h"
#include "kube_parse.h"
#include "plan.h"

/* One TaskAgentJobRequest of GET .../pools/{id}/jobrequests (fixture fact
 * 30).  A time is 0 when absent. */
struct job_request {
	long long	 id;		/* requestId */
	time_t		 queued;	/* queueTime */
	time_t		 assigned;	/* assignTime: an agent was picked */
	time_t		 received;	/* receiveTime: the agent took it */
	time_t		 finished;	/* finishTime */
	const char	*result;	/* succeeded, failed, canceled, ...; NULL: running */
	long long	 agent_id;	/* reservedAgent.id; 0: none */
	const char	*pipeline;	/* definition.name, or NULL */
};

struct request_list {
	struct job_request	*items;		/* owned */
	size_t			 n, cap;
	struct strpool		 strings;
};

void	request_list_release(struct request_list *l);

/* What the leader has observed already: one entry per request id or pod
 * uid, with the observations made (flags) and the last cycle it was seen. */
struct seen_entry {
	char		*key;		/* owned: "r<requestId>" or "p<pod uid>" */
	unsigned	 flags;
	unsigned long	 cycle;
};

struct seen_set {
	struct seen_entry	*items;		/* owned, sorted by key */
	size_t			 n, cap;
};

void	seen_release(struct seen_set *s);

/* The entry of key, added (flags 0) when new, and marked seen in cycle.
 * NULL when out of memory. */
struct seen_entry *seen_touch(struct seen_set *s, const char *key, unsigned long cycle);

/* Forget what was last seen more than keep cycles before cycle. */
void	seen_prune(struct seen_set *s, unsigned long cycle, unsigned long keep);

enum obs_kind {
	OBS_WAIT,		/* queued -> assigned */
	OBS_DURATION,		/* received -> finished, with its result */
	OBS_SCHEDULING,		/* pod created -> PodScheduled */
	OBS_STARTING,		/* scheduled -> the agent container running */
	OBS_REGISTERING,	/* running -> its agent online */
};

struct observation {
	enum obs_kind		 kind;
	double			 seconds;
	const struct job_request *req;	/* OBS_WAIT, OBS_DURATION */
	const struct pod_info	*pod;	/* the pod phases */
};

struct obs_list {
	struct observation	*items;		/* owned */
	size_t			 n, cap;
};

void	obs_list_release(struct obs_list *l);

/* The metric label of a request's result (a known value, else "other"). */
const char	*timing_result_label(const char *result);

/*
 * The observations of a pool's job requests not made before: each request's
 * wait once it has an assignTime, its duration once it has a receiveTime, a
 * finishTime and a result (one canceled before an agent took it never ran).  Marks them in seen (cycle: this cycle's number).  Return 0, or
 * -1 when out of memory (seen and out then hold what was done).
 */
int	timing_requests(const struct request_list *reqs, struct seen_set *seen,
	    unsigned long cycle, struct obs_list *out);

/* The pool's queue: requests neither assigned nor finished, and how long
 * the oldest of them has waited (0 when none). */
void	timing_queue(const struct request_list *reqs, time_t now, size_t *queued,
	    double *oldest);

/*
 * The startup phases of the pool's pods (label pipewarden.io/pool equal to
 * label) not observed before: scheduling once the pod is scheduled,
 * starting once its agent container runs, registering once its agent
 * (matched by PIPEWARDEN_POD_UID) is seen online.  lk is a lookup over
 * pods.  Return 0 or -1 (out of memory).
 */
int	timing_pods(const struct pool_agents *pool, const char *label,
	    const struct pod_info *pods, size_t npods, const struct pod_lookup *lk,
	    struct seen_set *seen, unsigned long cycle, struct obs_list *out);

/* Where a pod's start went so far, by phase (scheduling, starting,
 * registering): seconds spent (up to now while it lasts), or -1 when the
 * phase has not begun; done[k] once it is over.  online: when its agent came
 * online (0: not seen online). */
void	timing_pod_phases(const struct pod_info *p, time_t online, time_t now,
	    long long secs[3], int done[3]);

/* When each of pods' agents came online, as the pool's list shows it (0:
 * not seen online): an array indexed like pods, the caller's to free; NULL
 * when out of memory.  lk is a lookup over pods. */
time_t	*timing_online_times(const struct pool_agents *pool, const struct pod_lookup *lk,
	    const struct pod_info *pods, size_t npods);

/*
 * Agent Jobs that never got a pod: the template opts in, not suspended, not
 * finished, no pod in its status and no managed pod it owns, created more
 * than after seconds before now.  Pointers to them go to out (room for
 * jobs->n).  Return how many.
 */
size_t	timing_jobs_without_pod(const struct job_list *jobs, const struct pod_lookup *pods,
	    long long after, time_t now, const struct job_summary **out);

/* What a FailedCreate message says stopped the pod, in a few words: "this
 * webhook denied it", "a ResourceQuota", "Pod Security", "another admission
 * webhook", "the Job controller" (anything else), or "no FailedCreate Event
 * yet" for an empty message. */
const char	*timing_failed_create_cause(const char *message);

/* The pod an agent's request ran on, through its agent's PIPEWARDEN_POD_UID
 * (NULL when the agent or its pod is not known). */
const struct pod_info *timing_request_pod(const struct job_request *req,
	    const struct pool_agents *pool, const struct pod_lookup *lk);

#endif
