/* Azure DevOps answers -> agents, one agent, pool id, job requests.
 * Invariants: no crash; every agent has a name; a pool id is found only for
 * the name asked (without regard to case), its spelling copied whole; the
 * timing of any parsed job requests never observes a negative time. */
#include <strings.h>

#include "../../janitor/ado.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_list l;
	struct request_list reqs;
	struct seen_set seen = { NULL, 0, 0 };
	struct obs_list obs = { NULL, 0, 0 };
	char err[256], spelled[256];
	size_t i, queued;
	double oldest;

	if (ado_parse_agents((const char *)data, size, &l, err, sizeof(err)) == 0) {
		for (i = 0; i < l.n; i++)
			FUZZ_ASSERT(l.agents[i].name != NULL);
		agent_list_release(&l);
	}
	if (ado_parse_agent((const char *)data, size, &l, err, sizeof(err)) == 0) {
		FUZZ_ASSERT(l.n == 1 && l.agents[0].name != NULL);
		agent_list_release(&l);
	}
	if (ado_parse_pool_id((const char *)data, size, "aks-pool", spelled, sizeof(spelled), err,
	    sizeof(err)) != -1)
		FUZZ_ASSERT(strcasecmp(spelled, "aks-pool") == 0);
	if (ado_parse_job_requests((const char *)data, size, &reqs, err, sizeof(err)) == 0) {
		if (timing_requests(&reqs, &seen, 1, &obs) == 0)
			for (i = 0; i < obs.n; i++)
				FUZZ_ASSERT(obs.items[i].seconds >= 0);
		timing_queue(&reqs, 1796551200, &queued, &oldest);
		FUZZ_ASSERT(queued <= reqs.n && oldest >= 0);
		obs_list_release(&obs);
		seen_release(&seen);
		request_list_release(&reqs);
	}
	return 0;
}
