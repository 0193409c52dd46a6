#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

int
array_grow(void *items, size_t *cap, size_t n, size_t size, size_t first)
{
	void *p, *old;
	size_t ncap;

	if (n < *cap)
		return 0;
	ncap = *cap > 0 ? *cap * 2 : first;
	if (ncap <= n || size == 0 || ncap > SIZE_MAX / size)
		return -1;
	memcpy(&old, items, sizeof(old));
	if ((p = realloc(old, ncap * size)) == NULL)
		return -1;
	memcpy(items, &p, sizeof(p));
	*cap = ncap;
	return 0;
}
