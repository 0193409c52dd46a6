#ifndef PW_ADO_H
#define PW_ADO_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "plan.h"

/*
 * Azure DevOps: reading its answers (pure) and, in ado_client.c, talking
 * to it.
 */

/* The agents of one pool, parsed from an agents-list body. */
struct agent_list {
	cJSON			*root;		/* owned; the agents borrow from it */
	struct agent_info	*agents;	/* owned */
	size_t			 n;
};

/* Parse a 200 body of GET .../pools/{id}/agents: {"count":N,"value":[...]}.
 * Return 0, or -1 with a message in err (not JSON, not that shape, an agent
 * without id, name, status or createdOn).  The caller releases *out. */
int	ado_parse_agents(const char *body, size_t len, struct agent_list *out,
	    char *err, size_t errlen);

void	agent_list_release(struct agent_list *l);

/* Parse a 200 body of GET .../pools?poolName=NAME: the id of the one pool
 * whose name equals name.  Return the id, or -1 with a message (no such
 * pool, more than one, not the expected JSON). */
long long	ado_parse_pool_id(const char *body, size_t len, const char *name,
		    char *err, size_t errlen);

#endif
