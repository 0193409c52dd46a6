/*
 * "Why is my job waiting" with plain data: job requests and pods in,
 * observations out, each made once across cycles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../janitor/ado.h"
#include "../../janitor/timing.h"
#include "check.h"

static const char REQUESTS[] =
    "{\"count\":5,\"value\":["
    "{\"requestId\":1,\"queueTime\":\"2026-12-06T10:00:00.5Z\",\"assignTime\":\"2026-12-06T10:00:37.9Z\","
    "\"receiveTime\":\"2026-12-06T10:00:38Z\",\"finishTime\":\"2026-12-06T10:02:42Z\",\"result\":\"succeeded\","
    "\"reservedAgent\":{\"id\":31,\"name\":\"a\"},\"definition\":{\"id\":41,\"name\":\"payments - CI\"}},"
    "{\"requestId\":2,\"queueTime\":\"2026-12-06T10:10:00Z\",\"assignTime\":\"2026-12-06T10:10:03Z\","
    "\"receiveTime\":\"2026-12-06T10:10:04Z\",\"reservedAgent\":{\"id\":32}},"
    "{\"requestId\":3,\"queueTime\":\"2026-12-06T10:15:00Z\",\"finishTime\":\"2026-12-06T10:16:00Z\","
    "\"result\":\"canceled\"},"
    "{\"requestId\":4,\"queueTime\":\"2026-12-06T10:18:30Z\",\"matchedAgents\":[]},"
    "{\"requestId\":5,\"queueTime\":\"2026-12-06T10:19:30Z\",\"result\":\"weird\"}]}";

static time_t
at(const char *hms)		/* 2026-12-06T<hms>Z */
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	sscanf(hms, "%d:%d:%d", &tm.tm_hour, &tm.tm_min, &tm.tm_sec);
	tm.tm_year = 2026 - 1900;
	tm.tm_mon = 11;
	tm.tm_mday = 6;
	return timegm(&tm);
}

static size_t
count_kind(const struct obs_list *o, enum obs_kind k, double *sum)
{
	size_t i, n = 0;

	*sum = 0;
	for (i = 0; i < o->n; i++)
		if (o->items[i].kind == k) {
			n++;
			*sum += o->items[i].seconds;
		}
	return n;
}

static void
test_requests(void)
{
	struct request_list reqs;
	struct seen_set seen = { NULL, 0, 0 };
	struct obs_list obs = { NULL, 0, 0 };
	char err[256];
	size_t queued;
	double oldest, sum;

	CHECK(ado_parse_job_requests(REQUESTS, sizeof(REQUESTS) - 1, &reqs, err, sizeof(err)) == 0);
	CHECK(reqs.n == 5);
	CHECK(at("10:00:00") == reqs.items[0].queued);
	CHECK(reqs.items[0].agent_id == 31);
	CHECK_STR(reqs.items[0].pipeline, "payments - CI");
	CHECK(reqs.items[3].assigned == 0 && reqs.items[3].result == NULL);

	CHECK(timing_requests(&reqs, &seen, 1, &obs) == 0);
	/* Waits: 37 s (fractions dropped) and 3 s; one duration, 124 s. */
	CHECK(count_kind(&obs, OBS_WAIT, &sum) == 2 && sum == 40);
	CHECK(count_kind(&obs, OBS_DURATION, &sum) == 1 && sum == 124);
	CHECK_STR(timing_result_label(obs.items[1].req->result), "succeeded");
	/* Observed once: the next cycle, nothing new. */
	obs.n = 0;
	CHECK(timing_requests(&reqs, &seen, 2, &obs) == 0 && obs.n == 0);
	/* Request 2 finishes: its duration, and not its wait again. */
	reqs.items[1].finished = at("10:12:04");
	reqs.items[1].result = "failed";
	CHECK(timing_requests(&reqs, &seen, 3, &obs) == 0);
	CHECK(obs.n == 1 && obs.items[0].kind == OBS_DURATION && obs.items[0].seconds == 120);

	timing_queue(&reqs, at("10:20:00"), &queued, &oldest);
	CHECK(queued == 1 && oldest == 90);		/* 5 has a result: not queued */
	CHECK_STR(timing_result_label("weird"), "other");
	CHECK_STR(timing_result_label(NULL), "other");

	/* Forgotten after keep cycles unseen; seen again, observed again. */
	seen_prune(&seen, 20, 10);
	CHECK(seen.n == 0);
	obs.n = 0;
	CHECK(timing_requests(&reqs, &seen, 21, &obs) == 0 && obs.n == 4);
	seen_prune(&seen, 25, 10);
	CHECK(seen.n == 5);

	obs_list_release(&obs);
	seen_release(&seen);
	request_list_release(&reqs);

	/* One bad time fails the whole answer, as KEDA's parse does. */
	CHECK(ado_parse_job_requests("{\"value\":[{\"requestId\":1,\"queueTime\":\"soon\"}]}", 47, &reqs,
	    err, sizeof(err)) == -1 && strstr(err, "queueTime 'soon'") != NULL);
	CHECK(ado_parse_job_requests("{\"value\":[{\"queueTime\":\"2026-12-06T10:00:00Z\"}]}", 48, &reqs,
	    err, sizeof(err)) == -1 && strstr(err, "requestId") != NULL);
	CHECK(ado_parse_job_requests("[]", 2, &reqs, err, sizeof(err)) == -1);
}

