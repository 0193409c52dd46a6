#ifndef PW_CONFIG_H
#define PW_CONFIG_H

#include <stddef.h>

#include "quantity.h"

/*
 * The configuration file shared by both programs (DESIGN.md "Config
 * file").  A struct config is an immutable snapshot: it is built whole by
 * config_parse() and never changed; a reload builds a new one.
 */

#define CONFIG_DEFAULT_PATH	"/etc/pipewarden/config.json"
#define CONFIG_MAX_BYTES	(1024 * 1024)

enum identity_mode { IDENTITY_WORKLOAD, IDENTITY_PAT, IDENTITY_NONE };

struct toleration {
	char		*key;		/* may be "" */
	char		*operator;	/* "Equal" or "Exists" */
	char		*value;		/* may be "" */
	char		*effect;	/* may be "" */
	long long	 seconds;
	int		 has_seconds;
};

struct keyval {
	char		*key;
	char		*value;
};

struct resource {
	char		*name;		/* "cpu", "memory", ... */
	char		*text;		/* the quantity as written */
	struct quantity	 q;
};

struct resource_list {
	struct resource	*items;
	size_t		 n;
};

struct profile {
	char			*name;
	struct resource_list	 requests, limits, max;
};

struct janitor_config {
	long long	 interval_seconds;
	long long	 offline_grace_seconds;
	long long	 finished_pod_ttl_seconds;
	long long	 stuck_pending_seconds;	/* waiting with an error reason */
	long long	 pending_timeout_seconds;/* Pending for any other reason */
	long long	 max_deletions_per_cycle;
	long long	 max_patches_per_cycle;
	int		 only_managed_agents;
	char		**keep_agents;
	size_t		 nkeep_agents;
	/* Agent lifecycle: retire an online agent idle this long (0: never),
	 * a pod whose agent never registered after this long (0: never), and
	 * an idle agent at once on a node cordoned or with one of these
	 * taints. */
	long long	 idle_agent_seconds;
	long long	 registration_timeout_seconds;
	/* Requested CPU and memory seconds per pool and pipeline (pipeline
	 * names are unbounded label values: off by default). */
	int		 usage_by_pipeline;
	char		**drain_taints;
	size_t		 ndrain_taints;
	char		*lease_name;
	/* api-version of every Azure DevOps call ("7.1"; Server 2022 serves
	 * up to 7.0, Server 2020 up to 6.0). */
	char		*api_version;
	/* The janitor's own Entra identity ("" when unset): never the agents'. */
	char		*client_id;
	char		*tenant_id;
};

struct config {
	char			*organization_url;	/* https://, no trailing '/' */
	char			*default_pool;
	char			**pools;
	size_t			 npools;
	char			*work_dir;
	int			 deny_plaintext_token;
	int			 safe_to_evict;

	enum identity_mode	 identity_mode;
	int			 inject_token;
	char			*client_id;
	char			*tenant_id;
	char			*authority_host;
	char			*pat_secret;

	struct toleration	*tolerations;
	size_t			 ntolerations;
	struct keyval		*node_selector;
	size_t			 nnode_selector;

	char			*default_profile;
	struct profile		*profiles;
	size_t			 nprofiles;

	struct janitor_config	 janitor;
};

/* Parse and validate a configuration text.  Return a new config the caller
 * owns (config_free()), or NULL with a message naming the key in err. */
struct config	*config_parse(const char *text, size_t len, char *err, size_t errlen);

/* Read the file at path (at most CONFIG_MAX_BYTES) and parse it. */
struct config	*config_load(const char *path, char *err, size_t errlen);

/* Free a config and its contents.  config_free(NULL) does nothing. */
void		 config_free(struct config *cfg);

/* The profile called name, or NULL. */
const struct profile	*config_profile(const struct config *cfg, const char *name);

/* The resource called name in a profile's list, or NULL. */
const struct resource	*config_resource(const struct resource_list *l, const char *name);

/* The name of an identity mode ("workload-identity", "pat", "none"), and
 * the reverse (-1 for an unknown name). */
const char	*config_identity_name(enum identity_mode mode);
int		 config_identity_parse(const char *name);

/* Whether the janitor can authenticate to cfg's organization: workload
 * identity (Entra) is an Azure DevOps Services feature (dev.azure.com,
 * *.visualstudio.com), so any other organizationUrl (Azure DevOps Server)
 * needs a PAT (have_pat).  Return 0, or -1 with a message. */
int		 config_janitor_auth(const struct config *cfg, int have_pat, char *err,
		    size_t errlen);

/* Whether pool is one of cfg->pools. */
int		 config_has_pool(const struct config *cfg, const char *pool);

#endif
