/*
 * `pipewarden-janitor report`: each pool's agents, the pod behind each and
 * what the next cycle would do and why, from the same lists and the same
 * pure plan as a leader's cycle.  It writes nothing and takes no Lease.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/buf.h"
#include "../common/names.h"
#include "janitor.h"
#include "report.h"

/*
 * Pool i of the config: its agents (list, owned by the caller) and what a
 * leader would plan for them now, the cycle's cap included, appended to
 * plan.  Return 0; 1 when the pool could not be read (rp->error says why);
 * -1 when out of memory.
 */
static int
report_pool(struct janitor *j, size_t i, const struct plan_input *in, struct plan *plan,
    struct report_pool *rp, struct agent_list *list, const struct node_list *nodes,
    struct retire_plan *retire)
{
	struct pool_agents pa;
	struct request_list reqs;
	size_t first = plan->n;
	char err[512];

	rp->pool = j->cfg->pools[i];
	if ((rp->id = loop_pool_id(j, i, err, sizeof(err))) == -1 ||
	    ado_list_agents(&j->ado, rp->id, list, err, sizeof(err)) == -1) {
		rp->id = 0;
		return (rp->error = strdup(err)) == NULL ? -1 : 1;
	}
	pa.pool = rp->pool;
	pa.agents = list->agents;
	pa.n = list->n;
	pa.complete = 1;
	if (plan_pool_agents(in, &pa, plan) == -1)
		return -1;
	plan_cap(plan, first, j->cfg->janitor.max_deletions_per_cycle);
	if (plan_retirements(in, &pa, nodes->nodes, nodes->n, retire) == -1)
		return -1;
	rp->retire = retire->items;
	rp->nretire = retire->n;
	rp->agents = list->agents;
	rp->n = list->n;
	rp->nactions = plan->n - first;
	/* Why its jobs wait: the queue, and every pod of the pool. */
	rp->pods = in->all_pods;
	rp->npods = in->n_all_pods;
	names_label_value(rp->pool, rp->label);
	if (ado_list_job_requests(&j->ado, rp->id, &reqs, err, sizeof(err)) == -1)
		return (rp->queue_error = strdup(err)) == NULL ? -1 : 1;
	timing_queue(&reqs, in->now, &rp->queued, &rp->oldest);
	request_list_release(&reqs);
	return 0;
}

/* The agent Jobs that never got a pod, each with its FailedCreate Event
 * (*out owned by the caller).  Return 0; 1 when the Jobs could not be listed
 * (error says why); -1 when out of memory. */
static int
report_jobs(struct janitor *j, const struct pod_lookup *lk, time_t now, struct job_list *jobs,
    struct report_job **out, size_t *nout, char **error)
{
	const struct job_summary **found;
	char err[512];
	size_t i;

	*out = NULL;
	*nout = 0;
	if (kube_list_jobs(&j->kube, jobs, err, sizeof(err)) == -1)
		return (*error = strdup(err)) == NULL ? -1 : 1;
	if ((found = calloc(jobs->n + 1, sizeof(*found))) == NULL ||
	    (*out = calloc(jobs->n + 1, sizeof(**out))) == NULL) {
		free(found);
		return -1;
	}
	*nout = timing_jobs_without_pod(jobs, lk, j->cfg->janitor.stuck_pending_seconds, now,
	    found);
	for (i = 0; i < *nout; i++) {
		(*out)[i].job = found[i];
		if (kube_failed_create(&j->kube, found[i]->namespace, found[i]->uid,
		    (*out)[i].event, sizeof((*out)[i].event), err, sizeof(err)) == -1)
			snprintf((*out)[i].event, sizeof((*out)[i].event),
			    "(its Events could not be read: %s)", err);
	}
	free(found);
	return 0;
}

