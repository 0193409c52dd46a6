#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "../common/cli.h"
#include "../common/config.h"
#include "../common/file.h"
#include "../common/log.h"
#include "loop.h"

#ifndef PIPEWARDEN_VERSION
#define PIPEWARDEN_VERSION "0.0.0-dev"
#endif

#define SA_DIR	"/var/run/secrets/kubernetes.io/serviceaccount"

/* The janitor's namespace: POD_NAMESPACE, else the service account's. */
static const char *
own_namespace(char *buf, size_t len)
{
	const char *ns = getenv("POD_NAMESPACE");
	char *text;
	size_t n;

	if (ns != NULL && ns[0] != '\0')
		return ns;
	if ((text = file_read(SA_DIR "/namespace", 253, &n)) != NULL) {
		snprintf(buf, len, "%.*s", (int)strcspn(text, "\n"), text);
		free(text);
		return buf;
	}
	return "pipewarden-system";
}

/* What the pod's environment says: its identity in the Lease (POD_NAME,
 * else the host name, written into host), the PAT file and the Azure
 * webhook's workload-identity variables. */
static void
from_environment(struct janitor_options *jo, char *host, size_t hostlen)
{
	jo->identity = getenv("POD_NAME");
	if (jo->identity == NULL || jo->identity[0] == '\0') {
		if (gethostname(host, hostlen) != 0)
			snprintf(host, hostlen, "pipewarden-janitor-%d", (int)getpid());
		host[hostlen - 1] = '\0';
		jo->identity = host;
	}
	jo->pat_file = getenv("AZP_TOKEN_FILE");
	if (jo->pat_file != NULL && jo->pat_file[0] == '\0')
		jo->pat_file = NULL;
	jo->client_id = getenv("AZURE_CLIENT_ID");
	jo->tenant_id = getenv("AZURE_TENANT_ID");
	jo->authority = getenv("AZURE_AUTHORITY_HOST");
	jo->federated_token_file = getenv("AZURE_FEDERATED_TOKEN_FILE");
}

/* A PAT file: AZP_TOKEN_FILE, set and not empty. */
static int
have_pat(void)
{
	const char *f = getenv("AZP_TOKEN_FILE");

	return f != NULL && f[0] != '\0';
}

/* What the janitor needs of a config besides its validity. */
static int
janitor_check_config(const struct config *cfg, char *err, size_t errlen)
{
	return config_janitor_auth(cfg, have_pat(), err, errlen);
}

int
main(int argc, char **argv)
{
	struct cli_common common = { CONFIG_DEFAULT_PATH, 0, 0, 0, janitor_check_config };
	const char *node = getenv("NODE_NAME");
	const char *kube_api = NULL, *kube_token = SA_DIR "/token", *kube_ca = SA_DIR "/ca.crt";
	const char *ado_ca = NULL, *metrics_port = "9091", *output = NULL;
	int once = 0, dry_run = 0, report = argc > 1 && strcmp(argv[1], "report") == 0;
	const struct cli_option opts[] = {
		{ "once", NULL, &once, NULL, "run one cycle and exit (0 done, 1 API error, 2 usage)" },
		{ "dry-run", NULL, &dry_run, NULL, "log every decision, delete and write nothing" },
		{ "node", &node, NULL, "NAME", "this node (NODE_NAME)" },
		{ "kube-api", &kube_api, NULL, "URL", "Kubernetes API (in-cluster: KUBERNETES_SERVICE_HOST/PORT)" },
		{ "kube-token-file", &kube_token, NULL, "FILE", "bearer token, re-read (" SA_DIR "/token)" },
		{ "kube-ca", &kube_ca, NULL, "FILE", "CA of the Kubernetes API (" SA_DIR "/ca.crt)" },
		{ "ado-ca", &ado_ca, NULL, "FILE", "CA bundle for Azure DevOps and Entra (system store)" },
		{ "metrics-port", &metrics_port, NULL, "PORT", "HTTP port for /metrics, /healthz (9091)" },
		{ "output", &output, NULL, "FORMAT", "report only: table (the default) or json" },
		CLI_COMMON_OPTIONS(&common),
		{ NULL, NULL, NULL, NULL, NULL },
	};
	struct janitor_options jo;
	struct config *cfg;
	char nsbuf[256], host[256];
	long long port;
	int rc;

	/* Large response buffers (a 20,000-agent list is ~20 MB) always come
	 * from mmap, so they grow by mremap and go back to the system when
	 * freed; glibc's dynamic threshold would move them to the heap after
	 * the first one is freed, where growing copies and freeing keeps. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	log_init("pipewarden-janitor");
	/* `pipewarden-janitor report [flags]`: the same flags after the word. */
	if (report) {
		argv[1] = argv[0];
		argv++;
		argc--;
	}
	if ((cfg = cli_start("pipewarden-janitor", "Cleans finished and stuck agent pods "
	    "on its node and, as the Lease holder, dead offline agents of the pools.  "
	    "'pipewarden-janitor report [--output table|json]' prints each pool's agents, "
	    "the pod behind each and what the next cycle would do, and changes nothing.",
	    PIPEWARDEN_VERSION, opts, &common, argc, argv, &rc)) == NULL)
		return rc;
	if (output != NULL && (!report || (strcmp(output, "table") != 0 &&
	    strcmp(output, "json") != 0))) {
		fprintf(stderr, "pipewarden-janitor: --output '%s': %s\n", output, report ?
		    "use table or json" : "only 'pipewarden-janitor report' takes --output");
		config_free(cfg);
		return 2;
	}
	if (parse_ll(metrics_port, 0, 65535, &port) == -1) {
		fprintf(stderr, "pipewarden-janitor: --metrics-port: '%s' is not a port "
		    "(0 for none)\n", metrics_port);
		config_free(cfg);
		return 2;
	}
	if (!report && (node == NULL || node[0] == '\0')) {
		fprintf(stderr, "pipewarden-janitor: no node: set --node or NODE_NAME "
		    "(the downward API's spec.nodeName)\n");
		config_free(cfg);
		return 2;
	}
	memset(&jo, 0, sizeof(jo));
	jo.config_path = common.config_path;
	jo.node = node != NULL ? node : "";
	jo.namespace = own_namespace(nsbuf, sizeof(nsbuf));
	from_environment(&jo, host, sizeof(host));
	jo.kube_api = kube_api;
	jo.kube_token_file = kube_token;
	jo.kube_ca = kube_ca;
	jo.ado_ca = ado_ca;
	jo.metrics_port = (unsigned int)port;
	jo.once = once;
	jo.dry_run = dry_run;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* the janitor now owns cfg */
	rc = report ? janitor_report(&jo, cfg, output != NULL && strcmp(output, "json") == 0) :
	    janitor_run(&jo, cfg);
	curl_global_cleanup();
	return rc;
}
