/*
 * Table-driven tests of the mutation policy with plain data: a pod in,
 * the decision out.  The golden cases in tests/cases/ go further (they
 * apply every patch as kube-apiserver does and validate the pod).
 */
#include <stdio.h>
#include <stdlib.h>

#include "../../common/buf.h"
#include "../../common/config.h"
#include "../../common/file.h"
#include "../../webhook/policy.h"
#include "../../webhook/review.h"
#include "check.h"

#define OPTIN	"\"annotations\":{\"pipewarden.io/inject\":\"true\""
#define AGENT	"{\"name\":\"agent\",\"image\":\"azp\",\"resources\":{}}"
#define POD(meta, spec) "{\"metadata\":{" meta "},\"spec\":{" spec "}}"

static const struct policy_case {
	const char	*name;
	const char	*pod;
	const char	*op;		/* default CREATE */
	enum policy_result result;
	int		 code;
	const char	*has[6];	/* in the patch, or the message */
	const char	*lacks[4];	/* not in the patch */
	const char	*warning;
} cases[] = {
	{ "no opt-in", POD("\"name\":\"p\"", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_UNCHANGED, 0, { NULL }, { NULL }, NULL },
	{ "opt-out wins over a label opt-in",
	  POD("\"labels\":{\"pipewarden.io/inject\":\"true\"},\"annotations\":{\"pipewarden.io/inject\":\"false\"}",
	  "\"containers\":[" AGENT "]"),
	  NULL, POLICY_UNCHANGED, 0, { NULL }, { NULL }, NULL },
	{ "odd opt-in value warns, injects nothing",
	  POD("\"annotations\":{\"pipewarden.io/inject\":\"yes\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_UNCHANGED, 0, { NULL }, { NULL }, "neither \"true\" nor \"false\"" },
	{ "UPDATE is left alone", POD(OPTIN "}", "\"containers\":[" AGENT "]"),
	  "UPDATE", POLICY_UNCHANGED, 0, { NULL }, { NULL }, NULL },
	{ "opt-in by label, no annotations map: the map is added whole",
	  POD("\"labels\":{\"pipewarden.io/inject\":\"true\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0,
	  { "{\"op\":\"add\",\"path\":\"/metadata/annotations\",\"value\":{\"pipewarden.io/injected\":\"0.1.0\"",
	    "\"path\":\"/metadata/labels/pipewarden.io~1managed\"" }, { NULL }, NULL },
	{ "no labels, no env, no volumes, no tolerations: parents added first",
	  POD(OPTIN "}", "\"containers\":[" AGENT "]"), NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/metadata/labels\",\"value\":{\"pipewarden.io/managed\":\"true\"",
	    "\"path\":\"/spec/containers/0/env\",\"value\":[",
	    "\"path\":\"/spec/volumes\",\"value\":[{\"name\":\"azure-identity-token\"",
	    "\"path\":\"/spec/tolerations\",\"value\":[{\"key\":\"workload\"",
	    "\"path\":\"/spec/containers/0/volumeMounts\",\"value\":[" },
	  { "/-\"" }, NULL },
	{ "no resources key at all",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\"}]"), NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/spec/containers/0/resources\",\"value\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"},\"limits\":{\"cpu\":\"4\",\"memory\":\"8Gi\"}}" },
	  { NULL }, NULL },
	{ "an empty resources object (as kube-apiserver sends it) is replaced in one op",
	  POD(OPTIN "}", "\"containers\":[" AGENT "]"), NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/spec/containers/0/resources\",\"value\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"2Gi\"},\"limits\":{\"cpu\":\"4\",\"memory\":\"8Gi\"}}" },
	  { "/resources/requests\"", "/resources/limits\"" }, NULL },
	{ "resources with claims: requests and limits added beside them",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"claims\":[{\"name\":\"gpu\"}]}}]"),
	  NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/spec/containers/0/resources/requests\",\"value\":{\"cpu\":\"1\"",
	    "\"path\":\"/spec/containers/0/resources/limits\",\"value\":{\"cpu\":\"4\"" },
	  { "\"path\":\"/spec/containers/0/resources\",", NULL }, NULL },
	{ "the token lifetime and an Equal operator are left to their defaults",
	  POD(OPTIN "}", "\"containers\":[" AGENT "]"), NULL, POLICY_PATCHED, 0,
	  { "{\"key\":\"workload\",\"value\":\"ci\",\"effect\":\"NoSchedule\"}",
	    "\"audience\":\"api://AzureADTokenExchange\",\"path\":\"azure-identity-token\"" },
	  { "expirationSeconds", "\"operator\":\"Equal\"" }, NULL },
	{ "the agent container is 'agent', not the first",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"log\"}," AGENT "]"), NULL, POLICY_PATCHED, 0,
	  { "/spec/containers/1/env" }, { "/spec/containers/0/" }, NULL },
	{ "else the first container",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"runner\"},{\"name\":\"log\"}]"), NULL, POLICY_PATCHED, 0,
	  { "/spec/containers/0/env" }, { "/spec/containers/1/" }, NULL },
	{ "pipewarden.io/container names it",
	  POD(OPTIN ",\"pipewarden.io/container\":\"log\"}", "\"containers\":[" AGENT ",{\"name\":\"log\"}]"),
	  NULL, POLICY_PATCHED, 0, { "/spec/containers/1/env" }, { "/spec/containers/0/" }, NULL },
	{ "pipewarden.io/container names a container the pod lacks",
	  POD(OPTIN ",\"pipewarden.io/container\":\"runner\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_DENIED, 400,
	  { "annotation 'pipewarden.io/container': no container 'runner' in the pod (containers: agent)" }, { NULL }, NULL },
	{ "unknown profile",
	  POD(OPTIN ",\"pipewarden.io/profile\":\"huge\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_DENIED, 400,
	  { "annotation 'pipewarden.io/profile': unknown profile 'huge' (known: small, medium)" }, { NULL }, NULL },
	{ "unknown identity mode",
	  POD(OPTIN ",\"pipewarden.io/identity\":\"msi\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_DENIED, 400, { "'pipewarden.io/identity': unknown mode 'msi'" }, { NULL }, NULL },
	{ "empty pool",
	  POD(OPTIN ",\"pipewarden.io/pool\":\"\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_DENIED, 400, { "'pipewarden.io/pool': empty pool name" }, { NULL }, NULL },
	{ "no containers", POD(OPTIN "}", "\"containers\":[]"),
	  NULL, POLICY_DENIED, 400, { "no containers" }, { NULL }, NULL },
	{ "literal AZP_TOKEN in an init container; the value is never repeated",
	  POD(OPTIN "}", "\"initContainers\":[{\"name\":\"setup\",\"env\":[{\"name\":\"AZP_TOKEN\",\"value\":\"SECRETPAT123\"}]}],\"containers\":[" AGENT "]"),
	  NULL, POLICY_DENIED, 403, { "init container \"setup\" sets AZP_TOKEN as a literal value" },
	  { "SECRETPAT123" }, NULL },
	{ "AZP_TOKEN from a secretKeyRef is fine",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"env\":[{\"name\":\"AZP_TOKEN\",\"valueFrom\":{\"secretKeyRef\":{\"name\":\"s\",\"key\":\"k\"}}}]}]"),
	  NULL, POLICY_PATCHED, 0, { "/spec/containers/0/env/-" }, { NULL }, NULL },
	{ "env the pod sets is never overwritten",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"env\":[{\"name\":\"AZP_POOL\",\"value\":\"mine\"},{\"name\":\"AZP_URL\",\"value\":\"https://x\"}]}]"),
	  NULL, POLICY_PATCHED, 0, { "\"path\":\"/spec/containers/0/env/-\",\"value\":{\"name\":\"AZP_AGENT_NAME\"" },
	  { "\"name\":\"AZP_POOL\"", "\"name\":\"AZP_URL\"" }, NULL },
	{ "the Azure webhook ran first: identity wiring left as it is",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"env\":[{\"name\":\"AZURE_FEDERATED_TOKEN_FILE\",\"value\":\"/var/run/secrets/azure/wi/token/azure-identity-token\"}]}]"),
	  NULL, POLICY_PATCHED, 0, { "\"azure.workload.identity/use\":\"true\"" },
	  { "AZURE_CLIENT_ID", "azure-identity-token\"", "/spec/volumes" }, NULL },
	{ "pat mode: secret volume and token file, no workload-identity label",
	  POD(OPTIN ",\"pipewarden.io/identity\":\"pat\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0,
	  { "{\"name\":\"AZP_TOKEN_FILE\",\"value\":\"/var/run/secrets/azp/token\"}",
	    "\"secret\":{\"secretName\":\"azp-pat\",\"items\":[{\"key\":\"token\",\"path\":\"token\"}]}",
	    "{\"name\":\"azp-token\",\"readOnly\":true,\"mountPath\":\"/var/run/secrets/azp\"}" },
	  { "azure.workload.identity", "AZURE_" }, NULL },
	{ "none mode: no identity at all",
	  POD(OPTIN ",\"pipewarden.io/identity\":\"none\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0, { "AZP_URL" }, { "azure.workload", "AZURE_", "AZP_TOKEN_FILE" }, NULL },
	{ "the toleration is not added twice",
	  POD(OPTIN "}", "\"containers\":[" AGENT "],\"tolerations\":[{\"key\":\"workload\",\"operator\":\"Equal\",\"value\":\"ci\",\"effect\":\"NoSchedule\"}]"),
	  NULL, POLICY_PATCHED, 0, { NULL }, { "tolerations" }, NULL },
	{ "a toleration with the default operator is the same toleration",
	  POD(OPTIN "}", "\"containers\":[" AGENT "],\"tolerations\":[{\"key\":\"workload\",\"value\":\"ci\",\"effect\":\"NoSchedule\"}]"),
	  NULL, POLICY_PATCHED, 0, { NULL }, { "tolerations" }, NULL },
	{ "own limit below the profile's request: the request is capped",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"limits\":{\"cpu\":\"500m\"}}}]"),
	  NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/spec/containers/0/resources/requests\",\"value\":{\"cpu\":\"500m\",\"memory\":\"2Gi\"}",
	    "\"path\":\"/spec/containers/0/resources/limits/memory\",\"value\":\"8Gi\"" },
	  { "\"cpu\":\"1\"", "limits/cpu" }, NULL },
	{ "own request above the profile's limit: the limit is raised to it",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"requests\":{\"cpu\":\"6\"}}}]"),
	  NULL, POLICY_PATCHED, 0,
	  { "\"path\":\"/spec/containers/0/resources/limits\",\"value\":{\"cpu\":\"6\",\"memory\":\"8Gi\"}",
	    "\"path\":\"/spec/containers/0/resources/requests/memory\",\"value\":\"2Gi\"" },
	  { NULL }, NULL },
	{ "a limit above the profile's max is denied",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"limits\":{\"memory\":\"17179869185\"}}}]"),
	  NULL, POLICY_DENIED, 403,
	  { "container \"agent\" resources.limits.memory exceeds the maximum 16Gi of profile 'medium'" },
	  { NULL }, NULL },
	{ "equal to the max is allowed (16Gi written as 16384Mi)",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"limits\":{\"memory\":\"16384Mi\",\"cpu\":\"8000m\"}}}]"),
	  NULL, POLICY_PATCHED, 0, { "resources/requests" }, { "resources/limits" }, NULL },
	{ "the small profile's max applies to a request the pod sets",
	  POD(OPTIN ",\"pipewarden.io/profile\":\"small\"}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"requests\":{\"cpu\":\"2100m\"}}}]"),
	  NULL, POLICY_DENIED, 403, { "resources.requests.cpu exceeds the maximum 2 of profile 'small'" }, { NULL }, NULL },
	{ "an unparsable quantity in the pod",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"limits\":{\"cpu\":\"fast\"}}}]"),
	  NULL, POLICY_DENIED, 400, { "resources.limits.cpu: 'fast' is not a quantity" }, { NULL }, NULL },
	{ "a pool outside the config's pools warns; the label is made valid",
	  POD(OPTIN ",\"pipewarden.io/pool\":\"Linux Large (x64)\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0,
	  { "\"pipewarden.io/pool\":\"Linux-Large--x64\"", "{\"name\":\"AZP_POOL\",\"value\":\"Linux Large (x64)\"}" },
	  { NULL }, "pool 'Linux Large (x64)' is not in the config's 'pools'" },
	{ "unknown pipewarden.io annotation warns",
	  POD(OPTIN ",\"pipewarden.io/pools\":\"x\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0, { NULL }, { NULL },
	  "1 unknown pipewarden.io annotation ignored (pipewarden.io/pools)" },
	{ "many unknown pipewarden.io annotations: one warning names three and counts the rest",
	  POD(OPTIN ",\"pipewarden.io/a\":\"x\",\"pipewarden.io/b\":\"x\",\"pipewarden.io/c\":\"x\","
	  "\"pipewarden.io/d\":\"x\",\"pipewarden.io/e\":\"x\"}", "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0, { NULL }, { NULL },
	  "5 unknown pipewarden.io annotations ignored (pipewarden.io/a, pipewarden.io/b, "
	  "pipewarden.io/c and 2 more)" },
	{ "a quantity with 70 leading zeros is judged whole against max",
	  POD(OPTIN "}", "\"containers\":[{\"name\":\"agent\",\"resources\":{\"limits\":{\"memory\":"
	  "\"0000000000000000000000000000000000000000000000000000000000000000000000"
	  "32Gi\"}}}]"),
	  NULL, POLICY_DENIED, 403, { "resources.limits.memory" }, { NULL }, NULL },
	{ "labels and annotations the pod sets are kept",
	  POD("\"labels\":{\"pipewarden.io/managed\":\"true\",\"pipewarden.io/pool\":\"x\"}," OPTIN ",\"cluster-autoscaler.kubernetes.io/safe-to-evict\":\"true\"}",
	  "\"containers\":[" AGENT "]"),
	  NULL, POLICY_PATCHED, 0, { "azure.workload.identity~1use" },
	  { "pipewarden.io~1managed", "pipewarden.io~1pool", "safe-to-evict" }, NULL },
	{ "a running job pins its node for Karpenter too; the identity stays out of the capabilities",
	  POD(OPTIN "}", "\"containers\":[" AGENT "]"), NULL, POLICY_PATCHED, 0,
	  { "karpenter.sh~1do-not-disrupt\",\"value\":\"true\"",
	    "{\"name\":\"VSO_AGENT_IGNORE\",\"value\":\"AZURE_CLIENT_ID,AZURE_TENANT_ID,"
	    "AZURE_FEDERATED_TOKEN_FILE,AZURE_AUTHORITY_HOST\"}" }, { NULL }, NULL },
	{ "a container's own VSO_AGENT_IGNORE and do-not-disrupt are kept",
	  POD(OPTIN ",\"karpenter.sh/do-not-disrupt\":\"false\"}",
	  "\"containers\":[{\"name\":\"agent\",\"env\":[{\"name\":\"VSO_AGENT_IGNORE\","
	  "\"value\":\"MY_SECRET_PATH\"}]}]"), NULL, POLICY_PATCHED, 0,
	  { "AZURE_CLIENT_ID" }, { "VSO_AGENT_IGNORE", "do-not-disrupt" }, NULL },
};

static char *
make_review(const char *pod, const char *op)
{
	struct buf b;

	buf_init(&b, 1 << 20);
	buf_addf(&b, "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\","
	    "\"request\":{\"uid\":\"u-1\",\"kind\":{\"group\":\"\",\"version\":\"v1\","
	    "\"kind\":\"Pod\"},\"operation\":\"%s\",\"namespace\":\"ns\",\"object\":%s}}",
	    op, pod);
	return buf_detach(&b, NULL);
}

static void
run_case(const struct config *cfg, const struct policy_case *c)
{
	struct policy_decision d;
	struct policy_input in;
	struct review rv;
	char err[256], *body;
	const char *text;
	size_t i;
	int ok;

	body = make_review(c->pod, c->op != NULL ? c->op : "CREATE");
	CHECK(review_parse(body, strlen(body), &rv, err, sizeof(err)) == 0);
	in.operation = rv.operation;
	in.kind = rv.kind;
	in.group = rv.group;
	in.pod = rv.object;
	in.version = "0.1.0";
	CHECK(policy_decide(cfg, &in, &d) == 0);
	ok = d.result == c->result && d.code == c->code;
	text = d.result == POLICY_DENIED ? d.message : d.patch != NULL ? d.patch : "";
	for (i = 0; i < 6 && c->has[i] != NULL; i++)
		ok &= strstr(text, c->has[i]) != NULL;
	for (i = 0; i < 4 && c->lacks[i] != NULL; i++)
		ok &= strstr(text, c->lacks[i]) == NULL;
	if (c->warning != NULL) {
		int found = 0;
		for (i = 0; i < d.nwarnings; i++)
			found |= strstr(d.warnings[i], c->warning) != NULL;
		ok &= found && d.nwarnings == 1;
	} else {
		ok &= d.nwarnings == 0;
	}
	if (!ok)
		fprintf(stderr, "case '%s': result %d code %d, %zu warnings, text: %s\n",
		    c->name, d.result, d.code, d.nwarnings, text);
	CHECK(ok);
	policy_decision_release(&d);
	review_release(&rv);
	free(body);
}

int
main(void)
{
	struct config *cfg;
	char err[512];
	size_t i;

	if ((cfg = config_load("tests/config.json", err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(cfg, &cases[i]);
	config_free(cfg);
	return check_done();
}
