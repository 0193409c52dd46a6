/* Azure DevOps answers -> agents, one agent, pool id.  Invariants: no
 * crash; every agent has a name; a pool id is found only for the name asked
 * (without regard to case), its spelling copied whole. */
#include <strings.h>

#include "../../janitor/ado.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_list l;
	char err[256], spelled[256];
	size_t i;

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
	return 0;
}
