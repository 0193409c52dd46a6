#ifndef PW_STRPOOL_H
#define PW_STRPOOL_H

#include <stddef.h>

/* Copies of strings kept together and freed together: the compact records
 * the janitor builds from JSON it has already thrown away point here. */
struct strpool {
	char	**items;	/* owned */
	size_t	  n, cap;
};

/* Keep a copy of s; return it, or NULL when out of memory. */
const char	*strpool_add(struct strpool *sp, const char *s);

/* Free every copy; the pool may be used again. */
void		 strpool_release(struct strpool *sp);

#endif
