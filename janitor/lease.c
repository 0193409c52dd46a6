#include <stdio.h>
#include <string.h>

#include "lease.h"

enum lease_step
lease_decide(struct elector *e, const struct lease *cur, time_t now, double mono)
{
	int expired;

	if (!cur->exists)
		return LEASE_CREATE;
	if (strcmp(cur->holder, e->identity) == 0)
		return LEASE_RENEW;
	if (cur->holder[0] == '\0')
		return LEASE_TAKE;
	if (!e->seen || strcmp(e->seen_holder, cur->holder) != 0 ||
	    e->seen_renew != cur->renew || e->seen_renew_ns != cur->renew_ns ||
	    strcmp(e->seen_rv, cur->resource_version) != 0) {
		e->seen = 1;
		snprintf(e->seen_holder, sizeof(e->seen_holder), "%s", cur->holder);
		snprintf(e->seen_rv, sizeof(e->seen_rv), "%s", cur->resource_version);
		e->seen_renew = cur->renew;
		e->seen_renew_ns = cur->renew_ns;
		e->seen_at = mono;
	}
	expired = cur->renew + cur->duration < now;
	if (e->observe)
		expired = expired && mono - e->seen_at >= (double)cur->duration;
	return expired ? LEASE_TAKE : LEASE_WAIT;
}

void
lease_next(const struct elector *e, enum lease_step step, const struct lease *cur,
    time_t now, long now_ns, struct lease *out)
{
	*out = *cur;
	out->exists = 1;
	out->renew = now;
	out->renew_ns = now_ns;
	out->duration = e->duration;
	if (step == LEASE_RENEW)
		return;
	snprintf(out->holder, sizeof(out->holder), "%s", e->identity);
	out->acquire = now;
	out->acquire_ns = now_ns;
	if (step == LEASE_CREATE) {
		out->transitions = 0;
		out->resource_version[0] = '\0';
	} else {
		out->transitions = cur->transitions + 1;
	}
}
