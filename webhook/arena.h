#ifndef PW_ARENA_H
#define PW_ARENA_H

#include <stddef.h>

/*
 * A per-request arena for cJSON: while one is open, cJSON allocates by
 * bumping a pointer and frees nothing; arena_close() forgets it all at
 * once.  An arena has a budget: past it an allocation fails (cJSON then
 * fails the parse), so one request's parse never takes more than that,
 * whatever its body holds.  cJSON's hooks are process-wide, so this is for
 * the webhook's one event-loop thread only, and every cJSON tree made
 * inside must also be deleted (or abandoned) inside.  The sanitizer build
 * uses the same arena and budget, with the unused space poisoned.
 */

/* Start routing cJSON's allocations to the arena, at most budget bytes. */
void	arena_open(size_t budget);

/* Whether an allocation failed since arena_open() because of the budget. */
int	arena_exhausted(void);

/* Route them back to malloc/free and reset the arena (its first block is
 * kept for the next request; larger ones are freed). */
void	arena_close(void);

/* Free the arena's memory (at exit). */
void	arena_free_all(void);

#endif
