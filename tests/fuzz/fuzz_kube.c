/* Kubernetes answers -> pods, Lease.  Invariants: no crash; every pod kept
 * has a namespace, name, uid and node string. */
#include "../../janitor/kube.h"
#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pod_list l;
	struct lease lease;
	char err[256], *cont = NULL;
	size_t i;

	memset(&l, 0, sizeof(l));
	if (kube_parse_pods(&l, (const char *)data, size, &cont, err, sizeof(err)) == 0)
		for (i = 0; i < l.n; i++)
			FUZZ_ASSERT(l.pods[i].namespace && l.pods[i].name && l.pods[i].uid &&
			    l.pods[i].node);
	free(cont);
	pod_list_release(&l);
	(void)kube_parse_lease((const char *)data, size, &lease, err, sizeof(err));
	return 0;
}
