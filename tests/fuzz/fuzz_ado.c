/* Azure DevOps answers -> agents, pool id.  Invariants: no crash; every
 * agent has a name; a pool id is found only for the name asked. */
#include "../../janitor/ado.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_list l;
	char err[256];
	size_t i;

	if (ado_parse_agents((const char *)data, size, &l, err, sizeof(err)) == 0) {
		for (i = 0; i < l.n; i++)
			FUZZ_ASSERT(l.agents[i].name != NULL);
		agent_list_release(&l);
	}
	(void)ado_parse_pool_id((const char *)data, size, "aks-pool", err, sizeof(err));
	return 0;
}
