#ifndef PW_BUDGET_H
#define PW_BUDGET_H

#include <stddef.h>

/*
 * The memory all request bodies may hold at once, so the process stays
 * under its container's 64 MiB whatever arrives.  A body is charged on the
 * bytes it has received, never on a declared Content-Length.  Of the total,
 * a share is kept for bodies of at most BUDGET_LARGE_BODY (real pods are a
 * few KiB): a flood of large bodies cannot keep ordinary pods out.  Pure.
 */
#define BUDGET_TOTAL		(24 * 1024 * 1024)
#define BUDGET_SMALL_RESERVE	(4 * 1024 * 1024)
#define BUDGET_LARGE_BODY	(256 * 1024)

struct budget {
	size_t	held;		/* bytes charged to every body together */
};

/* A body that has now received total bytes, of which *charged are charged
 * already: charge the rest.  Return 0, or -1 when they do not fit; the
 * body's whole charge is then given back (*charged is 0) and the caller
 * drops the body. */
int	budget_charge(struct budget *b, size_t *charged, size_t total);

/* A body is done: give back its charge. */
void	budget_return(struct budget *b, size_t *charged);

#endif
