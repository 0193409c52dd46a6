#ifndef PW_LEASE_H
#define PW_LEASE_H

#include <time.h>

#include "kube.h"

/*
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go does
 * it.  lease_decide() is pure: the Lease as read, the wall clock and this
 * replica's own monotonic clock in, the step to take out.
 */

enum lease_step { LEASE_CREATE, LEASE_RENEW, LEASE_TAKE, LEASE_WAIT };

struct elector {
	const char	*identity;	/* this replica: the pod name */
	long long	 duration;	/* leaseDurationSeconds we write */
	int		 observe;	/* long-running: also require an unchanged record */
	int		 leader;
	/* The other holder's record as last seen, and when (monotonic). */
	int		 seen;
	char		 seen_holder[256];
	time_t		 seen_renew;
	long		 seen_renew_ns;
	char		 seen_rv[64];
	double		 seen_at;
};

/* What to do with the Lease cur.  A Lease is free when it has no holder,
 * or its renewTime + leaseDurationSeconds is in the past; with e->observe,
 * only once this replica has also seen it unchanged for that long. */
enum lease_step	lease_decide(struct elector *e, const struct lease *cur, time_t now,
		    double mono);

/* The Lease to write for a step (not LEASE_WAIT). */
void	lease_next(const struct elector *e, enum lease_step step,
	    const struct lease *cur, time_t now, long now_ns, struct lease *out);

#endif