int
janitor_report(const struct janitor_options *opts, struct config *cfg, int json)
{
	struct janitor j;
	struct report_pool *pools = NULL;
	struct pod_list all_pods;
	struct plan plan;
	struct agent_list *lists = NULL;
	struct retire_plan *retire = NULL;
	struct node_list nodes;
	struct job_list jobs;
	struct report_job *rjobs = NULL;
	size_t nrjobs = 0;
	char *jobs_error = NULL;
	struct plan_input in;
	struct pod_lookup lk = { NULL, NULL, 0 };
	struct buf out;
	char err[512];
	size_t i, first;
	int rc = 2, r;

	memset(&all_pods, 0, sizeof(all_pods));
	memset(&nodes, 0, sizeof(nodes));
	memset(&jobs, 0, sizeof(jobs));
	memset(&plan, 0, sizeof(plan));
	buf_init(&out, 256 * 1024 * 1024);
	if (setup_open(&j, opts, cfg) == -1)
		goto out;
	rc = 1;
	if (kube_list_pods(&j.kube, NULL, KUBE_MANAGED_SELECTOR, NULL, 0, &all_pods, err,
	    sizeof(err)) == -1) {
		fprintf(stderr, "pipewarden-janitor report: listing managed pods failed: %s\n", err);
		goto out;
	}
	/* What a leader would plan now, from every managed pod. */
	memset(&in, 0, sizeof(in));
	in.cfg = &j.cfg->janitor;
	in.now = time(NULL);
	in.node = "";
	in.leader = 1;
	in.all_pods = all_pods.pods;
	in.n_all_pods = all_pods.n;
	in.all_pods_complete = 1;
	if (kube_list_nodes(&j.kube, &nodes, err, sizeof(err)) == -1)
		fprintf(stderr, "pipewarden-janitor report: listing nodes failed (no node-draining "
		    "retirement is shown): %s\n", err);
	pools = calloc(j.cfg->npools + 1, sizeof(*pools));
	lists = calloc(j.cfg->npools + 1, sizeof(*lists));
	retire = calloc(j.cfg->npools + 1, sizeof(*retire));
	if (pools == NULL || lists == NULL || retire == NULL || plan_lookup_init(&lk, all_pods.pods,
	    all_pods.n) == -1)
		goto nomem;
	rc = 0;
	for (i = 0; i < j.cfg->npools; i++) {
		if ((r = report_pool(&j, i, &in, &plan, &pools[i], &lists[i], &nodes,
		    &retire[i])) == -1)
			goto nomem;
		if (r == 1)
			rc = 1;
	}
	/* Each pool's actions, once the plan has stopped growing (and moving). */
	for (i = 0, first = 0; i < j.cfg->npools; i++) {
		pools[i].actions = pools[i].error == NULL ? plan.items + first : NULL;
		first += pools[i].nactions;
	}
	if ((r = report_jobs(&j, &lk, in.now, &jobs, &rjobs, &nrjobs, &jobs_error)) == -1)
		goto nomem;
	if (r == 1)
		rc = 1;
	if (report_render(&out, json, pools, j.cfg->npools, &lk, in.now, rjobs, nrjobs,
	    jobs_error) == -1)
		goto nomem;
	fwrite(out.data, 1, out.len, stdout);
	goto out;
nomem:
	fprintf(stderr, "pipewarden-janitor report: out of memory\n");
	rc = 1;
out:
	plan_lookup_release(&lk);
	for (i = 0; pools != NULL && i < j.cfg->npools; i++) {
		free((char *)pools[i].error);
		free((char *)pools[i].queue_error);
		agent_list_release(&lists[i]);
		if (retire != NULL)
			retire_plan_release(&retire[i]);
	}
	free(pools);
	free(lists);
	free(retire);
	free(rjobs);
	free(jobs_error);
	job_list_release(&jobs);
	node_list_release(&nodes);
	plan_release(&plan);
	pod_list_release(&all_pods);
	buf_release(&out);
	setup_close(&j);
	return rc;
}
