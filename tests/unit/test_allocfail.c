/*
 * Allocation-failure runs (curl's runtests -t): for every N, fail the Nth
 * allocation of one operation, then check that it failed cleanly (an error
 * return, never a crash) and that every allocation it made was freed.  The
 * wrappers count live allocations exactly: our code is linked with
 * -Wl,--wrap=malloc,... and cJSON is routed to the same wrappers through
 * its hooks.  Covers config_parse, the AdmissionReview path (parse,
 * policy_decide, review_answer) and plan_make.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../common/config.h"
#include "../../common/file.h"
#include "../../janitor/plan.h"
#include "../../webhook/policy.h"
#include "../../webhook/review.h"
#include "check.h"

void	*__real_malloc(size_t);
void	*__real_calloc(size_t, size_t);
void	*__real_realloc(void *, size_t);
void	 __real_free(void *);
char	*__real_strdup(const char *);
void	*__wrap_malloc(size_t);
void	*__wrap_calloc(size_t, size_t);
void	*__wrap_realloc(void *, size_t);
void	 __wrap_free(void *);
char	*__wrap_strdup(const char *);

static long	allocs;		/* allocations made by the operation so far */
static long	fail_at;	/* fail this one (1-based); 0: never */
static long	live;		/* allocations not yet freed */
static int	failed;		/* the planned failure happened */

static int
should_fail(void)
{
	if (++allocs == fail_at) {
		failed = 1;
		return 1;
	}
	return 0;
}

void *
__wrap_malloc(size_t n)
{
	void *p;

	if (should_fail())
		return NULL;
	if ((p = __real_malloc(n)) != NULL)
		live++;
	return p;
}

void *
__wrap_calloc(size_t n, size_t m)
{
	void *p;

	if (should_fail())
		return NULL;
	if ((p = __real_calloc(n, m)) != NULL)
		live++;
	return p;
}

void *
__wrap_realloc(void *old, size_t n)
{
	void *p;

	if (should_fail())
		return NULL;
	if ((p = __real_realloc(old, n)) != NULL && old == NULL)
		live++;
	return p;
}

void
__wrap_free(void *p)
{
	if (p != NULL)
		live--;
	__real_free(p);
}

char *
__wrap_strdup(const char *s)
{
	char *p;

	if (should_fail())
		return NULL;
	if ((p = __real_strdup(s)) != NULL)
		live++;
	return p;
}

static char	*config_text, *review_text;
static size_t	 config_len, review_len;

static int
op_config(void)
{
	char err[512];
	struct config *cfg = config_parse(config_text, config_len, err, sizeof(err));

	if (cfg == NULL)
		return -1;
	config_free(cfg);
	return 0;
}

static struct config *cfg_for_policy;

static int
op_review(void)
{
	struct policy_decision d;
	struct policy_input in;
	struct review rv;
	char err[256], *answer;
	size_t len;
	int rc = -1;

	if (review_parse(review_text, review_len, &rv, err, sizeof(err)) == -1)
		return -1;
	in.operation = rv.operation;
	in.kind = rv.kind;
	in.group = rv.group;
	in.pod = rv.object;
	in.version = "0.1.0";
	if (policy_decide(cfg_for_policy, &in, &d) == 0 &&
	    (answer = review_answer(rv.uid, &d, &len)) != NULL) {
		rc = d.result == POLICY_PATCHED ? 0 : -1;
		free(answer);
	}
	policy_decision_release(&d);
	review_release(&rv);
	return rc;
}

static int
op_plan(void)
{
	static struct agent_info agents[50];
	static struct pod_info pods[40];
	struct janitor_config jc;
	struct pool_agents pool = { "p", agents, 50, 1 };
	struct plan_input in;
	struct plan p;
	size_t i;
	int rc;

	memset(&jc, 0, sizeof(jc));
	jc.max_deletions_per_cycle = 100;
	jc.offline_grace_seconds = 10;
	jc.finished_pod_ttl_seconds = 10;
	jc.stuck_pending_seconds = 10;
	jc.pending_timeout_seconds = 20;
	for (i = 0; i < 50; i++)
		agents[i] = (struct agent_info){ (long long)i, i % 2 ? "a" : "b", 0, 1, 0,
		    1000, 900, 1, i % 3 ? "u1" : NULL, { NULL, NULL, NULL, NULL }, 0, 0 };
	for (i = 0; i < 40; i++)
		pods[i] = (struct pod_info){ "ns", i % 2 ? "a" : "c", i % 2 ? "u1" : "u2",
		    i % 3 ? "n" : "", PHASE_FAILED, 100, 200, 0, 0, 0, 0,
		    i % 2 ? OWNER_JOB : OWNER_NONE, "j", i % 4 ? "ju" : "jv",
		    { NULL, NULL, NULL, NULL }, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0, 0, 0 };
	memset(&in, 0, sizeof(in));
	in.cfg = &jc;
	in.now = 5000;
	in.node = "n";
	in.node_pods = pods;
	in.n_node_pods = 40;
	in.leader = 1;
	in.all_pods = pods;
	in.n_all_pods = 40;
	in.all_pods_complete = 1;
	in.pools = &pool;
	in.npools = 1;
	rc = plan_make(&in, &p);
	if (rc == 0 && p.n == 0)
		rc = -1;
	plan_release(&p);
	return rc;
}

/* Fail each allocation in turn until the operation runs without failing. */
static void
run(const char *name, int (*op)(void), long min_allocs)
{
	long n, leaks = 0, bad = 0;
	int rc;

	for (n = 1; n < 100000; n++) {
		allocs = 0;
		failed = 0;
		fail_at = n;
		live = 0;
		rc = op();
		if (live != 0) {
			leaks++;
			if (getenv("ALLOCFAIL_VERBOSE") != NULL)
				fprintf(stderr, "%s: failing allocation %ld leaks %ld\n", name, n, live);
		}
		if (failed && rc == 0)
			bad++;		/* a lost allocation went unnoticed */
		if (!failed) {
			CHECK(rc == 0);	/* and with no failure it succeeds */
			break;
		}
	}
	fail_at = 0;
	printf("%s: failed each of %ld allocations in turn: %ld leaked, %ld unnoticed\n",
	    name, n - 1, leaks, bad);
	CHECK(n - 1 >= min_allocs);
	CHECK(leaks == 0);
	CHECK(bad == 0);
}

int
main(void)
{
	cJSON_Hooks hooks = { __wrap_malloc, __wrap_free };
	char err[512];

	cJSON_InitHooks(&hooks);
	config_text = file_read("tests/config.json", 1 << 20, &config_len);
	review_text = file_read("tests/fuzz/corpus/review/../../../bad-input/200-number-overflow.bin",
	    1 << 20, &review_len);
	CHECK(config_text != NULL && review_text != NULL);
	if (config_text == NULL || review_text == NULL)
		return check_done();
	cfg_for_policy = config_parse(config_text, config_len, err, sizeof(err));
	run("config_parse", op_config, 50);
	run("review+policy+answer", op_review, 50);
	run("plan_make", op_plan, 3);
	config_free(cfg_for_policy);
	__real_free(config_text);
	__real_free(review_text);
	return check_done();
}
