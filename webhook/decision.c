/*
 * What a decision says to the pod's author: a denial's message, warnings.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "decision.h"

int
decision_deny(struct policy_decision *d, int code, const char *fmt, ...)
{
	va_list ap;

	d->result = POLICY_DENIED;
	d->code = code;
	if ((d->message = malloc(MESSAGE_MAX)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(d->message, MESSAGE_MAX, fmt, ap);
	va_end(ap);
	return 0;
}


int
decision_warn(struct policy_decision *d, const char *fmt, ...)
{
	char **w;
	va_list ap;

	if ((w = realloc(d->warnings, (d->nwarnings + 1) * sizeof(*w))) == NULL)
		return -1;
	d->warnings = w;
	if ((w[d->nwarnings] = malloc(MESSAGE_MAX)) == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(w[d->nwarnings], MESSAGE_MAX, fmt, ap);
	va_end(ap);
	d->nwarnings++;
	return 0;
}
