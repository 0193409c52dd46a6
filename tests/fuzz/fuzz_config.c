/* Config file text -> config.  Invariants: no crash; a config that parses
 * has a default profile that exists and a default pool ("pools": [] is
 * valid: no pool work); a refused one says why, starting "config: ". */
#include "../../common/config.h"
#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg;
	char err[512];

	cfg = config_parse((const char *)data, size, err, sizeof(err));
	if (cfg != NULL) {
		FUZZ_ASSERT(config_profile(cfg, cfg->default_profile) != NULL);
		FUZZ_ASSERT(cfg->default_pool != NULL && cfg->default_pool[0] != '\0');
	} else {
		FUZZ_ASSERT(strncmp(err, "config: ", 8) == 0);
	}
	config_free(cfg);
	return 0;
}
