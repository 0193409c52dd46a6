#include "../../common/quantity.h"
#include "check.h"

static int
cmp(const char *a, const char *b)
{
	struct quantity qa, qb;

	if (quantity_parse(a, &qa) == -1 || quantity_parse(b, &qb) == -1)
		return 99;
	return quantity_cmp(&qa, &qb);
}

static int
valid(const char *s)
{
	struct quantity q;

	return quantity_parse(s, &q) == 0;
}

int
main(void)
{
	static const char *const good[] = { "0", "1", "1500m", "1.5", ".5", "5.",
	    "1Gi", "1024Mi", "1e3", "1E3", "1e-3", "500k", "2M", "+1", "-1",
	    "100n", "3u", "1Ei", "1E", "0.0001m", "1.25Gi", "12e+2", NULL };
	static const char *const bad[] = { "", "m", "1x", "1.2.3", "Gi", "1 Gi",
	    "1gi", "1KI", "e3", "1e", "1e+", "--1", "1Gii", "0x10", " 1", "1e3m",
	    "1e1001", "9999999999999999999999999999999999Ei", NULL };
	size_t i;

	for (i = 0; good[i] != NULL; i++) {
		if (!valid(good[i]))
			fprintf(stderr, "expected valid: '%s'\n", good[i]);
		CHECK(valid(good[i]));
	}
	for (i = 0; bad[i] != NULL; i++) {
		if (valid(bad[i]))
			fprintf(stderr, "expected invalid: '%s'\n", bad[i]);
		CHECK(!valid(bad[i]));
	}
	/* Equal values in different spellings. */
	CHECK(cmp("1500m", "1.5") == 0);
	CHECK(cmp("1Gi", "1024Mi") == 0);
	CHECK(cmp("1e3", "1k") == 0);
	CHECK(cmp("1000", "1k") == 0);
	CHECK(cmp("1Ki", "1024") == 0);
	CHECK(cmp("0.5", "500m") == 0);
	CHECK(cmp("1e-3", "1m") == 0);
	CHECK(cmp("12e+2", "1.2k") == 0);
	CHECK(cmp("1E", "1e18") == 0);
	CHECK(cmp("0", "0m") == 0);
	/* Order, including near misses that floating point would blur. */
	CHECK(cmp("1001m", "1") > 0);
	CHECK(cmp("999m", "1") < 0);
	CHECK(cmp("1G", "1Gi") < 0);
	CHECK(cmp("8Gi", "8589934592") == 0);
	CHECK(cmp("8589934593", "8Gi") > 0);
	CHECK(cmp("16Gi", "17179869184") == 0);
	CHECK(cmp("-1", "0") < 0);
	CHECK(cmp("1n", "0") > 0);
	CHECK(cmp("1Ei", "1152921504606846976") == 0);
	CHECK(cmp("1152921504606846977", "1Ei") > 0);
	/* A fraction finer than a nano-unit rounds up, as Kubernetes does. */
	CHECK(cmp("0.1n", "1n") == 0);
	CHECK(cmp("1.0000000001", "1.000000001") == 0);
	return check_done();
}
