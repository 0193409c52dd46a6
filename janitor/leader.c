/*
 * Leader election on the Lease, and what losing it drops.
 */
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "janitor.h"

/* Forget what every pool's pods ran: a leader that comes back starts anew. */
void
leader_forget(struct pod_list *seen, size_t npools)
{
	size_t i;

	for (i = 0; seen != NULL && i < npools; i++)
		pod_list_release(&seen[i]);
}

/* No longer the leader: the pool gauges and what the leader remembered are
 * the leader's only. */
void
leader_lose(struct janitor *j)
{
	j->elector.leader = 0;
	metrics_set(j->m_is_leader, 0);
	metrics_clear(j->m_agents);
	metrics_clear(j->m_agents_retired);
	metrics_clear(j->m_job_wait);
	metrics_clear(j->m_job_duration);
	metrics_clear(j->m_pod_startup);
	metrics_clear(j->m_jobs_queued);
	metrics_clear(j->m_oldest_queued);
	metrics_clear(j->m_pipeline_cpu);
	metrics_clear(j->m_pipeline_memory);
	metrics_clear(j->m_jobs_without_pod);
	seen_release(&j->timing_seen);
	leader_forget(j->seen, j->cfg->npools);
}

/* Take or keep the Lease.  Return 1 when leader, 0 when not, -1 on error. */
int
leader_elect(struct janitor *j, char *err, size_t errlen)
{
	struct lease cur, next;
	struct timespec ts;
	enum lease_step step;
	int rc;

	if (kube_get_lease(&j->kube, j->cfg->janitor.lease_name, &cur, err, errlen) == -1)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	step = lease_decide(&j->elector, &cur, ts.tv_sec, mono());
	if (step == LEASE_WAIT)
		return 0;
	if (j->opts->dry_run) {	/* no write of any kind */
		j->renewed_at = mono();
		return 1;
	}
	lease_next(&j->elector, step, &cur, ts.tv_sec, ts.tv_nsec, &next);
	rc = kube_put_lease(&j->kube, j->cfg->janitor.lease_name, &next, err, errlen);
	if (rc == -1)
		return -1;
	if (rc == 0 && step != LEASE_RENEW)
		log_info("became the leader: pool work is mine", "lease",
		    j->cfg->janitor.lease_name, "identity", j->opts->identity, NULL);
	if (rc == 0)
		j->renewed_at = mono();
	return rc == 0;
}

void
leader_release(struct janitor *j)
{
	struct lease cur, next;
	struct timespec ts;
	char err[512];

	if (!j->elector.leader || j->opts->dry_run)
		return;
	if (kube_get_lease(&j->kube, j->cfg->janitor.lease_name, &cur, err, sizeof(err)) == -1 ||
	    !cur.exists || strcmp(cur.holder, j->opts->identity) != 0)
		return;
	/* What client-go writes on release: no holder, a 1 s duration. */
	clock_gettime(CLOCK_REALTIME, &ts);
	next = cur;
	next.holder[0] = '\0';
	next.duration = 1;
	next.renew = ts.tv_sec;
	next.renew_ns = ts.tv_nsec;
	if (kube_put_lease(&j->kube, j->cfg->janitor.lease_name, &next, err, sizeof(err)) == 0)
		log_info("released the lease", "lease", j->cfg->janitor.lease_name, NULL);
	leader_lose(j);
}

/* Write the Lease (renew or take).  On failure every remaining leader-only
 * deletion of the cycle is held: another replica may lead by now. */
int
leader_renew(struct janitor *j, struct cycle *c)
{
	char err[512];
	int rc;

	if (j->lease_lost)
		return 0;
	if ((rc = leader_elect(j, err, sizeof(err))) == 1)
		return 1;
	if (rc == -1) {
		log_error("renewing the lease failed: no more pool work this cycle", "lease",
		    j->cfg->janitor.lease_name, "error", err, NULL);
		c->failed = 1;
	} else {
		log_warn("lost the lease: no more pool work this cycle", "lease",
		    j->cfg->janitor.lease_name, NULL);
	}
	j->lease_lost = 1;
	leader_lose(j);
	return 0;
}

/*
 * Whether a leader-only write may start now: the Lease is held and its last
 * renewal is at most half the Lease ago.  A cycle renews right before each
 * leader phase and ends half a Lease after its start, so a stale renewal
 * cannot occur inside one; should it, the write is held (never renewed
 * here: losing the Lease drops what the leader remembers, which a phase may
 * be reading).
 */
int
leader_may_act(struct janitor *j, struct cycle *c)
{
	(void)c;
	return !j->lease_lost && mono() - j->renewed_at <= (double)j->elector.duration / 2;
}
