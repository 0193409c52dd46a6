#ifndef PW_ARENA_H
#define PW_ARENA_H

/*
 * A per-request arena for cJSON: while one is open, cJSON allocates by
 * bumping a pointer and frees nothing; arena_close() forgets it all at
 * once.  cJSON's hooks are process-wide, so this is for the webhook's one
 * event-loop thread only, and every cJSON tree made inside must also be
 * deleted (or abandoned) inside.  Under AddressSanitizer the arena is off,
 * so the sanitizer still sees every cJSON allocation.
 */

/* Start routing cJSON's allocations to the arena. */
void	arena_open(void);

/* Route them back to malloc/free and reset the arena (its first block is
 * kept for the next request; larger ones are freed). */
void	arena_close(void);

/* Free the arena's memory (at exit). */
void	arena_free_all(void);

#endif