static void
test_pods(void)
{
	struct pod_info pods[3];
	struct agent_info agents[2];
	struct pool_agents pool = { "aks-pool", agents, 2, 1 };
	struct seen_set seen = { NULL, 0, 0 };
	struct obs_list obs = { NULL, 0, 0 };
	struct pod_lookup lk;
	double sum;

	memset(pods, 0, sizeof(pods));
	memset(agents, 0, sizeof(agents));
	pods[0] = (struct pod_info){ .namespace = "ci", .name = "a", .uid = "u-a", .pool = "aks-pool",
	    .created = 1000, .scheduled = 1004, .agent_began = 1024 };
	pods[1] = (struct pod_info){ .namespace = "ci", .name = "b", .uid = "u-b", .pool = "aks-pool",
	    .created = 1000 };					/* not scheduled yet */
	pods[2] = (struct pod_info){ .namespace = "ci", .name = "c", .uid = "u-c", .pool = "other",
	    .created = 1000, .scheduled = 1001, .agent_began = 1002 };
	agents[0] = (struct agent_info){ .id = 1, .name = "a", .online = 0, .pod_uid = "u-a",
	    .status_changed = 1031 };
	agents[1] = (struct agent_info){ .id = 2, .name = "c", .online = 1, .pod_uid = "u-c",
	    .status_changed = 1003 };

	CHECK(plan_lookup_init(&lk, pods, 3) == 0);
	CHECK(timing_pods(&pool, "aks-pool", pods, 3, &lk, &seen, 1, &obs) == 0);
	CHECK(count_kind(&obs, OBS_SCHEDULING, &sum) == 1 && sum == 4);
	CHECK(count_kind(&obs, OBS_STARTING, &sum) == 1 && sum == 20);
	/* Its agent is not online: registering not yet known. */
	CHECK(count_kind(&obs, OBS_REGISTERING, &sum) == 0);
	obs.n = 0;
	agents[0].online = 1;
	pods[1].scheduled = 1100;
	CHECK(timing_pods(&pool, "aks-pool", pods, 3, &lk, &seen, 2, &obs) == 0);
	CHECK(obs.n == 2);
	CHECK(count_kind(&obs, OBS_REGISTERING, &sum) == 1 && sum == 7);
	CHECK(count_kind(&obs, OBS_SCHEDULING, &sum) == 1 && sum == 100);
	obs.n = 0;
	CHECK(timing_pods(&pool, "aks-pool", pods, 3, &lk, &seen, 3, &obs) == 0 && obs.n == 0);
	/* Clocks that disagree give 0, never a negative time. */
	pods[1].agent_began = 1050;
	CHECK(timing_pods(&pool, "aks-pool", pods, 3, &lk, &seen, 4, &obs) == 0);
	CHECK(obs.n == 1 && obs.items[0].kind == OBS_STARTING && obs.items[0].seconds == 0);
	plan_lookup_release(&lk);
	obs_list_release(&obs);
	seen_release(&seen);
}

int
main(void)
{
	test_requests();
	test_pods();
	return check_done();
}
