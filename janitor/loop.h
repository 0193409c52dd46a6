#ifndef PW_LOOP_H
#define PW_LOOP_H

#include "../common/config.h"

/*
 * The janitor's cycle: list, elect, plan (janitor/plan.c), act, count.
 */

struct janitor_options {
	const char	*config_path;
	const char	*node;
	const char	*namespace;
	const char	*identity;	/* this replica, for the Lease */
	const char	*kube_api;	/* NULL: in-cluster */
	const char	*kube_token_file;
	const char	*kube_ca;
	const char	*ado_ca;
	const char	*pat_file;	/* AZP_TOKEN_FILE; NULL: workload identity */
	const char	*client_id;
	const char	*tenant_id;
	const char	*authority;
	const char	*federated_token_file;
	unsigned int	 metrics_port;	/* 0: none */
	int		 once;
	int		 dry_run;
};

/* Run until SIGTERM (or one cycle with once).  Takes ownership of cfg.
 * Return the exit status: 0, or with once 1 when an API error left part
 * of the cycle undone; 2 when it cannot start. */
int	janitor_run(const struct janitor_options *opts, struct config *cfg);

/* `pipewarden-janitor report`: print each pool's agents, the pod behind
 * each and what the next cycle would do and why, as a table or (json) JSON
 * on stdout.  Deletes nothing, writes nothing, takes no Lease.  Takes
 * ownership of cfg.  Return 0; 1 when a pool or the pods could not be
 * read (the rest is printed); 2 when it cannot start. */
int	janitor_report(const struct janitor_options *opts, struct config *cfg, int json);

#endif
