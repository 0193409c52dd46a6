/*
 * Reading the Kubernetes API's answers (janitor/kube_parse.c) from plain
 * data: what a kubelet writes in a pod's status, and what the janitor makes
 * of it (why its work ended and when, whether it is going, the agent
 * container, the owner), Jobs' conditions and Leases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/timefmt.h"
#include "../../janitor/kube_parse.h"
#include "check.h"

#define T(s)	"\"" s "\""
#define META(name, extra) "\"metadata\":{\"name\":" T(name) ",\"namespace\":\"ci\",\"uid\":" \
	T("u-" name) ",\"creationTimestamp\":\"2026-09-01T11:00:00Z\"" extra "}"
#define JOB_OWNER ",\"ownerReferences\":[{\"apiVersion\":\"batch/v1\",\"kind\":\"Job\"," \
	"\"name\":\"j\",\"uid\":\"ju\",\"controller\":true}]"
#define AGENT(state) "{\"name\":\"agent\"," state "}"

static const char pods[] = "{\"kind\":\"PodList\",\"apiVersion\":\"v1\","
    "\"metadata\":{\"resourceVersion\":\"9\",\"continue\":\"next-page\"},\"items\":["
    /* 0: OOM-killed, the container's own state */
    "{" META("oom", JOB_OWNER) ",\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Failed\",\"containerStatuses\":[" AGENT("\"state\":{\"terminated\":"
    "{\"exitCode\":137,\"reason\":\"OOMKilled\",\"finishedAt\":\"2026-09-01T11:50:00Z\"}}") "]}},"
    /* 1: restarted after an OOM kill: running, the death in lastState */
    "{" META("restarted", "") ",\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[" AGENT("\"state\":{\"running\":"
    "{\"startedAt\":\"2026-09-01T11:40:01Z\"}},\"lastState\":{\"terminated\":{\"exitCode\":137,"
    "\"reason\":\"OOMKilled\",\"finishedAt\":\"2026-09-01T11:40:00Z\"}},\"restartCount\":1") "]}},"
    /* 2: evicted by its kubelet */
    "{" META("evicted", "") ",\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Failed\",\"reason\":\"Evicted\",\"conditions\":[{\"type\":"
    "\"DisruptionTarget\",\"status\":\"True\",\"reason\":\"TerminationByKubelet\"}]}},"
    /* 3: preempted (its DisruptionTarget deletes it) */
    "{" META("preempted", "") ",\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Running\",\"conditions\":[{\"type\":\"DisruptionTarget\","
    "\"status\":\"True\",\"reason\":\"PreemptionByScheduler\"}]}},"
    /* 4: an image that cannot be pulled; an init container that crash-loops */
    "{" META("stuck", "") ",\"spec\":{\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Pending\",\"conditions\":[{\"type\":\"PodScheduled\","
    "\"status\":\"False\",\"reason\":\"Unschedulable\"}],\"containerStatuses\":["
    AGENT("\"state\":{\"waiting\":{\"reason\":\"ImagePullBackOff\"}}") "]}},"
    "{" META("init-loop", "") ",\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"agent\"}]},"
    "\"status\":{\"phase\":\"Pending\",\"initContainerStatuses\":[{\"name\":\"setup\","
    "\"state\":{\"waiting\":{\"reason\":\"CrashLoopBackOff\"}}}],\"containerStatuses\":["
    AGENT("\"state\":{\"waiting\":{\"reason\":\"PodInitializing\"}}") "]}},"
    /* 6: the agent is the annotated container; a sidecar keeps the pod
     * Running after it ended; the janitor's annotations */
    "{" META("sidecar", ",\"annotations\":{\"pipewarden.io/container\":\"runner\","
    "\"pipewarden.io/job-request-id\":\"1400031\",\"pipewarden.io/interruption\":"
    "\"1400031:OOMKilled\"},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\","
    "\"kind\":\"ReplicaSet\",\"name\":\"rs\",\"uid\":\"rsu\",\"controller\":true}]") ","
    "\"spec\":{\"nodeName\":\"n\",\"containers\":[{\"name\":\"log\"},{\"name\":\"runner\"}]},"
    "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"log\",\"state\":"
    "{\"running\":{}}},{\"name\":\"runner\",\"state\":{\"terminated\":{\"exitCode\":0,"
    "\"reason\":\"Completed\",\"finishedAt\":\"2026-09-01T11:55:00Z\"}}}]}},"
    /* 7: an owner without a uid cannot be addressed */
    "{" META("no-owner-uid", ",\"ownerReferences\":[{\"apiVersion\":\"batch/v1\","
    "\"kind\":\"Job\",\"name\":\"j\",\"controller\":true}]") ",\"spec\":{\"containers\":[]},"
    "\"status\":{\"phase\":\"Pending\"}}"
    "]}";

