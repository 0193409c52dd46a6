#ifndef PW_POLICY_H
#define PW_POLICY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "../common/config.h"

/*
 * The mutation policy (DESIGN.md "Opting in" to "Denials and warnings").
 * Pure: a config, the pod and its request in, a decision out.  No I/O, no
 * clock, no globals.
 */

enum policy_result { POLICY_UNCHANGED, POLICY_PATCHED, POLICY_DENIED };

struct policy_decision {
	enum policy_result	 result;
	int			 code;		/* denial: 400 or 403 */
	char			*message;	/* denial: owned */
	char			*patch;		/* patched: JSON Patch text, owned */
	size_t			 patch_len;
	size_t			 nops;
	char			**warnings;	/* owned */
	size_t			 nwarnings;
	int			 opted_in;
	char			 pool[256];	/* for logs: the pod's pool */
};

struct policy_input {
	const char	*operation;	/* request.operation */
	const char	*kind;		/* request.kind.kind */
	const char	*group;		/* request.kind.group */
	const cJSON	*pod;		/* request.object; may be NULL */
	const char	*version;	/* pipewarden version for pipewarden.io/injected */
};

/* Decide what to do with a pod.  Fills *d (policy_decision_release() frees
 * it on every path).  Return 0, or -1 when out of memory. */
int	policy_decide(const struct config *cfg, const struct policy_input *in,
	    struct policy_decision *d);

void	policy_decision_release(struct policy_decision *d);

#define POLICY_ANNOTATION_PREFIX	"pipewarden.io/"
#define AZURE_TOKEN_DIR		"/var/run/secrets/azure/tokens"
#define AZURE_TOKEN_VOLUME	"azure-identity-token"
#define AZP_SECRET_DIR		"/var/run/secrets/azp"
#define AZP_SECRET_VOLUME	"azp-token"

#endif
