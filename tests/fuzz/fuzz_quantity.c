/* Kubernetes quantity text -> value.  Invariants: no crash; a quantity
 * compares equal to itself, and "<q>" equals "<q>" written with a 0 added
 * to its fraction (1.5 == 1.50). */
#include <string.h>

#include "../../common/quantity.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[128], t[130];
	struct quantity a, b;
	const char *dot;

	if (size >= sizeof(s))
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (quantity_parse(s, &a) != 0)
		return 0;
	FUZZ_ASSERT(quantity_cmp(&a, &a) == 0);
	if ((dot = strchr(s, '.')) != NULL) {
		size_t i = (size_t)(dot - s) + 1;
		while (s[i] >= '0' && s[i] <= '9')
			i++;
		snprintf(t, sizeof(t), "%.*s0%s", (int)i, s, s + i);
		if (quantity_parse(t, &b) == 0)
			FUZZ_ASSERT(quantity_cmp(&a, &b) == 0);
	}
	return 0;
}