static const struct pod_info *
find(const struct pod_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->pods[i].name, name) == 0)
			return &l->pods[i];
	return NULL;
}

static time_t
at(const char *s)
{
	time_t t = 0;

	time_parse(s, &t, NULL);
	return t;
}

static void
test_pods(void)
{
	struct pod_list l;
	const struct pod_info *p;
	char err[256], *cont = NULL;

	memset(&l, 0, sizeof(l));
	CHECK(kube_parse_pods(&l, pods, strlen(pods), &cont, err, sizeof(err)) == 0);
	CHECK(l.n == 8 && cont != NULL && strcmp(cont, "next-page") == 0);
	free(cont);

	p = find(&l, "oom");
	CHECK(p != NULL && strcmp(p->end_reason, "OOMKilled") == 0 &&
	    p->end_time == at("2026-09-01T11:50:00Z") && p->owner == OWNER_JOB &&
	    strcmp(p->owner_uid, "ju") == 0 && p->phase == PHASE_FAILED && !p->going);
	/* The death of the job before, with its own time: the plan compares
	 * it with the current request's assignTime. */
	p = find(&l, "restarted");
	CHECK(p != NULL && p->end_reason != NULL && strcmp(p->end_reason, "OOMKilled") == 0 &&
	    p->end_time == at("2026-09-01T11:40:00Z") && p->agent_finished == 0 &&
	    p->owner == OWNER_NONE);
	p = find(&l, "evicted");
	CHECK(p != NULL && strcmp(p->end_reason, "Evicted") == 0 && p->end_time == 0 && !p->going);
	p = find(&l, "preempted");
	CHECK(p != NULL && strcmp(p->end_reason, "Preempted") == 0 && p->going);
	p = find(&l, "stuck");
	CHECK(p != NULL && p->waiting_error && p->unschedulable && p->node[0] == '\0' &&
	    p->end_reason == NULL);
	p = find(&l, "init-loop");
	CHECK(p != NULL && p->waiting_error);
	p = find(&l, "sidecar");
	CHECK(p != NULL && p->agent_finished == at("2026-09-01T11:55:00Z") &&
	    p->owner == OWNER_OTHER && strcmp(p->job.request_id, "1400031") == 0 &&
	    strcmp(p->interruption, "1400031:OOMKilled") == 0 && p->end_reason == NULL);
	p = find(&l, "no-owner-uid");
	CHECK(p != NULL && p->owner == OWNER_OTHER);
	pod_list_release(&l);

	CHECK(kube_parse_pods(&l, "{\"kind\":\"Status\"}", 17, &cont, err, sizeof(err)) == -1);
	pod_list_release(&l);
}

static void
test_job_and_lease(void)
{
	static const char running[] = "{\"kind\":\"Job\",\"metadata\":{\"uid\":\"ju\"},"
	    "\"status\":{\"conditions\":[{\"type\":\"Suspended\",\"status\":\"False\"}]}}";
	static const char failed[] = "{\"kind\":\"Job\",\"metadata\":{\"uid\":\"ju\"},"
	    "\"status\":{\"conditions\":[{\"type\":\"FailureTarget\",\"status\":\"True\"}]}}";
	static const char lease[] = "{\"metadata\":{\"resourceVersion\":\"42\"},\"spec\":"
	    "{\"holderIdentity\":\"janitor-1\",\"leaseDurationSeconds\":135,"
	    "\"renewTime\":\"2026-09-01T11:59:00.123456Z\",\"leaseTransitions\":3}}";
	struct job_info j;
	struct lease l;
	char err[256];

	CHECK(kube_parse_job(running, strlen(running), &j, err, sizeof(err)) == 0 &&
	    j.exists && !j.finished && strcmp(j.uid, "ju") == 0);
	CHECK(kube_parse_job(failed, strlen(failed), &j, err, sizeof(err)) == 0 && j.finished);
	CHECK(kube_parse_job("{\"kind\":\"Pod\"}", 14, &j, err, sizeof(err)) == -1);
	CHECK(kube_parse_lease(lease, strlen(lease), &l, err, sizeof(err)) == 0 &&
	    strcmp(l.holder, "janitor-1") == 0 && l.duration == 135 && l.transitions == 3 &&
	    l.renew == at("2026-09-01T11:59:00Z") && l.renew_ns == 123456000 &&
	    strcmp(l.resource_version, "42") == 0);
}

int
main(void)
{
	test_pods();
	test_job_and_lease();
	return check_done();
}
