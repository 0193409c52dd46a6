#ifndef PW_PLAN_H
#define PW_PLAN_H

#include <stddef.h>
#include <time.h>

#include "../common/config.h"
#include "../common/strpool.h"

/*
 * The janitor's decisions (DESIGN.md "pipewarden-janitor").  Pure: plain
 * data and the time in, a plan out.  No I/O, no clock, no globals.  The
 * caller lists, plans, then carries out the plan's deletions.
 */

enum pod_phase { PHASE_PENDING, PHASE_RUNNING, PHASE_SUCCEEDED, PHASE_FAILED,
	PHASE_UNKNOWN };
enum owner_kind { OWNER_NONE, OWNER_JOB, OWNER_OTHER };

/* The pipeline job an agent runs, from its assignedRequest: requestId,
 * definition.name, owner.name (the run's name or number) and
 * owner._links.web.href.  Any may be NULL. */
struct job_ref {
	const char	*request_id;
	const char	*pipeline;
	const char	*run;
	const char	*run_url;
};

/* A managed pod, as the Kubernetes client read it. */
struct pod_info {
	const char	*namespace;
	const char	*name;
	const char	*uid;
	const char	*node;		/* spec.nodeName; "" when not scheduled */
	enum pod_phase	 phase;
	time_t		 created;	/* metadata.creationTimestamp */
	time_t		 finished;	/* latest finishedAt of its containers; 0: none */
	time_t		 agent_finished;/* the agent container's finishedAt; 0: not terminated */
	int		 deleting;	/* metadata.deletionTimestamp is set */
	int		 unschedulable;	/* PodScheduled=False, reason Unschedulable */
	int		 waiting_error;	/* a container waits with an error reason
					 * (ErrImagePull, ImagePullBackOff, ...; an
					 * init container in CrashLoopBackOff) */
	enum owner_kind	 owner;
	const char	*owner_name;	/* the controller's name and uid */
	const char	*owner_uid;
	struct job_ref	 job;		/* pipewarden.io/job-request-id, pipeline, run,
					 * run-url as annotated; NULL when absent */
	const char	*end_reason;	/* why its work ended abnormally (OOMKilled,
					 * Evicted, Preempted, DeadlineExceeded,
					 * NodeLost, NodeDeleted), or NULL */
	time_t		 end_time;	/* when it ended, where the pod says (an OOM
					 * kill's finishedAt, also from lastState);
					 * 0: the pod's own end (evicted, preempted,
					 * ...), which ends every job it runs */
	const char	*interruption;	/* pipewarden.io/interruption
					 * ("<requestId>:<reason>"), or NULL */
	int		 going;		/* being removed: deleting, or a
					 * DisruptionTarget whose cause deletes it
					 * (preemption, the Eviction API, the taint
					 * manager, the pod garbage collector) */
	const char	*pool;		/* label pipewarden.io/pool, or NULL */
	time_t		 agent_started;	/* the agent container's running startedAt;
					 * 0: not running */
	const char	*retired;	/* pipewarden.io/retired: why the leader
					 * retired its agent, or NULL */
	time_t		 scheduled;	/* PodScheduled True: lastTransitionTime; 0: not yet */
	time_t		 agent_began;	/* the agent container's startedAt, running or
					 * terminated; 0: it never ran */
	double		 cpu_request;	/* the agent container's requests: cores */
	double		 memory_request;/* ... and bytes (0 when unset) */
};

/* An agent of a pool, as the Azure DevOps client read it. */
struct agent_info {
	long long	 id;
	const char	*name;
	int		 online;	/* status "online" */
	int		 enabled;
	int		 busy;		/* has an assignedRequest */
	time_t		 status_changed;/* statusChangedOn; 0 when absent */
	time_t		 created;	/* createdOn */
	int		 managed;	/* capability PIPEWARDEN_MANAGED=true */
	const char	*pod_uid;	/* capability PIPEWARDEN_POD_UID; NULL when absent */
	struct job_ref	 job;		/* what it runs, when busy */
	time_t		 assigned;	/* assignedRequest.assignTime; 0 when absent */
	time_t		 last_finished;	/* lastCompletedRequest.finishTime; 0: none */
};

