#ifndef PW_FUZZ_H
#define PW_FUZZ_H

/*
 * Shared by the fuzz harnesses.  Each harness defines
 * LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer for
 * `make fuzz`, or with replay.c (a main that feeds it files) so that
 * `make test` replays the corpora deterministically.  An invariant that
 * does not hold aborts, which both libFuzzer and the replay report.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
		abort(); \
	} \
} while (0)

int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The test config (tests/config.json's content), parsed once. */
struct config;
const struct config	*fuzz_config(void);

#endif
