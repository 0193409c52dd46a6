#ifndef PW_DECISION_H
#define PW_DECISION_H

#include "policy.h"

/* The longest denial or warning message. */
#define MESSAGE_MAX	1024

/* Deny with this HTTP status code (400, 403) and message.  Return 0, or -1
 * when out of memory (the decision is a denial without a message then). */
int	decision_deny(struct policy_decision *d, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Add a warning.  Return 0, or -1 when out of memory. */
int	decision_warn(struct policy_decision *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