/* A Node as the leader's agent lifecycle needs it. */
struct node_info {
	const char	*name;
	int		 unschedulable;	/* spec.unschedulable (kubectl cordon) */
	const char	*taints;	/* its taints' keys, each followed by '\n' */
};

struct pool_agents {
	const char		*pool;
	const struct agent_info	*agents;
	size_t			 n;
	int			 complete;	/* the list was read whole */
};

struct plan_input {
	const struct janitor_config *cfg;
	time_t			 now;
	const char		*node;		/* this replica's node */

	/* Node work: managed pods listed with spec.nodeName = node. */
	const struct pod_info	*node_pods;
	size_t			 n_node_pods;

	/* Pool work, only when leader: every managed pod of the cluster (for
	 * unscheduled pods and to know which agents a pod backs) and the
	 * agents of each pool. */
	int			 leader;
	const struct pod_info	*all_pods;
	size_t			 n_all_pods;
	int			 all_pods_complete;
	const struct pool_agents *pools;
	size_t			 npools;
};

enum action_kind {
	ACT_DELETE_POD,		/* delete the pod (UID precondition) */
	ACT_DELETE_JOB,		/* delete the pod's Job (Background) */
	ACT_DELETE_AGENT,
	ACT_KEEP_POD,
	ACT_KEEP_AGENT,
};

struct action {
	enum action_kind	 kind;
	const char		*reason;	/* static string */
	const struct pod_info	*pod;		/* pod actions */
	const struct agent_info	*agent;		/* agent actions */
	const char		*pool;		/* agent actions */
};

struct plan {
	struct action	*items;		/* owned */
	size_t		 n, cap;
	size_t		 pod_deletions;	/* pods and Jobs */
	size_t		 agent_deletions;
};

/*
 * The plan is made in the cycle's phases, each appending to one plan p (the
 * caps count over the whole cycle; pods and agents apart).  Each returns 0,
 * or -1 when out of memory (*p is then released and empty).
 * - plan_node_pods: this node's pods (in->node_pods), every replica;
 * - plan_unscheduled_pods: pods that never reached a node (in->all_pods),
 *   the leader only;
 * - plan_pool_agents: one pool's agents, against every managed pod
 *   (in->all_pods), the leader only.
 * plan_make does all three, as a cycle would, from one input, and applies
 * the cycle's cap (plan_cap).
 */
int	plan_node_pods(const struct plan_input *in, struct plan *p);
int	plan_unscheduled_pods(const struct plan_input *in, struct plan *p);
int	plan_pool_agents(const struct plan_input *in, const struct pool_agents *pool,
	    struct plan *p);
int	plan_make(const struct plan_input *in, struct plan *p);

/* The cycle's cap on a plan's items [first, n): past max deletions of pods
 * (and Jobs), and apart of agents, each further deletion becomes kept with
 * reason "deletion-cap".  The janitor counts the deletions it attempts
 * (a Job kept on its read, or an object held back after a refusal, costs
 * nothing); this is what `report` shows of it. */
void	plan_cap(struct plan *p, size_t first, long long max);

void	plan_release(struct plan *p);

/* Whether an action deletes something. */
int	plan_is_delete(const struct action *a);

struct pod_lookup;

/*
 * An agent read again right before its DELETE (fresh), against the one the
 * plan decided on (listed): why it must now be kept, or NULL when it still
 * passes every rule with the same statusChangedOn and the same
 * PIPEWARDEN_POD_UID.  "changed" and "re-registered" say it came back (an
 * agent registered again under its name keeps its id); other reasons are
 * the plan's own.
 */
