#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

struct series {
	struct series	*next;
	char		*values[METRICS_MAX_LABELS];
	double		 value;		/* counter, gauge; histogram sum */
	double		 count;		/* histogram */
	double		*bucket_counts;	/* histogram, cumulative at render */
};

struct metric_family {
	struct metric_family	*next;
	char			*name;
	char			*help;
	enum metric_type	 type;
	char			*labels[METRICS_MAX_LABELS];
	int			 nlabels;
	double			*buckets;
	int			 nbuckets;
	struct series		*series;
};

/* One lock for the registry: the janitor serves /metrics from another
 * thread.  Held for a few instructions, or one render. */
static pthread_mutex_t		 lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric_family	*families;
static struct metric_family	**families_tail = &families;

struct metric_family *
metrics_register(const char *name, const char *help, enum metric_type type,
    const char *const *labels, const double *buckets, int nbuckets)
{
	struct metric_family *f;
	int i;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if ((f->name = strdup(name)) == NULL || (f->help = strdup(help)) == NULL)
		goto fail;
	f->type = type;
	for (i = 0; labels != NULL && labels[i] != NULL && i < METRICS_MAX_LABELS; i++)
		if ((f->labels[f->nlabels++] = strdup(labels[i])) == NULL)
			goto fail;
	if (type == METRIC_HISTOGRAM) {
		if ((f->buckets = calloc((size_t)nbuckets, sizeof(double))) == NULL)
			goto fail;
		memcpy(f->buckets, buckets, (size_t)nbuckets * sizeof(double));
		f->nbuckets = nbuckets;
	}
	*families_tail = f;
	families_tail = &f->next;
	return f;
fail:
	for (i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	free(f);
	return NULL;
}

static void
series_free(struct series *s, int nlabels)
{
	int i;

	for (i = 0; i < nlabels; i++)
		free(s->values[i]);
	free(s->bucket_counts);
	free(s);
}

/* The series with the label values in ap, created when missing. */
static struct series *
series_get(struct metric_family *f, va_list ap)
{
	const char *values[METRICS_MAX_LABELS];
	struct series *s, **tail;
	int i;

	for (i = 0; i < f->nlabels; i++) {
		values[i] = va_arg(ap, const char *);
		if (values[i] == NULL)
			values[i] = "";
	}
	for (tail = &f->series; (s = *tail) != NULL; tail = &s->next) {
		for (i = 0; i < f->nlabels; i++)
			if (strcmp(s->values[i], values[i]) != 0)
				break;
		if (i == f->nlabels)
			return s;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	for (i = 0; i < f->nlabels; i++) {
		if ((s->values[i] = strdup(values[i])) == NULL) {
			series_free(s, i);
			return NULL;
		}
	}
	if (f->type == METRIC_HISTOGRAM &&
	    (s->bucket_counts = calloc((size_t)f->nbuckets, sizeof(double))) == NULL) {
		series_free(s, f->nlabels);
		return NULL;
	}
	*tail = s;
	return s;
}

/* Add v to, or set v as, the value of the series named by ap. */
static void
update(struct metric_family *f, double v, int set, va_list ap)
{
	struct series *s;

	if (f == NULL)
		return;
	pthread_mutex_lock(&lock);
	if ((s = series_get(f, ap)) != NULL)
		s->value = set ? v : s->value + v;
	pthread_mutex_unlock(&lock);
}

void
metrics_add(struct metric_family *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	update(f, v, 0, ap);
	va_end(ap);
}

void
metrics_set(struct metric_family *f, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	update(f, v, 1, ap);
	va_end(ap);
}

void
metrics_observe(struct metric_family *f, double v, ...)
{
	struct series *s;
	va_list ap;
	int i;

	if (f == NULL)
		return;
	va_start(ap, v);
	pthread_mutex_lock(&lock);
	if ((s = series_get(f, ap)) != NULL) {
		s->value += v;
		s->count += 1;
		for (i = 0; i < f->nbuckets; i++)
			if (v <= f->buckets[i]) {
				s->bucket_counts[i] += 1;
				break;
			}
	}
	pthread_mutex_unlock(&lock);
	va_end(ap);
}

double
metrics_get(struct metric_family *f, ...)
{
	struct series *s;
	va_list ap;
	double v = 0;

	if (f == NULL)
		return 0;
	va_start(ap, f);
	pthread_mutex_lock(&lock);
	if ((s = series_get(f, ap)) != NULL)
		v = f->type == METRIC_HISTOGRAM ? s->count : s->value;
	pthread_mutex_unlock(&lock);
	va_end(ap);
	return v;
}

void
metrics_clear(struct metric_family *f)
{
	struct series *s, *next;

	if (f == NULL)
		return;
	pthread_mutex_lock(&lock);
	for (s = f->series; s != NULL; s = next) {
		next = s->next;
		series_free(s, f->nlabels);
	}
	f->series = NULL;
	pthread_mutex_unlock(&lock);
}

static void
render_number(struct buf *b, double v)
{
	if (isinf(v))
		buf_adds(b, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 1e15)
		buf_addf(b, "%.0f", v);
	else
		buf_addf(b, "%.15g", v);
}

/* Label values escape '\', '"' and newline. */
static void
render_label_value(struct buf *b, const char *v)
{
	for (; *v != '\0'; v++) {
		if (*v == '\\' || *v == '"')
			buf_addc(b, '\\');
		if (*v == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *v);
	}
}

static void
render_labels(struct buf *b, const struct metric_family *f, const struct series *s,
    const char *le)
{
	int i;

	if (f->nlabels == 0 && le == NULL)
		return;
	buf_addc(b, '{');
	for (i = 0; i < f->nlabels; i++) {
		buf_addf(b, "%s%s=\"", i ? "," : "", f->labels[i]);
		render_label_value(b, s->values[i]);
		buf_addc(b, '"');
	}
	if (le != NULL)
		buf_addf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
	buf_addc(b, '}');
}

void
metrics_render(struct buf *b)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	const struct metric_family *f;
	const struct series *s;
	char le[64];
	double cum;
	int i;

	pthread_mutex_lock(&lock);
	for (f = families; f != NULL; f = f->next) {
		buf_addf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
		    f->name, types[f->type]);
		for (s = f->series; s != NULL; s = s->next) {
			if (f->type != METRIC_HISTOGRAM) {
				buf_adds(b, f->name);
				render_labels(b, f, s, NULL);
				buf_addc(b, ' ');
				render_number(b, s->value);
				buf_addc(b, '\n');
				continue;
			}
			for (cum = 0, i = 0; i < f->nbuckets; i++) {
				cum += s->bucket_counts[i];
				snprintf(le, sizeof(le), "%g", f->buckets[i]);
				buf_addf(b, "%s_bucket", f->name);
				render_labels(b, f, s, le);
				buf_addc(b, ' ');
				render_number(b, cum);
				buf_addc(b, '\n');
			}
			buf_addf(b, "%s_bucket", f->name);
			render_labels(b, f, s, "+Inf");
			buf_addc(b, ' ');
			render_number(b, s->count);
			buf_addf(b, "\n%s_sum", f->name);
			render_labels(b, f, s, NULL);
			buf_addc(b, ' ');
			render_number(b, s->value);
			buf_addf(b, "\n%s_count", f->name);
			render_labels(b, f, s, NULL);
			buf_addc(b, ' ');
			render_number(b, s->count);
			buf_addc(b, '\n');
		}
	}
	pthread_mutex_unlock(&lock);
}

void
metrics_free_all(void)
{
	struct metric_family *f, *next;
	int i;

	for (f = families; f != NULL; f = next) {
		next = f->next;
		metrics_clear(f);
		for (i = 0; i < f->nlabels; i++)
			free(f->labels[i]);
		free(f->name);
		free(f->help);
		free(f->buckets);
		free(f);
	}
	families = NULL;
	families_tail = &families;
}
