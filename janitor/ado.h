#ifndef PW_ADO_H
#define PW_ADO_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "../common/strpool.h"
#include "plan.h"
#include "timing.h"

/*
 * Azure DevOps: reading its answers (pure) and, in ado_client.c, talking
 * to it.
 */

/* The agents of one pool, parsed from an agents-list body: compact
 * records whose strings the list owns (no JSON tree is kept). */
struct agent_list {
	struct agent_info	*agents;	/* owned */
	size_t			 n, cap;
	struct strpool		 strings;	/* every name and uid */
};

/* Parse a 200 body of GET .../pools/{id}/agents: {"count":N,"value":[...]}.
 * Return 0, or -1 with a message in err (not JSON, not that shape, an agent
 * without id, name, status or createdOn).  The caller releases *out. */
int	ado_parse_agents(const char *body, size_t len, struct agent_list *out,
	    char *err, size_t errlen);

void	agent_list_release(struct agent_list *l);

/* Parse a 200 body of GET .../pools/{id}/agents/{agentId}: one agent, as
 * the list holds them (out gets one item).  Return 0, or -1 with a message. */
int	ado_parse_agent(const char *body, size_t len, struct agent_list *out,
	    char *err, size_t errlen);

/* Parse a 200 body of GET .../pools/{id}/jobrequests: {"count":N,"value":
 * [TaskAgentJobRequest...]} (fixture fact 30).  Return 0, or -1 with a
 * message (not that shape, a request without requestId, a time that is not
 * one: like KEDA, one bad time fails the whole answer).  The caller
 * releases *out. */
int	ado_parse_job_requests(const char *body, size_t len, struct request_list *out,
	    char *err, size_t errlen);

/* Parse a 200 body of GET .../pools?poolName=NAME: the id of the one pool
 * whose name equals name without regard to case (as Azure DevOps matches
 * it); the server's spelling is copied into spelled.  Return the id, or -1
 * with a message (no such pool, more than one, not the expected JSON). */
long long	ado_parse_pool_id(const char *body, size_t len, const char *name,
		    char *spelled, size_t spelledlen, char *err, size_t errlen);

/* ---- the client -------------------------------------------------------- */

#include "../common/http.h"
#include "../common/metrics.h"
#include "../common/secret.h"

#define ADO_RESOURCE	"499b84ac-1321-427f-aa17-267ca6975798"

/* Why the last call failed, for pipewarden_janitor_pool_errors_total. */
enum ado_error {
	ADO_ERR_NONE,
	ADO_ERR_AUTH,		/* 401/403, 203 sign-in page, Entra refused */
	ADO_ERR_NOT_FOUND,	/* no pool of that name; the pool id gave 404 */
	ADO_ERR_THROTTLED,	/* 429 past its retries */
	ADO_ERR_UNAVAILABLE,	/* 5xx or no answer past the retries */
	ADO_ERR_TIMEOUT,	/* the time budget ran out */
	ADO_ERR_MALFORMED,	/* an answer that is not what was asked for */
	ADO_ERR_API_VERSION,	/* the server does not serve janitor.apiVersion */
};

/* The metric label of an error ("auth", "not-found", ...). */
const char	*ado_error_name(enum ado_error e);

struct ado {
	struct http_client	*http;		/* owned */
	/* Owned copies, set by ado_configure(): nothing points into a config. */
	char			*org_url;	/* no trailing '/' */
	char			*client_id;
	char			*tenant_id;
	char			*authority;
	char			 api_version[24];/* janitor.apiVersion */
	/* PAT from a file (re-read each cycle), else workload identity. */
	const char		*pat_path;	/* the program's options: lives as long */
	const char		*token_file;	/* the projected service-account token */
	struct secret		 bearer;	/* cached Entra token */
	time_t			 bearer_expiry;
	/* Wait (Retry-After, backoff); returns -1 when the wait was cut short
	 * because the program is stopping. */
	int			(*wait)(void *cls, double seconds);
	void			*wait_cls;
	double			 slow_down;	/* to wait before the next request */
	struct metric_family	*m_requests;	/* pipewarden_janitor_ado_requests_total */
	int			 requests;
	int			 max_attempts;
	double			 backoff_base;	/* seconds */
	double			 deadline;	/* monotonic; 0: none (ado_set_deadline) */
	enum ado_error		 last_error;	/* of the last call that failed */
};

/* Set up a client (no settings yet: ado_configure).  Return 0 or -1. */
int	ado_init(struct ado *a, const char *ca_file);

/* Take the organization and the Entra identity (copied; org_url may end
 * with '/'; authority NULL or "" means Entra's public cloud).  A changed
 * identity drops the cached Entra token.  Return 0, or -1 when out of
 * memory (the previous settings stay). */
int	ado_configure(struct ado *a, const char *org_url, const char *client_id,
	    const char *tenant_id, const char *authority);

/* The api-version every call carries from now on (janitor.apiVersion; a
 * validated config's is short). */
void	ado_set_api_version(struct ado *a, const char *version);

/* Every call from now on ends by deadline (http_now() seconds; 0: none):
 * waits and timeouts are cut to it, and nothing starts past it. */
void	ado_set_deadline(struct ado *a, double deadline);

void	ado_release(struct ado *a);

/* The id of the pool called name (without regard to case; a name the
 * server spells otherwise is logged once).  Return the id, or -1 with a
 * message. */
long long	ado_pool_id(struct ado *a, const char *name, char *err, size_t errlen);

/* Every agent of a pool in one request (the list is not paged), always with
 * includeCapabilities=true (without it no PIPEWARDEN_POD_UID arrives) and
 * includeAssignedRequest=true (without it a busy agent looks idle).
 * Return 0, or -1 with a message (the caller then deletes no agent). */
int	ado_list_agents(struct ado *a, long long pool_id, struct agent_list *out,
	    char *err, size_t errlen);

/* One agent, read again with the same includes, right before it is deleted
 * (an agent registered again under its name keeps its id).  Return 1 with
 * out holding it, 0 when it is gone (404), -1 with a message. */
int	ado_get_agent(struct ado *a, long long pool_id, long long agent_id,
	    struct agent_list *out, char *err, size_t errlen);

/* The pool's job requests, as KEDA's scaler reads them (?$top=250): queued,
 * running and recently finished.  Return 0, or -1 with a message. */
int	ado_list_job_requests(struct ado *a, long long pool_id, struct request_list *out,
	    char *err, size_t errlen);

enum ado_delete_result { ADO_DELETED, ADO_GONE, ADO_BUSY, ADO_FAILED };

enum ado_delete_result	ado_delete_agent(struct ado *a, long long pool_id,
			    long long agent_id, char *err, size_t errlen);

#endif