const char *plan_agent_recheck(const struct janitor_config *cfg, time_t now,
	    const struct agent_info *listed, const struct agent_info *fresh,
	    const struct pod_lookup *pods);

/* Managed pods found by uid or name, as an agent names its pod
 * (PIPEWARDEN_POD_UID where it has one, else its name). */
struct pod_lookup {
	const struct pod_info	**by_uid;	/* owned arrays, sorted */
	const struct pod_info	**by_name;
	size_t			  n;
};

/* Index pods (which must outlive the lookup).  Return 0, or -1 when out of
 * memory (lk is then empty). */
int	plan_lookup_init(struct pod_lookup *lk, const struct pod_info *pods, size_t n);

/* The managed pod behind an agent, or NULL. */
const struct pod_info *plan_lookup_agent(const struct pod_lookup *lk,
	    const struct agent_info *ag);

void	plan_lookup_release(struct pod_lookup *lk);

/*
 * The pipeline job behind each managed pod (DESIGN "What the leader writes on
 * pods"): for each busy agent of `pool` whose pod `pods` finds (with
 * only_managed, the agent must carry PIPEWARDEN_MANAGED: a VM agent that
 * happens to bear a pod's name is not that pod's), an annotation patch when
 * the pod's
 * pipewarden.io/job-request-id, pipeline, run or run-url differ from the
 * agent's assignedRequest.  Terminating pods are left alone.  Appends to
 * *out until it holds max patches (the cycle's maxPatchesPerCycle).
 * Return 0, or -1 when out of memory.
 */
struct pod_patch {
	const struct pod_info	*pod;
	const struct agent_info	*agent;
};

struct patch_plan {
	struct pod_patch	*items;		/* owned */
	size_t			 n, cap;
};

int	plan_pod_annotations(const struct pool_agents *pool, const struct pod_lookup *pods,
	    int only_managed, size_t max, struct patch_plan *out);

void	patch_plan_release(struct patch_plan *p);

/*
 * Pipeline jobs interrupted by their pod's end (DESIGN, #16 "why a job
 * died"): each busy agent of pool whose pod (found by pods) ended
 * abnormally (pod->end_reason) and is not yet recorded (only_managed: as
 * plan_pod_annotations)
 * (pipewarden.io/interruption absent), appended to *out until it holds max.
 * Return 0, or -1 when out of memory.
 */
int	plan_interruptions(const struct pool_agents *pool, const struct pod_lookup *pods,
	    int only_managed, size_t max, struct patch_plan *out);

/* Whether pod's pipewarden.io/interruption already records request_id
 * ("<requestId>:<reason>"; a value without ':' was written by an earlier
 * version for the request then in pipewarden.io/job-request-id). */
int	plan_interruption_recorded(const struct pod_info *pod, const char *request_id);

/* Whether pod's end interrupted the job ag runs: it ended abnormally
 * (end_reason), not yet recorded for that request, and not before the
 * request was assigned (an OOM kill in lastState of a restarted container
 * belongs to the job before). */
int	plan_interrupted(const struct pod_info *pod, const struct agent_info *ag);

/*
 * Pipeline jobs whose pod is gone (#16: "an Event on its Job when the pod is
 * gone").  `seen` holds the pods the leader saw running this pool's jobs at
 * its previous pass, each with the job its agent ran (pod->job) and how it
 * last looked.  For each busy agent of pool (only_managed: as
 * plan_pod_annotations) that still runs the same job request while its pod
 * seen then is no longer among `pods`: the pod went with the job.  A pod
 * whose agent container had already ended without an end_reason is not
 * counted (the agent ended the job itself; its log says why).  Appends
 * (the pod as seen, the agent) to *out.  Return 0, or -1 when out of memory.
 */
int	plan_gone_jobs(const struct pool_agents *pool, const struct pod_lookup *pods,
	    const struct pod_lookup *seen, int only_managed, struct patch_plan *out);

/* Why a gone pod's job ended: what the pod last showed (its end_reason),
 * else "NodeDeleted" when its node is gone too, else "Deleted". */
