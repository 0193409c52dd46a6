#include <string.h>

#include "../../common/config.h"
#include "fuzz.h"

/* tests/config.json, kept in step by tests/test_fuzz_config (the replay
 * suite checks they parse to the same behaviour). */
static const char config_text[] =
    "{\"organizationUrl\":\"https://dev.azure.com/contoso\",\"defaultPool\":\"aks-pool\","
    "\"pools\":[\"aks-pool\",\"linux-large\"],\"workDir\":\"_work\","
    "\"identity\":{\"mode\":\"workload-identity\",\"injectToken\":true,"
    "\"clientId\":\"00000000-0000-0000-0000-000000000000\","
    "\"tenantId\":\"00000000-0000-0000-0000-000000000000\",\"patSecret\":\"azp-pat\"},"
    "\"tolerations\":[{\"key\":\"workload\",\"operator\":\"Equal\",\"value\":\"ci\","
    "\"effect\":\"NoSchedule\"}],\"nodeSelector\":{\"kubernetes.io/os\":\"linux\"},"
    "\"defaultProfile\":\"medium\",\"profiles\":{"
    "\"small\":{\"requests\":{\"cpu\":\"500m\",\"memory\":\"1Gi\"},\"limits\":{\"cpu\":\"2\","
    "\"memory\":\"4Gi\"},\"max\":{\"cpu\":\"2\",\"memory\":\"4Gi\"}},"
    "\"medium\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"},\"limits\":{\"cpu\":\"4\","
    "\"memory\":\"8Gi\"},\"max\":{\"cpu\":\"8\",\"memory\":\"16Gi\"}}}}";

const struct config *
fuzz_config(void)
{
	static struct config *cfg;
	char err[256];

	if (cfg == NULL) {
		cfg = config_parse(config_text, strlen(config_text), err, sizeof(err));
		FUZZ_ASSERT(cfg != NULL);
	}
	return cfg;
}
