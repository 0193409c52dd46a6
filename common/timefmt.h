#ifndef PW_TIMEFMT_H
#define PW_TIMEFMT_H

#include <stddef.h>
#include <time.h>

/* Parse an RFC 3339 UTC time ("2026-08-28T16:20:00Z", with 0 to 9
 * fractional digits, or a "+00:00"-style offset).  Return 0 with whole
 * seconds in *t and the fraction in *nanos (may be NULL), or -1. */
int	time_parse(const char *s, time_t *t, long *nanos);

/* Format a Kubernetes MicroTime: exactly six fractional digits and 'Z'
 * ("2025-03-14T12:00:00.000000Z").  out needs 28 bytes. */
void	time_format_micro(time_t t, long nanos, char out[28]);

#endif