const char *plan_gone_reason(const struct pod_info *seen, int node_gone);

/*
 * What the leader remembers for plan_gone_jobs at its next pass: each busy
 * agent of pool (only_managed: as plan_pod_annotations) with a job request
 * whose pod `pods` finds, its interruption not yet recorded.  Appends
 * (pod, agent) to *out.  Return 0, or -1 when out of memory.
 */
int	plan_running_jobs(const struct pool_agents *pool, const struct pod_lookup *pods,
	    int only_managed, struct patch_plan *out);

/* Copy a job reference's strings into sp (the list that owns them).
 * Return 0, or -1 when out of memory. */
int	plan_job_ref_keep(struct strpool *sp, struct job_ref *j);

/* Whether two job references say the same (NULL = absent). */
int	plan_job_ref_equal(const struct job_ref *a, const struct job_ref *b);

/*
 * Agent lifecycle: agent pods that hold a node without running a job.  For
 * the managed, Running, bound pods of pool (label pipewarden.io/pool) that
 * a Job or nobody owns (a ReplicaSet or StatefulSet would bring the pod
 * back), not going and not retired yet, with a reason:
 * - "node-draining": its node (nodes, sorted by name) is cordoned or
 *   carries a taint in drainTaints, and its agent runs no job;
 * - "idle": its agent is online and enabled, runs no job, and has done
 *   nothing for idleAgentSeconds (since statusChangedOn or the end of its
 *   last job, the later);
 * - "never-registered": no agent of the pool carries its uid or name while
 *   its agent container has run registrationTimeoutSeconds (only when the
 *   pool and the pods were listed whole).
 * An agent that is busy, disabled, kept by keepAgents or (with only
 * managed) unmanaged is never retired.  Return 0, or -1 when out of memory.
 */
struct retirement {
	const struct pod_info	*pod;
	const struct agent_info	*agent;		/* NULL: never registered */
	const char		*reason;	/* static */
};

struct retire_plan {
	struct retirement	*items;		/* owned */
	size_t			 n, cap;
};

int	plan_retirements(const struct plan_input *in, const struct pool_agents *pool,
	    const struct node_info *nodes, size_t nnodes, struct retire_plan *out);

void	retire_plan_release(struct retire_plan *p);

/* A pod's Job, as a GET of the Job read it. */
struct job_info {
	int		 exists;	/* 0: the Job is gone (404) */
	int		 finished;	/* a Complete, Failed, SuccessCriteriaMet or
					 * FailureTarget condition is True */
	char		 uid[128];	/* metadata.uid ("" when longer) */
};

/*
 * Why the Job of `pod` must stay, given the Job itself and `job_pods` (the
 * pods listed by the Job's batch.kubernetes.io/controller-uid label), or
 * NULL when it may go:
 * - "job-gone" when the Job no longer exists, "job-replaced" when a Job of
 *   that name has another uid (nothing of ours to delete);
 * - "job-has-live-pod" when another of its pods is Pending, Running or
 *   Unknown, not terminating and not itself due (a retry, a parallel pod:
 *   deleting the Job would kill it);
 * - "job-pods-unknown" when `pod` itself is not in the list (the label is
 *   missing: the Job's pods cannot be known, so the Job is not touched);
 * - "job-not-finished" when `pod` ended (Succeeded or Failed) but the Job
 *   has no terminal condition: it is between retries (the Job controller's
 *   back-off leaves it without a live pod for up to six minutes).
 * A Job goes without a terminal condition when the due pod, or another of
 * its pods, is stuck Pending (that pod is why it cannot finish), or is a
 * Running pod whose agent ended (a sidecar keeps it; the Job never ends).
 */
const char *plan_job_keep(const struct janitor_config *cfg, time_t now,
	    const struct pod_info *pod, const struct job_info *job,
	    const struct pod_info *job_pods, size_t n);

#endif
