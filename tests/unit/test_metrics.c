#include <stdlib.h>

#include "../../common/metrics.h"
#include "check.h"

int
main(void)
{
	static const char *const labels[] = { "pool", "reason", NULL };
	static const double buckets[] = { 0.1, 1 };
	struct metric_family *c, *g, *h;
	struct buf b;

	c = metrics_register("x_deleted_total", "Deleted.", METRIC_COUNTER, labels, NULL, 0);
	g = metrics_register("x_leader", "Leader.", METRIC_GAUGE, NULL, NULL, 0);
	h = metrics_register("x_seconds", "Time.", METRIC_HISTOGRAM, NULL, buckets, 2);
	metrics_add(c, 1, "aks-pool", "offline");
	metrics_add(c, 2, "aks-pool", "offline");
	metrics_add(c, 1, "a\"b\\c\nd", "x");
	metrics_set(g, 1);
	metrics_observe(h, 0.05);
	metrics_observe(h, 0.5);
	metrics_observe(h, 5);
	CHECK(metrics_get(c, "aks-pool", "offline") == 3);
	CHECK(metrics_get(g) == 1);
	CHECK(metrics_get(h) == 3);

	buf_init(&b, 1 << 20);
	metrics_render(&b);
	CHECK(strstr(b.data, "# TYPE x_deleted_total counter\n") != NULL);
	CHECK(strstr(b.data, "x_deleted_total{pool=\"aks-pool\",reason=\"offline\"} 3\n") != NULL);
	CHECK(strstr(b.data, "x_deleted_total{pool=\"a\\\"b\\\\c\\nd\",reason=\"x\"} 1\n") != NULL);
	CHECK(strstr(b.data, "x_leader 1\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{le=\"0.1\"} 1\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{le=\"1\"} 2\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_bucket{le=\"+Inf\"} 3\n") != NULL);
	CHECK(strstr(b.data, "x_seconds_sum 5.5") != NULL);
	CHECK(strstr(b.data, "x_seconds_count 3\n") != NULL);
	buf_release(&b);

	metrics_clear(c);
	buf_init(&b, 1 << 20);
	metrics_render(&b);
	CHECK(strstr(b.data, "x_deleted_total{") == NULL);
	CHECK(strstr(b.data, "# HELP x_deleted_total Deleted.\n") != NULL);
	buf_release(&b);
	metrics_free_all();
	return check_done();
}
