#ifndef PW_REPORT_H
#define PW_REPORT_H

#include <stddef.h>
#include <time.h>

#include "../common/buf.h"
#include "plan.h"

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
};

/* Render the pools into b: a table per pool, or (json) one JSON document
 * {"pools": [...]}.  pods finds the pod behind each agent; now dates the
 * offline durations.  Return 0, or -1 when out of memory. */
int	report_render(struct buf *b, int json, const struct report_pool *pools, size_t n,
	    const struct pod_lookup *pods, time_t now);

#endif
