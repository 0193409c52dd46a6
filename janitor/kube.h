#ifndef PW_KUBE_H
#define PW_KUBE_H

#include <stddef.h>
#include <time.h>

#include "../common/http.h"
#include "kube_parse.h"
#include "plan.h"

/*
 * The Kubernetes API client: listing pods, reading Jobs and Nodes,
 * deleting, annotating, Events and the Lease.  What its answers say is read
 * by kube_parse.c.
 */


struct kube {
	struct http_client	*http;		/* owned */
	char			*base;		/* "https://host:port", owned */
	const char		*token_path;	/* re-read before each request */
	const char		*namespace;	/* the janitor's own, for the Lease */
	int			 requests;	/* API requests made, for benches */
	/* Wait for a 429's Retry-After; returns -1 when stopping.  NULL: no
	 * retry. */
	int			(*wait)(void *cls, double seconds);
	void			*wait_cls;
};

/* Connect settings: base URL (NULL: in-cluster from KUBERNETES_SERVICE_HOST
 * and _PORT, IPv6 in brackets), token file, CA file.  Return 0 or -1. */
int	kube_init(struct kube *k, const char *base, const char *token_path,
	    const char *ca_path, const char *namespace, char *err, size_t errlen);
void	kube_release(struct kube *k);

/* Every request from now on ends by deadline (http_now() seconds; 0: none). */
void	kube_set_deadline(struct kube *k, double deadline);

/* The label that marks managed pods. */
#define KUBE_MANAGED_SELECTOR	"pipewarden.io/managed=true"

/* List pods by label selector, with an optional field selector, in one
 * namespace (ns) or the whole cluster (ns NULL).  cached:
 * resourceVersion=0 (served from the API server's cache, as kubelets list;
 * may ignore limit).  Pages are followed; an expired continue token (410)
 * restarts the list once.  Return 0 with the whole list, or -1 with a
 * message: the list is then incomplete and l is empty. */
int	kube_list_pods(struct kube *k, const char *ns, const char *label_selector,
	    const char *field_selector, int cached, struct pod_list *l, char *err,
	    size_t errlen);


/* GET a Job.  Return 0 (j->exists 0 on a 404) or -1 with a message. */
int	kube_get_job(struct kube *k, const char *ns, const char *name,
	    struct job_info *j, char *err, size_t errlen);

enum kube_delete_result { KUBE_DELETED, KUBE_GONE, KUBE_REPLACED, KUBE_REFUSED,
	KUBE_FAILED };

/* Delete a pod, or a Job with propagationPolicy Background, with a UID
 * precondition.  404 is KUBE_GONE, 409 KUBE_REPLACED (someone else won),
 * 403 and 422 KUBE_REFUSED (this object may not be written: RBAC, an
 * admission policy, validation). */
enum kube_delete_result	kube_delete_pod(struct kube *k, const char *ns,
			    const char *name, const char *uid, char *err, size_t errlen);
enum kube_delete_result	kube_delete_job(struct kube *k, const char *ns,
			    const char *name, const char *uid, char *err, size_t errlen);


/* Set (or, with a NULL value, remove) annotations of pod: a JSON merge
 * patch with the pod's uid as precondition.  KUBE_DELETED means written;
 * 404 is KUBE_GONE, 409 KUBE_REPLACED. */
enum kube_delete_result	kube_annotate(struct kube *k, const struct pod_info *pod,
			    const char *const *keys, const char *const *values, size_t n,
			    char *err, size_t errlen);

/* Write job's four annotations on pod (a JSON merge patch, the pod's uid as
 * precondition; an absent value removes its annotation).  KUBE_DELETED
 * means written; 404 is KUBE_GONE, 409 KUBE_REPLACED. */
enum kube_delete_result	kube_annotate_pod(struct kube *k, const struct pod_info *pod,
			    const struct job_ref *job, char *err, size_t errlen);

/* List the Jobs of the cluster that have had no successful pod
 * (fieldSelector status.successful=0), page by page.  Return 0 with the
 * whole list, or -1 with a message (l is then empty). */
int	kube_list_jobs(struct kube *k, struct job_list *l, char *err, size_t errlen);

/* The message of the newest FailedCreate Event of the Job with uid in ns
 * ("" when none).  Return 0, or -1 with a message. */
int	kube_failed_create(struct kube *k, const char *ns, const char *uid, char *msg,
	    size_t msglen, char *err, size_t errlen);

/* List every Node (from the API server's cache).  Return 0, or -1 with a
 * message (l is then empty). */
int	kube_list_nodes(struct kube *k, struct node_list *l, char *err, size_t errlen);

/* GET a Node.  Return 1 when it exists, 0 on a 404, -1 with a message. */
int	kube_node_exists(struct kube *k, const char *name, char *err, size_t errlen);


/* Record a core/v1 Event about an object (best effort): type Normal or
 * Warning, its reason, the action taken, a message.  Return 0 or -1. */
int	kube_event(struct kube *k, const struct kube_object *about, const char *type,
	    const char *reason, const char *action, const char *message, time_t now,
	    char *err, size_t errlen);

/* ---- the Lease ----------------------------------------------------------- */


/* GET the Lease.  Return 0 (l->exists says whether it was found) or -1. */
int	kube_get_lease(struct kube *k, const char *name, struct lease *l,
	    char *err, size_t errlen);

/* Create (no resourceVersion) or update (with it) the Lease.  Return 0 when
 * written, 1 on a conflict (409: someone else won), -1 on an error. */
int	kube_put_lease(struct kube *k, const char *name, const struct lease *l,
	    char *err, size_t errlen);

#endif
