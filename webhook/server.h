#ifndef PW_SERVER_H
#define PW_SERVER_H

#include "../common/config.h"

/*
 * The webhook's I/O: an HTTPS server (libmicrohttpd over GnuTLS) for
 * /mutate, /healthz and /readyz, and a plain HTTP server for /metrics and
 * /healthz, both driven by one event loop on one thread.  The loop also
 * reads signals and, once a second, re-reads the config and certificate
 * files when they change.  Every callback runs on that thread, so the
 * config snapshot and the certificate are swapped without locks.
 */

struct server_options {
	const char	*config_path;
	const char	*cert_path;
	const char	*key_path;
	const char	*address;	/* NULL: all addresses */
	unsigned int	 port;
	unsigned int	 metrics_port;
	unsigned int	 connection_limit;
	unsigned int	 per_address_limit;	/* connections from one address */
	unsigned int	 idle_timeout;		/* seconds a keep-alive may idle */
	unsigned int	 request_timeout;	/* seconds from accept to a whole request */
	unsigned int	 shutdown_delay;	/* seconds still accepting after SIGTERM */
	const char	*version;
};

/* Serve until SIGTERM or SIGINT.  Takes ownership of cfg.  Return the
 * process exit status: 0 after a clean stop, 1 when it cannot start. */
int	server_run(const struct server_options *opts, struct config *cfg);

#endif
