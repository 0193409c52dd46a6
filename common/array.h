#ifndef PW_ARRAY_H
#define PW_ARRAY_H

#include <stddef.h>

/*
 * Growing an array of n items by one: the one place the janitor's and the
 * webhook's arrays grow.  The capacity changes only once the new block is
 * in hand, so an allocation failure leaves the array exactly as it was.
 */

/* Make room for one more item in *items (n used of *cap, each size bytes),
 * doubling from first.  Return 0, or -1 when out of memory or the size
 * would overflow (*items and *cap are then unchanged). */
int	array_grow(void *items, size_t *cap, size_t n, size_t size, size_t first);

#endif
