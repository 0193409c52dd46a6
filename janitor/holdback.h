#ifndef PW_HOLDBACK_H
#define PW_HOLDBACK_H

#include <stddef.h>

/*
 * Objects whose delete or patch was refused (403, 422: RBAC, an admission
 * policy, validation), held back from the next attempts for a growing
 * number of cycles: the first refusal skips the next cycle, each further
 * one doubles that, up to max_skip cycles (an hour's worth).  One object's
 * refusal never holds back another.  Pure: the caller numbers the cycles.
 */
struct holdback_entry {
	char		*key;		/* owned: "pod/<uid>", "job/<uid>", ... */
	unsigned long	 until;		/* the first cycle that may try again */
	unsigned long	 skip;		/* cycles skipped after the last refusal */
};

struct holdback {
	struct holdback_entry	*items;	/* owned */
	size_t			 n, cap;
};

/* Whether key is held back in this cycle. */
int	holdback_held(const struct holdback *h, const char *key, unsigned long cycle);

/* Record a refusal of key in this cycle.  Return the cycles it now skips
 * (1, 2, 4, ... at most max_skip), or 0 when out of memory (it is then not
 * held back). */
unsigned long	holdback_refused(struct holdback *h, const char *key, unsigned long cycle,
		    unsigned long max_skip);

/* key was written, or is gone: forget it. */
void	holdback_clear(struct holdback *h, const char *key);

/* Forget objects not tried again for max_skip cycles past their hold (they
 * were deleted meanwhile, or left the janitor's sight). */
void	holdback_prune(struct holdback *h, unsigned long cycle, unsigned long max_skip);

void	holdback_release(struct holdback *h);

#endif
