#ifndef PW_CHECK_H
#define PW_CHECK_H

/*
 * A tiny test harness (redis's testhelp.h): CHECK records a pass or a
 * failure with its line, and check_done() prints "N passed, N failed" and
 * returns the exit status.
 */

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond) do { \
	if (cond) { \
		check_passed++; \
	} else { \
		check_failed++; \
		fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *check_a_ = (a), *check_b_ = (b); \
	if (check_a_ != NULL && check_b_ != NULL && strcmp(check_a_, check_b_) == 0) { \
		check_passed++; \
	} else { \
		check_failed++; \
		fprintf(stderr, "FAIL %s:%d: %s == \"%s\", got \"%s\"\n", __FILE__, \
		    __LINE__, #a, check_b_ ? check_b_ : "(null)", \
		    check_a_ ? check_a_ : "(null)"); \
	} \
} while (0)

static inline int
check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed == 0 ? 0 : 1;
}

#endif
