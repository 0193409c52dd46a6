#ifndef PW_METRICS_H
#define PW_METRICS_H

#include "buf.h"

/*
 * A small Prometheus registry: counters, gauges and histograms, each a
 * family with up to METRICS_MAX_LABELS label names, rendered in the text
 * exposition format.  One registry per process; families are registered at
 * start, series appear on first use.  Not thread-safe: each program updates
 * and renders its metrics from one thread.
 */

#define METRICS_MAX_LABELS	3

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_family;

/* Register a family.  labels is a NULL-terminated list of label names (or
 * NULL); buckets (histograms only) is an ascending list of nbuckets upper
 * bounds.  Returns NULL only when out of memory. */
struct metric_family	*metrics_register(const char *name, const char *help,
			    enum metric_type type, const char *const *labels,
			    const double *buckets, int nbuckets);

/* Add to a counter or set a gauge, for the series with these label values
 * (as many as the family has label names).  Out of memory is ignored: a
 * metric is lost, never the program. */
void	metrics_add(struct metric_family *f, double v, ...);
void	metrics_set(struct metric_family *f, double v, ...);
void	metrics_observe(struct metric_family *f, double v, ...);

/* Drop every series of a family (a gauge whose label sets come and go). */
void	metrics_clear(struct metric_family *f);

/* The value of a series (counters and gauges), for tests. */
double	metrics_get(struct metric_family *f, ...);

/* Render every family into b. */
void	metrics_render(struct buf *b);

/* Free every family (at exit, so leak checkers stay quiet). */
void	metrics_free_all(void);

#endif
