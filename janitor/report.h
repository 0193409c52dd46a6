#ifndef PW_REPORT_H
#define PW_REPORT_H

#include <stddef.h>
#include <time.h>

#include "../common/buf.h"
#include "plan.h"
#include "timing.h"

/*
 * `pipewarden-janitor report`: each pool's agents, the pod behind each, and
 * what the next cycle would do with it and why.  Pure: the lists and the
 * plan a leader would make in, text out.
 */

struct report_pool {
	const char		*pool;
	long long		 id;		/* 0 when it could not be looked up */
	const struct agent_info	*agents;
	size_t			 n;
	const struct action	*actions;	/* the plan's items for this pool */
	size_t			 nactions;
	const char		*error;		/* why it could not be read, or NULL */
	const struct retirement	*retire;	/* the pods it would retire */
	size_t			 nretire;
	/* Why its jobs wait: the queue (queue_error: why it is not known) and
	 * where each of its pods' start went. */
	size_t			 queued;
	double			 oldest;
	const char		*queue_error;
	const struct pod_info	*pods;		/* every managed pod; this pool's */
	size_t			 npods;		/* are those labelled label */
	char			 label[64];
};

/* An agent Job that never got a pod, and what its FailedCreate Event says. */
struct report_job {
	const struct job_summary *job;
	char			 event[1024];	/* "" when none */
};

/* Render the pools into b: a table per pool, or (json) one JSON document
 * {"pools": [...], "jobsWithoutPod": [...]}.  pods finds the pod behind
 * each agent; now dates the offline durations; jobs are the agent Jobs
 * without a pod (jobs_error: why they are not known, or NULL).  Return 0,
 * or -1 when out of memory. */
int	report_render(struct buf *b, int json, const struct report_pool *pools, size_t n,
	    const struct pod_lookup *pods, time_t now, const struct report_job *jobs,
	    size_t njobs, const char *jobs_error);

#endif
