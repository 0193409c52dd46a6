#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/cli.h"
#include "../common/config.h"
#include "../common/log.h"
#include "server.h"

#ifndef PIPEWARDEN_VERSION
#define PIPEWARDEN_VERSION "0.0.0-dev"
#endif

static int
parse_port(const char *flag, const char *s, unsigned int *out)
{
	long long v;

	if (parse_ll(s, 1, 65535, &v) == -1) {
		fprintf(stderr, "pipewarden-webhook: --%s: '%s' is not a port "
		    "(1-65535)\n", flag, s);
		return -1;
	}
	*out = (unsigned int)v;
	return 0;
}

static int
parse_number(const char *flag, const char *s, long long min, long long max,
    long long *out)
{
	if (parse_ll(s, min, max, out) == -1) {
		fprintf(stderr, "pipewarden-webhook: --%s: '%s' is not a number "
		    "from %lld to %lld\n", flag, s, min, max);
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct cli_common common = { CONFIG_DEFAULT_PATH, 0, 0, 0, NULL };
	const char *cert = "/etc/pipewarden/tls/tls.crt";
	const char *key = "/etc/pipewarden/tls/tls.key";
	const char *address = NULL, *port = "8443", *metrics_port = "9090";
	const char *max_conns = "1000", *req_timeout = "10", *idle_timeout = "120";
	const char *per_address = "250", *shutdown_delay = "5";
	const struct cli_option opts[] = {
		{ "tls-cert", &cert, NULL, "FILE", "serving certificate, PEM (/etc/pipewarden/tls/tls.crt)" },
		{ "tls-key", &key, NULL, "FILE", "serving key, PEM (/etc/pipewarden/tls/tls.key)" },
		{ "port", &port, NULL, "PORT", "HTTPS port for /mutate, /healthz, /readyz (8443)" },
		{ "metrics-port", &metrics_port, NULL, "PORT", "HTTP port for /metrics, /healthz (9090)" },
		{ "address", &address, NULL, "ADDR", "listen address (all)" },
		{ "max-connections", &max_conns, NULL, "N", "connection limit (1000)" },
		{ "max-connections-per-address", &per_address, NULL, "N", "connections from one client address (250)" },
		{ "request-timeout", &req_timeout, NULL, "SECONDS", "deadline from accept to a whole request: handshake, headers, body (10)" },
		{ "idle-timeout", &idle_timeout, NULL, "SECONDS", "a keep-alive connection may idle (120)" },
		{ "shutdown-delay", &shutdown_delay, NULL, "SECONDS", "after SIGTERM, /readyz fails but connections are accepted this long (5)" },
		CLI_COMMON_OPTIONS(&common),
		{ NULL, NULL, NULL, NULL, NULL },
	};
	struct server_options so;
	struct config *cfg;
	long long conns, rt, it, pa, sd;
	int status;

	log_init("pipewarden-webhook");
	if ((cfg = cli_start("pipewarden-webhook", "Mutating admission webhook that "
	    "completes Azure Pipelines agent pods.", PIPEWARDEN_VERSION, opts, &common,
	    argc, argv, &status)) == NULL)
		return status;
	memset(&so, 0, sizeof(so));
	so.config_path = common.config_path;
	so.cert_path = cert;
	so.key_path = key;
	so.address = address;
	so.version = PIPEWARDEN_VERSION;
	if (parse_port("port", port, &so.port) == -1 ||
	    parse_port("metrics-port", metrics_port, &so.metrics_port) == -1 ||
	    parse_number("max-connections", max_conns, 1, 1000000, &conns) == -1 ||
	    parse_number("request-timeout", req_timeout, 1, 3600, &rt) == -1 ||
	    parse_number("idle-timeout", idle_timeout, 1, 86400, &it) == -1 ||
	    parse_number("max-connections-per-address", per_address, 1, 1000000, &pa) == -1 ||
	    parse_number("shutdown-delay", shutdown_delay, 0, 600, &sd) == -1) {
		config_free(cfg);
		return 2;
	}
	so.connection_limit = (unsigned int)conns;
	so.request_timeout = (unsigned int)rt;
	so.idle_timeout = (unsigned int)it;
	so.per_address_limit = (unsigned int)pa;
	so.shutdown_delay = (unsigned int)sd;
	/* the server now owns cfg */
	return server_run(&so, cfg);
}
