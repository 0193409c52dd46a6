#include <stdio.h>
#include <stdlib.h>

#include "../../common/config.h"
#include "check.h"

#define BASE "\"organizationUrl\":\"https://dev.azure.com/contoso\"," \
	"\"defaultPool\":\"aks-pool\"," \
	"\"profiles\":{\"medium\":{\"requests\":{\"cpu\":\"1\"}," \
	"\"limits\":{\"cpu\":\"4\"},\"max\":{\"cpu\":\"8\"}}}"

/* Each bad config and the words its error must carry (the key, the fix). */
static const struct {
	const char	*json;
	const char	*words;
} bad[] = {
	{ "", "not a JSON object" },
	{ "[]", "not a JSON object" },
	{ "{" BASE ",\"extra\":1}", "unknown key 'extra'" },
	{ "{" BASE ",\"janitor\":{\"intervalSecond\":5}}", "unknown key 'janitor.intervalSecond'" },
	{ "{\"defaultPool\":\"p\",\"profiles\":{\"m\":{}}}", "'organizationUrl': required" },
	{ "{" BASE ",\"organizationUrl\":\"dev.azure.com\"}", "duplicate key 'organizationUrl'" },
	{ "{\"organizationUrl\":\"dev.azure.com\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{}}}", "'organizationUrl': 'dev.azure.com' must be an https:// URL" },
	{ "{\"organizationUrl\":\"http://dev.azure.com/contoso\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{}}}", "must be an https:// URL (a PAT must never travel in clear)" },
	{ "{\"organizationUrl\":\"https://\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{}}}", "'organizationUrl': 'https://' must be an https:// URL" },
	{ "{\"organizationUrl\":\"https://x\",\"profiles\":{\"m\":{}}}", "'defaultPool': required" },
	{ "{" BASE ",\"workDir\":5}", "'workDir': expected a string" },
	{ "{" BASE ",\"safeToEvict\":\"no\"}", "'safeToEvict': expected true or false" },
	{ "{" BASE ",\"pools\":[\"a\",\"\"]}", "'pools[1]'" },
	{ "{" BASE ",\"identity\":{\"mode\":\"msi\"}}", "'identity.mode': unknown mode 'msi'" },
	{ "{" BASE ",\"identity\":{\"mode\":\"pat\"}}", "'identity.patSecret': required" },
	{ "{" BASE ",\"identity\":{\"clientId\":\"abc\"}}", "'identity.clientId'" },
	{ "{" BASE ",\"identity\":{\"patSecret\":\"Bad_Name\"}}", "'identity.patSecret'" },
	{ "{" BASE ",\"identity\":{\"authorityHost\":\"http://x/\"}}", "'identity.authorityHost'" },
	{ "{" BASE ",\"tolerations\":[{\"key\":\"a\",\"operator\":\"In\"}]}", "'tolerations[0].operator'" },
	{ "{" BASE ",\"tolerations\":[{\"key\":\"a\",\"effect\":\"Never\"}]}", "'tolerations[0].effect'" },
	{ "{" BASE ",\"tolerations\":[{\"key\":\"a\",\"tolerations\":1}]}", "unknown key 'tolerations[0].tolerations'" },
	{ "{" BASE ",\"tolerations\":[{\"key\":\"a\"},{\"key\":\"a\"}]}", "'tolerations[1]': repeats tolerations[0]" },
	{ "{" BASE ",\"tolerations\":[{\"key\":\"a\",\"tolerationSeconds\":5}]}", "only valid with effect NoExecute" },
	{ "{" BASE ",\"nodeSelector\":{\"a\":1}}", "'nodeSelector.a'" },
	{ "{" BASE ",\"defaultProfile\":\"huge\"}", "'defaultProfile': no profile 'huge'" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\"}", "'profiles': required" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{\"requests\":{\"cpu\":\"lots\"}}}}", "'profiles.m.requests.cpu'" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{\"requests\":{\"cpu\":\"2\"},\"limits\":{\"cpu\":\"1\"}}}}", "'profiles.m.requests.cpu': 2 is above limits.cpu 1" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{\"limits\":{\"memory\":\"9Gi\"},\"max\":{\"memory\":\"8Gi\"}}}}", "'profiles.m.limits.memory'" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"m\":{\"size\":{}}}}", "unknown key 'profiles.m.size'" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"a\":{},\"b\":{}}}", "'defaultProfile': required" },
	{ "{" BASE ",\"janitor\":{\"intervalSeconds\":0}}", "'janitor.intervalSeconds'" },
	{ "{" BASE ",\"janitor\":{\"maxDeletionsPerCycle\":1.5}}", "'janitor.maxDeletionsPerCycle'" },
	{ "{" BASE ",\"janitor\":{\"keepAgents\":[3]}}", "'janitor.keepAgents[0]'" },
	{ "{" BASE ",\"janitor\":{\"leaseName\":\"Not A Name\"}}", "'janitor.leaseName'" },
	{ "{" BASE ",\"janitor\":{\"apiVersion\":\"latest\"}}", "'janitor.apiVersion': 'latest' is not" },
	{ "{" BASE ",\"janitor\":{\"apiVersion\":\"7\"}}", "'janitor.apiVersion'" },
	{ "{" BASE ",\"janitor\":{\"apiVersion\":7.1}}", "'janitor.apiVersion': expected a string" },
	{ "{" BASE ",\"janitor\":{\"idleAgentSeconds\":-1}}", "'janitor.idleAgentSeconds'" },
	{ "{" BASE ",\"janitor\":{\"drainTaints\":[\"\"]}}", "'janitor.drainTaints[0]'" },
	{ "{" BASE ",\"janitor\":{\"stuckPendingSeconds\":900,\"pendingTimeoutSeconds\":600}}", "'janitor.pendingTimeoutSeconds': 600 is shorter" },
	{ "{" BASE ",\"janitor\":{\"maxPatchesPerCycle\":-1}}", "'janitor.maxPatchesPerCycle'" },
	{ "{" BASE ",\"janitor\":{\"identity\":{\"clientId\":\"x\"}}}", "'janitor.identity.clientId': 'x' is not a GUID" },
	{ "{" BASE ",\"janitor\":{\"identity\":{\"tenant\":\"x\"}}}", "unknown key 'janitor.identity.tenant'" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"gpu\":{\"requests\":{\"nvidia.com/gpu\":\"1\"}}}}", "'profiles.gpu.requests.nvidia.com/gpu': Kubernetes needs a limit for nvidia.com/gpu equal to the request" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"gpu\":{\"requests\":{\"nvidia.com/gpu\":\"1\"},\"limits\":{\"nvidia.com/gpu\":\"2\"}}}}", "'profiles.gpu.requests.nvidia.com/gpu': 1 must equal limits.nvidia.com/gpu (2)" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"h\":{\"requests\":{\"hugepages-2Mi\":\"64Mi\",\"memory\":\"1Gi\"},\"limits\":{\"hugepages-2Mi\":\"128Mi\"}}}}", "'profiles.h.requests.hugepages-2Mi': 64Mi must equal" },
	{ "{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"h\":{\"limits\":{\"hugepages-1Gi\":\"2Gi\"}}}}", "'profiles.h': hugepages need a cpu or memory" },
	{ "{" BASE ",\"identity\":{\"clientId\":\"11111111-0000-4000-8000-000000000001\"},\"janitor\":{\"identity\":{\"clientId\":\"11111111-0000-4000-8000-000000000001\"}}}", "give the janitor its own identity" },
};

int
main(void)
{
	struct config *cfg;
	char err[512];
	size_t i;
	char *text;
	size_t len;
	FILE *f;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = config_parse(bad[i].json, strlen(bad[i].json), err, sizeof(err));
		CHECK(cfg == NULL);
		if (strstr(err, bad[i].words) == NULL)
			fprintf(stderr, "case %zu: '%s' lacks '%s'\n", i, err, bad[i].words);
		CHECK(strstr(err, bad[i].words) != NULL);
		config_free(cfg);
	}

	/* Extended resources and hugepages with request equal to limit, a
	 * limit alone, or kubernetes.io-domain names (overcommittable) pass. */
	{
		static const char *const good[] = {
			"{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"g\":{\"requests\":{\"nvidia.com/gpu\":\"1\",\"cpu\":\"1\"},\"limits\":{\"nvidia.com/gpu\":\"1\",\"cpu\":\"2\"}}}}",
			"{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"g\":{\"limits\":{\"nvidia.com/gpu\":\"2\"}}}}",
			"{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"h\":{\"requests\":{\"hugepages-2Mi\":\"64Mi\",\"memory\":\"1Gi\"},\"limits\":{\"hugepages-2Mi\":\"64Mi\"}}}}",
			"{\"organizationUrl\":\"https://x\",\"defaultPool\":\"p\",\"profiles\":{\"e\":{\"requests\":{\"ephemeral-storage\":\"1Gi\"},\"limits\":{\"ephemeral-storage\":\"4Gi\"}}}}",
		};
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			cfg = config_parse(good[i], strlen(good[i]), err, sizeof(err));
			if (cfg == NULL)
				fprintf(stderr, "good case %zu: %s\n", i, err);
			CHECK(cfg != NULL);
			config_free(cfg);
		}
	}

	/* Defaults fill every key a minimal config leaves out. */
	cfg = config_parse("{" BASE "}", strlen("{" BASE "}"), err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_STR(cfg->work_dir, "_work");
		CHECK(cfg->deny_plaintext_token == 1);
		CHECK(cfg->safe_to_evict == 0);
		CHECK(cfg->identity_mode == IDENTITY_WORKLOAD);
		CHECK(cfg->inject_token == 1);
		CHECK_STR(cfg->authority_host, "https://login.microsoftonline.com/");
		CHECK(cfg->npools == 1);
		CHECK_STR(cfg->pools[0], "aks-pool");
		CHECK_STR(cfg->default_profile, "medium");
		CHECK(cfg->janitor.interval_seconds == 60);
		CHECK(cfg->janitor.offline_grace_seconds == 600);
		CHECK(cfg->janitor.finished_pod_ttl_seconds == 300);
		CHECK(cfg->janitor.stuck_pending_seconds == 900);
		CHECK(cfg->janitor.max_deletions_per_cycle == 50);
		CHECK(cfg->janitor.only_managed_agents == 1);
		CHECK(cfg->janitor.nkeep_agents == 1);
		CHECK_STR(cfg->janitor.keep_agents[0], "keda-placeholder*");
		CHECK_STR(cfg->janitor.lease_name, "pipewarden-janitor");
		CHECK(cfg->janitor.pending_timeout_seconds == 3600);
		CHECK(cfg->janitor.max_patches_per_cycle == 200);
		CHECK_STR(cfg->janitor.client_id, "");
		CHECK_STR(cfg->janitor.tenant_id, "");
		CHECK_STR(cfg->janitor.api_version, "7.1");
		CHECK(cfg->janitor.idle_agent_seconds == 1800);
		CHECK(cfg->janitor.registration_timeout_seconds == 600);
		CHECK(cfg->janitor.ndrain_taints == 3 &&
		    strcmp(cfg->janitor.drain_taints[1], "karpenter.sh/disrupted") == 0);
	}
	config_free(cfg);

	/* Azure DevOps Server: an older api-version, and a PAT (workload
	 * identity is a Services feature). */
	text = "{\"organizationUrl\":\"https://ado.contoso.local/DefaultCollection\","
	    "\"defaultPool\":\"p\",\"profiles\":{\"m\":{}},"
	    "\"janitor\":{\"apiVersion\":\"7.0\"}}";
	cfg = config_parse(text, strlen(text), err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg != NULL) {
		CHECK_STR(cfg->janitor.api_version, "7.0");
		CHECK(config_janitor_auth(cfg, 1, err, sizeof(err)) == 0);
		CHECK(config_janitor_auth(cfg, 0, err, sizeof(err)) == -1 &&
		    strstr(err, "'organizationUrl'") != NULL && strstr(err, "PAT") != NULL);
	}
	config_free(cfg);
	{
		static const char *const services[] = { "https://dev.azure.com/contoso",
		    "https://contoso.visualstudio.com", "https://Contoso.VisualStudio.com/x" };
		static const char *const others[] = { "https://dev.azure.com.evil.example/x",
		    "https://visualstudio.com", "https://tfs.contoso.com/tfs" };
		struct config c;
		size_t k;

		memset(&c, 0, sizeof(c));
		for (k = 0; k < 3; k++) {
			c.organization_url = (char *)services[k];
			CHECK(config_janitor_auth(&c, 0, err, sizeof(err)) == 0);
			c.organization_url = (char *)others[k];
			CHECK(config_janitor_auth(&c, 0, err, sizeof(err)) == -1);
		}
	}

	/* A trailing '/' is dropped: request paths never start with "//". */
	text = "{\"organizationUrl\":\"https://dev.azure.com/contoso//\",\"defaultPool\":\"p\","
	    "\"profiles\":{\"m\":{}}}";
	cfg = config_parse(text, strlen(text), err, sizeof(err));
	CHECK(cfg != NULL);
	if (cfg != NULL)
		CHECK_STR(cfg->organization_url, "https://dev.azure.com/contoso");
	config_free(cfg);

	/* The project's test config (DESIGN's example plus a second profile). */
	if ((f = fopen("tests/config.json", "r")) != NULL) {
		text = malloc(65536);
		len = fread(text, 1, 65535, f);
		fclose(f);
		cfg = config_parse(text, len, err, sizeof(err));
		CHECK(cfg != NULL);
		if (cfg != NULL) {
			CHECK(cfg->ntolerations == 1);
			CHECK_STR(cfg->tolerations[0].effect, "NoSchedule");
			CHECK(cfg->nprofiles == 2);
			CHECK(config_profile(cfg, "small") != NULL);
			CHECK(config_has_pool(cfg, "linux-large"));
			CHECK(!config_has_pool(cfg, "other"));
		}
		config_free(cfg);
		free(text);
	} else {
		CHECK(!"tests/config.json readable (run from the project root)");
	}
	CHECK(config_load("/nonexistent/config.json", err, sizeof(err)) == NULL);
	CHECK(strstr(err, "cannot read '/nonexistent/config.json'") != NULL);
	return check_done();
}
