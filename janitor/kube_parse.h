#ifndef PW_KUBE_PARSE_H
#define PW_KUBE_PARSE_H

#include <stddef.h>
#include <time.h>

#include "../common/strpool.h"
#include "plan.h"

/*
 * Reading the Kubernetes API's answers into plain data (pure): pods, one
 * at a time from a page, into compact records; Jobs; Leases.  The client
 * is kube.c.
 */

/* The annotations the leader writes on managed pods: the pipeline job its
 * agent runs. */
#define KUBE_ANN_REQUEST	"pipewarden.io/job-request-id"
#define KUBE_ANN_PIPELINE	"pipewarden.io/pipeline"
#define KUBE_ANN_RUN		"pipewarden.io/run"
#define KUBE_ANN_RUN_URL	"pipewarden.io/run-url"
/* ... and, once, why the job was interrupted (its Event's reason). */
#define KUBE_ANN_INTERRUPTION	"pipewarden.io/interruption"
/* ... and why the leader retired the pod's agent (the node's replica then
 * removes the pod). */
#define KUBE_ANN_RETIRED	"pipewarden.io/retired"

/* Managed pods as compact records whose strings the list owns (no JSON
 * tree is kept: a page is parsed one pod at a time). */
struct pod_list {
	struct pod_info	*pods;		/* owned */
	size_t		 n, cap;
	struct strpool	 strings;	/* the pods' strings */
};

/* Parse one PodList page and append its items to l; *continue_token gets
 * metadata.continue (the caller frees it) or NULL.  Return 0, or -1 with a
 * message (not a PodList). */
int	kube_parse_pods(struct pod_list *l, const char *body, size_t len,
	    char **continue_token, char *err, size_t errlen);
void	pod_list_release(struct pod_list *l);

/* Append a copy of pod (its strings copied into l's).  Return 0, or -1 when
 * out of memory (l is unchanged but for capacity). */
int	pod_list_add(struct pod_list *l, const struct pod_info *pod);

/* Parse a Job body into j (exists set, finished from its conditions).
 * Return 0, or -1 with a message (not a Job). */
int	kube_parse_job(const char *body, size_t len, struct job_info *j, char *err,
	    size_t errlen);

/* What an Event is about (its involvedObject); the strings are borrowed. */
struct kube_object {
	const char	*api_version;
	const char	*kind;
	const char	*namespace;
	const char	*name;
	const char	*uid;
};

/* A pod as an Event's subject (borrows pod's strings). */
struct kube_object kube_pod_object(const struct pod_info *pod);

/* ---- Nodes ------------------------------------------------------------------ */

struct node_list {
	struct node_info	*nodes;		/* owned */
	size_t			 n, cap;
	struct strpool		 strings;
};

/* Parse a NodeList (one page) into l.  Return 0, or -1 with a message. */
int	kube_parse_nodes(struct node_list *l, const char *body, size_t len, char *err,
	    size_t errlen);
void	node_list_release(struct node_list *l);

/* ---- Jobs that never get a pod -------------------------------------------- */

struct job_summary {
	const char	*namespace;
	const char	*name;
	const char	*uid;
	time_t		 created;
	int		 opted_in;	/* its pod template says pipewarden.io/inject: "true" */
	int		 suspended;	/* spec.suspend */
	long long	 pods;		/* status active + succeeded + failed */
	int		 finished;	/* a terminal condition is True */
};

struct job_list {
	struct job_summary	*items;		/* owned */
	size_t			 n, cap;
	struct strpool		 strings;
};

/* Parse one page of a JobList into l (appending); *cont gets the continue
 * token (owned) or NULL.  Return 0, or -1 with a message. */
int	kube_parse_jobs(struct job_list *l, const char *body, size_t len, char **cont,
	    char *err, size_t errlen);
void	job_list_release(struct job_list *l);

/* The message of the newest Event in an EventList (by lastTimestamp,
 * eventTime or creation), copied into msg ("" when the list is empty).
 * Return 0, or -1 with a message. */
int	kube_parse_newest_event(const char *body, size_t len, char *msg, size_t msglen,
	    char *err, size_t errlen);

/* ---- the Lease ----------------------------------------------------------- */

struct lease {
	int		 exists;
	char		 holder[256];
	long long	 duration;
	time_t		 acquire;
	long		 acquire_ns;
	time_t		 renew;
	long		 renew_ns;
	long long	 transitions;
	char		 resource_version[64];
};

/* Parse a Lease body.  Return 0, or -1 with a message (not a Lease). */
int	kube_parse_lease(const char *body, size_t len, struct lease *l, char *err,
	    size_t errlen);

#endif
