#!/usr/bin/python3
"""End-to-end tests of bin/pipewarden-janitor against the simulators.

Each scenario sets simulator state and faults, runs the real binary over
real TLS (mostly --once), and asserts what was deleted -- usually that
nothing wrong was -- plus exit codes, logs, Events, the Lease and metrics.

usage: test_janitor.py --bin BIN [--results FILE] [--wrapper "valgrind ..."] [--suite NAME]
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import sim  # noqa: E402

ARGS = None
SCALE = 1.0
VALGRIND_ERRORS = []
SANITIZER_REPORTS = []
NODE = "node-a"
NS = "pipewarden-system"


class Env:
    """Certificates, simulators, token files and a config for one scenario."""

    def __init__(self, tmp, cfg=None, wi=False):
        self.dir = tempfile.mkdtemp(dir=tmp)
        lib.make_certs(os.path.join(self.dir, "certs"))
        certdir = os.path.join(self.dir, "certs")
        self.ca = os.path.join(certdir, "ca.crt")
        self.kube = sim.KubeSim(certdir)
        self.ado = sim.AdoSim(certdir)
        self.ado.pools["aks-pool"] = 12
        self.ado.agents[12] = []
        self.token_file = self.write("kube-token", self.kube.token + "\n")
        self.pat_file = self.write("pat", self.ado.pat + "\n")
        self.assertion_file = self.write("federated-token", self.ado.assertion)
        self.wi = wi
        with open(lib.DEFAULT_CONFIG) as f:
            c = json.load(f)
        # Workload identity works with Azure DevOps Services only.
        c["organizationUrl"] = self.ado.services_url if wi else self.ado.url
        c["pools"] = ["aks-pool"]
        c["janitor"]["intervalSeconds"] = 1
        self.config_obj = lib.deep_merge(c, cfg or {})
        self.config = self.write("config.json", json.dumps(self.config_obj))

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def command(self, extra=None, kube_url=None):
        cmd = shlex.split(ARGS.wrapper) if ARGS.wrapper else []
        return cmd + [ARGS.bin, "--config", self.config, "--node", NODE,
                      "--kube-api", kube_url or self.kube.url, "--kube-token-file", self.token_file,
                      "--kube-ca", self.ca, "--ado-ca", self.ca] + (extra or [])

    def environ(self, identity="janitor-1", extra=None):
        e = sim.janitor_environ(self.ado, identity, NS, self.wi, self.pat_file, self.assertion_file)
        e.update(extra or {})
        return e

    def once(self, extra=None, identity="janitor-1", env=None, kube_url=None, timeout=120):
        p = subprocess.run(self.command(["--once"] + (extra or []), kube_url),
                           env=self.environ(identity, env), capture_output=True, text=True,
                           timeout=timeout * SCALE)
        if "Sanitizer" in p.stderr or "runtime error:" in p.stderr:
            SANITIZER_REPORTS.append(p.stderr[-3000:])
        if ARGS.wrapper and p.returncode == 99:
            VALGRIND_ERRORS.append(p.stderr[-3000:])
            return 0 if "cycle done" in p.stderr and '"failed":"false"' in p.stderr else 1, p.stderr
        return p.returncode, "\n".join(l for l in p.stderr.splitlines() if not l.startswith("=="))

    def agent_ids(self):
        return sorted(a["id"] for a in self.ado.agents[12])

    def pod_names(self):
        """The pods not deleted (a bound pod at work stays Terminating)."""
        return sorted(p["metadata"]["name"] for p in self.kube.pods
                      if not p["metadata"].get("deletionTimestamp"))

    def mark(self):
        return (len(self.kube.server.requests()), len(self.ado.server.requests()))

    def writes(self, since=(0, 0)):
        """Every request that writes, to either API, since a mark()."""
        k = [r for r in self.kube.server.requests()[since[0]:]
             if r[0] in ("POST", "PUT", "DELETE", "PATCH")]
        a = [r for r in self.ado.server.requests()[since[1]:]
             if r[0] in ("POST", "PUT", "DELETE", "PATCH") and "/oauth2/" not in r[1]]
        return k + a

    def stop(self):
        self.kube.stop()
        self.ado.stop()


def standard_state(env):
    """A node and a pool with one of each case."""
    k = env.kube
    k.add_pod(sim.pod("job-done-old-x1", phase="Succeeded", finished_ago=1000))
    k.add_pod(sim.pod("job-done-young-x2", phase="Succeeded", finished_ago=60))
    k.add_pod(sim.pod("job-running-x3", phase="Running"))
    k.add_pod(sim.pod("job-oom-x4", phase="Failed", finished_ago=900))
    k.add_pod(sim.pod("bare-stuck", phase="Pending", created_ago=2000, owner=None,
                      waiting="ImagePullBackOff"))
    k.add_pod(sim.pod("bare-pulling", phase="Pending", created_ago=2000, owner=None))
    k.add_pod(sim.pod("rs-stuck-abcde", phase="Pending", created_ago=2000, owner="ReplicaSet",
                      owner_name="rs-1", waiting="ErrImagePull"))
    k.add_pod(sim.pod("sidecar-x5", phase="Running", agent_finished_ago=900, sidecar=True))
    k.add_pod(sim.pod("terminating-x6", phase="Succeeded", finished_ago=5000, deleting=True))
    k.add_pod(sim.pod("other-node-done-x7", node="node-b", phase="Succeeded", finished_ago=5000))
    k.add_pod(sim.pod("unschedulable-x8", node=None, phase="Pending", created_ago=4000,
                      unschedulable=True))
    k.add_pod(sim.pod("awaiting-node-x9", node=None, phase="Pending", created_ago=2000,
                      unschedulable=True))
    k.add_pod(sim.pod("live-agent-pod", node="node-b", phase="Running", uid="uid-live"))
    a = env.ado.agents[12]
    a += [sim.agent(1, "dead-1", changed_ago=3600, pod_uid="uid-gone-1"),
          sim.agent(2, "dead-2", changed_ago=90000, pod_uid="uid-gone-2"),
          sim.agent(3, "busy", changed_ago=3600, busy=True, pod_uid="uid-gone-3"),
          sim.agent(4, "online", status="online", pod_uid="uid-gone-4"),
          sim.agent(5, "young", changed_ago=30, pod_uid="uid-gone-5"),
          sim.agent(6, "disabled", changed_ago=3600, enabled=False, pod_uid="uid-gone-6"),
          sim.agent(7, "vm-agent", changed_ago=3600, managed=False),
          sim.agent(8, "keda-placeholder-aks-pool", changed_ago=None, created_ago=9000000,
                    pod_uid="uid-gone-8"),
          sim.agent(9, "backed-by-live-pod", changed_ago=3600, pod_uid="uid-live"),
          sim.agent(10, "job-running-x3", status="online", busy=True, pod_uid="uid-job-running-x3")]


def held_by_another(env):
    """The Lease, renewed 5 s ago by another replica (its 4th holder)."""
    now = time.time()
    env.kube.leases[(NS, "pipewarden-janitor")] = {
        "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "pipewarden-janitor", "namespace": NS, "resourceVersion": "100", "uid": "l"},
        "spec": {"holderIdentity": "janitor-other", "leaseDurationSeconds": 60,
                 "acquireTime": sim.now_rfc3339(now - 100, True),
                 "renewTime": sim.now_rfc3339(now - 5, True), "leaseTransitions": 4}}


# terminating-x6 is not counted: it was deleted before the cycle (and the
# DELETEs checked below never name it).
EXPECT_PODS_LEFT = ["awaiting-node-x9", "bare-pulling", "job-done-young-x2", "job-running-x3",
                    "live-agent-pod", "other-node-done-x7", "rs-stuck-abcde"]
EXPECT_AGENTS_LEFT = [3, 4, 5, 6, 7, 8, 9, 10]
ALL_AGENTS = list(range(1, 11))


def test_standard_cycle(res, tmp):
    env = Env(tmp)
    standard_state(env)
    rc, log = env.once()
    res.check(rc == 0, "a clean cycle exits 0", log[-1500:])
    res.check(env.pod_names() == EXPECT_PODS_LEFT, "pods deleted are exactly the finished and stuck ones of this node",
              str(env.pod_names()))
    res.check(env.agent_ids() == EXPECT_AGENTS_LEFT, "agents deleted are exactly the dead managed ones",
              str(env.agent_ids()))
    jobs = [r for r in env.kube.server.requests("DELETE", "/apis/batch/v1/")]
    res.check(len(jobs) == 4, "Job-owned pods go by deleting their Job (4 Jobs)", str(len(jobs)))
    res.check(all(json.loads(r[4]).get("propagationPolicy") == "Background" and
                  json.loads(r[4])["preconditions"]["uid"].startswith("owner-") for r in jobs),
              "Job deletes carry Background propagation and the Job's UID precondition")
    pods = env.kube.server.requests("DELETE", "/api/v1/namespaces/")
    res.check([r[1].rsplit("/", 1)[1] for r in pods] == ["bare-stuck"],
              "a bare pod is deleted itself; a ReplicaSet's Pending pod is not",
              str([r[1] for r in pods]))
    res.check(json.loads(pods[0][4])["preconditions"]["uid"] == "uid-bare-stuck",
              "pod deletes carry the pod's UID precondition")
    res.check(len(env.kube.events) == 5 and all(e["involvedObject"]["kind"] == "Pod" and
                                                "pipewarden-janitor deleted" in e["message"]
                                                for e in env.kube.events),
              "an Event for every deletion", str(len(env.kube.events)))
    lists = env.kube.server.requests("GET", "/api/v1/pods")
    node_lists = [r for r in lists if r[2].get("fieldSelector") == "spec.nodeName=" + NODE]
    res.check(node_lists and all(r[2].get("resourceVersion") == "0" for r in node_lists),
              "the node's list uses resourceVersion=0 (the API server's cache)")
    agent_reads = env.ado.server.requests("GET", "/contoso/_apis/distributedtask/pools/12/agents")
    agent_lists = [r for r in agent_reads if r[1].endswith("/agents")]
    res.check(len(agent_lists) == 1 and agent_lists[0][2].get("includeAssignedRequest") == "true" and
              agent_lists[0][2].get("includeCapabilities") == "true" and "demands" not in agent_lists[0][2],
              "one agents list per pool, with includeAssignedRequest and includeCapabilities, never demands")
    deletes = env.ado.server.requests("DELETE", "/contoso/_apis/distributedtask/pools/12/agents/")
    rereads = [r for r in agent_reads if not r[1].endswith("/agents")]
    log_ado = env.ado.server.requests()
    res.check(len(rereads) == len(deletes) > 0 and
              all(r[2].get("includeCapabilities") == "true" and r[2].get("includeAssignedRequest") == "true"
                  for r in rereads) and
              all(log_ado.index(d) == log_ado.index(g) + 1 for g, d in zip(rereads, deletes)) and
              all(g[1] == d[1] for g, d in zip(rereads, deletes)),
              "each agent DELETE right after a read of that agent, with the same includes")
    res.check(all(r[2].get("api-version") == "7.1" for r in log_ado if "/oauth2/" not in r[1]),
              "every Azure DevOps call carries api-version=7.1 (janitor.apiVersion)")
    res.check(env.ado.server.requests()[0][3].get("X-TFS-FedAuthRedirect") == "Suppress",
              "Azure DevOps requests ask for no sign-in redirect")
    lease = env.kube.leases.get((NS, "pipewarden-janitor"))
    res.check(lease is not None and lease["spec"]["holderIdentity"] == "" and
              lease["spec"]["leaseDurationSeconds"] == 1,
              "the Lease was taken, then released on exit (holder '', duration 1)",
              json.dumps(lease and lease["spec"]))
    for line in log.splitlines():
        json.loads(line)
    res.check('"msg":"deleted"' in log and '"reason":"finished"' in log and
              '"reason":"offline"' in log, "every deletion is logged with its reason")
    res.check(env.ado.pat not in log and env.kube.token not in log, "no token in the log")
    # The next cycle has nothing left to do.
    before = env.mark()
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT and env.pod_names() == EXPECT_PODS_LEFT,
              "a second cycle changes nothing")
    res.check(all("/leases" in r[1] for r in env.writes(before)), "a second cycle writes only the Lease",
              str([(r[0], r[1]) for r in env.writes(before)]))
    env.stop()


def test_job_retry(res, tmp):
    """A Job whose first pod failed and whose retry runs elsewhere: deleting
    the Job would kill the retry's agent mid-pipeline."""
    env = Env(tmp)
    k = env.kube
    k.add_pod(sim.pod("agent-job-7-aaaaa", phase="Failed", finished_ago=2000, owner_name="agent-job-7"))
    k.add_pod(sim.pod("agent-job-7-bbbbb", node="node-b", phase="Running", created_ago=1990,
                      owner_name="agent-job-7"))
    k.add_pod(sim.pod("agent-job-8-ccccc", phase="Failed", finished_ago=2000, owner_name="agent-job-8"))
    rc, log = env.once()
    res.check(rc == 0 and env.pod_names() == ["agent-job-7-aaaaa", "agent-job-7-bbbbb"],
              "a Job with a pod still running elsewhere is kept; a Job with none is deleted",
              str(env.pod_names()) + log[-600:])
    sibling_lists = [r for r in k.server.requests("GET", "/api/v1/namespaces/ci-agents/pods")
                     if "controller-uid" in r[2].get("labelSelector", "")]
    res.check(len(sibling_lists) == 2 and all(
        r[2]["labelSelector"] == "batch.kubernetes.io/controller-uid=owner-agent-job-%s" % n and
        r[2].get("resourceVersion") == "0" for r, n in zip(sibling_lists, ("7", "8"))),
        "each Job's pods are listed in its namespace by its controller-uid, from the cache, before it is deleted",
        str([r[2] for r in sibling_lists]))
    res.check('"reason":"job-has-live-pod"' in log, "the log says why the Job stays")
    # The retry finishes: now the Job goes, with both pods.
    k.pod("agent-job-7-bbbbb")["status"] = sim.pod("x", phase="Succeeded", finished_ago=1000)["status"]
    rc, log = env.once()
    res.check(rc == 0 and env.pod_names() == [], "once every pod of the Job is done, the Job goes",
              str(env.pod_names()))
    # Pods without the controller-uid label (Kubernetes before 1.27): the
    # Job's pods cannot be seen, so the Job is not touched.
    old = sim.pod("agent-job-10-eeeee", phase="Failed", finished_ago=2000, owner_name="agent-job-10")
    del old["metadata"]["labels"]["batch.kubernetes.io/controller-uid"]
    k.add_pod(old)
    rc, log = env.once()
    res.check(rc == 0 and env.pod_names() == ["agent-job-10-eeeee"] and '"reason":"job-pods-unknown"' in log,
              "a Job whose pods lack the controller-uid label is kept", log[-600:])
    k.pods.clear()
    # The list of a Job's pods fails: the Job is kept and the cycle says so.
    k.add_pod(sim.pod("agent-job-9-ddddd", phase="Failed", finished_ago=2000, owner_name="agent-job-9"))
    real = k.list_pods

    def failing(q, ns=None):
        if "controller-uid" in q.get("labelSelector", ""):
            return 500, {}, sim.status_body(500, "InternalError", "Internal error occurred")
        return real(q, ns)
    k.list_pods = failing
    rc, log = env.once()
    res.check(rc == 1 and env.pod_names() == ["agent-job-9-ddddd"],
              "a failed list of a Job's pods keeps the Job and exits 1", log[-600:])
    k.list_pods = real
    env.stop()


def test_job_backoff(res, tmp):
    """The Job controller's back-off between a failed pod and its retry (10 s,
    20 s ... up to six minutes): the Job has no live pod and no terminal
    condition, and must survive; once it is Failed (or Complete) it goes."""
    env = Env(tmp)
    k = env.kube
    k.add_pod(sim.pod("agent-job-11-aaaaa", phase="Failed", finished_ago=2000, owner_name="agent-job-11"))
    k.add_pod(sim.pod("agent-job-11-bbbbb", phase="Failed", finished_ago=5, owner_name="agent-job-11"))
    k.job_backoff.add(("ci-agents", "agent-job-11"))
    rc, log = env.once()
    res.check(rc == 0 and len(env.pod_names()) == 2 and '"reason":"job-not-finished"' in log,
              "a Job between retries is kept (job-not-finished)", str(env.pod_names()) + log[-600:])
    gets = k.server.requests("GET", "/apis/batch/v1/namespaces/ci-agents/jobs/agent-job-11")
    res.check(len(gets) == 1, "the Job is read (GET) before it would be deleted", str(len(gets)))
    k.job_backoff.clear()          # the back-off limit is reached: Failed
    rc, log = env.once()
    res.check(rc == 0 and env.pod_names() == [], "the Job goes once it has a terminal condition",
              str(env.pod_names()) + log[-400:])
    # A stuck retry: the Job goes without a terminal condition.
    k.add_pod(sim.pod("agent-job-12-aaaaa", phase="Failed", finished_ago=2000, owner_name="agent-job-12"))
    k.add_pod(sim.pod("agent-job-12-bbbbb", phase="Pending", created_ago=2000, owner_name="agent-job-12",
                      waiting="ImagePullBackOff"))
    k.job_backoff.add(("ci-agents", "agent-job-12"))
    rc, log = env.once()
    res.check(rc == 0 and env.pod_names() == [], "a Job whose retry is stuck Pending goes",
              str(env.pod_names()) + log[-400:])
    # The Job cannot be read: kept, and the cycle says an API error left work undone.
    k.add_pod(sim.pod("agent-job-13-aaaaa", phase="Failed", finished_ago=2000, owner_name="agent-job-13"))
    real = k.get_job
    k.get_job = lambda ns, name: (500, {}, sim.status_body(500, "InternalError", "etcdserver: request timed out"))
    rc, log = env.once()
    res.check(rc == 1 and env.pod_names() == ["agent-job-13-aaaaa"],
              "a failed GET of the Job keeps it and exits 1", log[-600:])
    k.get_job = real
    env.stop()


def test_dry_run(res, tmp):
    env = Env(tmp)
    standard_state(env)
    rc, log = env.once(["--dry-run"])
    res.check(rc == 0, "--dry-run exits 0", log[-800:])
    res.check(env.writes() == [], "--dry-run writes nothing to either API (no delete, no Event, no Lease)",
              str([(r[0], r[1]) for r in env.writes()]))
    res.check(log.count('"msg":"would delete"') == 7, "--dry-run logs each would-be deletion",
              str(log.count('"msg":"would delete"')))
    res.check('"msg":"keep"' in log and '"reason":"busy"' in log and '"reason":"keep-agents"' in log,
              "--dry-run logs what it keeps and why")
    env.stop()


def test_outages(res, tmp):
    env = Env(tmp)
    standard_state(env)
    closed = "https://127.0.0.1:%d" % lib.free_port()
    rc, log = env.once(kube_url=closed)
    res.check(rc == 1 and env.writes() == [], "Kubernetes API down: exit 1, nothing deleted", log[-600:])
    env.ado.faults["error_5xx"] = 100
    rc, log = env.once()
    res.check(rc == 1, "Azure DevOps 5xx: exit 1")
    res.check(env.agent_ids() == ALL_AGENTS,
              "Azure DevOps 5xx after retries: no agent is deleted")
    res.check(env.pod_names() == EXPECT_PODS_LEFT,
              "an Azure DevOps outage holds no pod deletion (node and unscheduled pods)",
              str(env.pod_names()))
    res.check('"pool":"aks-pool","reason":"unavailable"' in log and
              "none of its agents is deleted this cycle" in log,
              "the log names the pool and why none of its agents was deleted", log[-500:])
    env.ado.faults.clear()
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT, "the next healthy cycle recovers")
    env.stop()


def test_ado_faults(res, tmp):
    env = Env(tmp)
    standard_state(env)
    # A bad PAT: 203 and the sign-in page.
    env.write("pat", "PWTESTPAT-wrong-wrong-wrong\n")
    rc, log = env.once()
    res.check(rc == 1 and env.agent_ids() == ALL_AGENTS,
              "a bad PAT (203 sign-in page) deletes no agent")
    res.check("authentication failed" in log and "sign-in page" in log and '"pool":"aks-pool"' in log,
              "the 203 is reported as an authentication error, with the pool", log[-800:])
    res.check("PWTESTPAT-wrong" not in log, "the bad PAT is not logged")
    env.write("pat", env.ado.pat)
    # Malformed JSON.
    env.ado.faults["malformed"] = True
    rc, log = env.once()
    res.check(rc == 1 and env.agent_ids() == ALL_AGENTS, "truncated JSON deletes nothing")
    env.ado.faults.clear()
    # 429 with Retry-After, twice, then fine.
    env.ado.faults["throttle"] = 2
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT,
              "429 with Retry-After is waited out and retried", log[-600:])
    env.stop()


def test_metrics(res, tmp):
    env = Env(tmp)
    standard_state(env)
    env.ado.faults["throttle"] = 1
    port = lib.free_port()
    p = subprocess.Popen(env.command(["--metrics-port", str(port)]), env=env.environ(),
                         stderr=subprocess.PIPE, text=True)
    lib.wait_until(lambda: lib.port_open(port), 30 * SCALE, "metrics port")
    lib.wait_until(lambda: 'pipewarden_janitor_agents_deleted_total{pool="aks-pool",reason="offline"} 2'
                   in lib.http_get(port, "/metrics")[1], 60 * SCALE, "deletions counted")
    text = lib.http_get(port, "/metrics")[1]
    for name in ("pipewarden_janitor_agents_deleted_total", "pipewarden_janitor_agents_kept_total",
                 "pipewarden_janitor_pods_deleted_total", "pipewarden_janitor_agents",
                 "pipewarden_janitor_reconcile_duration_seconds", "pipewarden_janitor_ado_requests_total",
                 "pipewarden_janitor_is_leader", "pipewarden_config_reload_errors_total"):
        res.check("# TYPE %s " % name in text, "metric " + name)
    res.check('pipewarden_janitor_is_leader 1' in text, "is_leader is 1 for the leader")
    res.check('pipewarden_janitor_agents_kept_total{pool="aks-pool",reason="busy"}' in text and
              'reason="keep-agents"' in text and 'reason="unmanaged"' in text,
              "kept agents are counted by reason")
    res.check('pipewarden_janitor_pods_deleted_total{reason="finished"} 2' in text and
              'pipewarden_janitor_pods_deleted_total{reason="agent-finished"} 1' in text,
              "pods deleted are counted by reason")
    res.check('pipewarden_janitor_ado_requests_total{code="429"} 1' in text, "ADO requests counted by code")
    res.check('pipewarden_janitor_agents{pool="aks-pool",status="online"} 2' in text, "agents gauge")
    res.check(env.ado.pat not in text and env.kube.token not in text and env.ado.bearer not in text,
              "no secret in the metrics")
    if shutil.which("promtool"):
        pr = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        res.check(pr.returncode == 0, "promtool check metrics", pr.stdout + pr.stderr)
    # SIGTERM: exits 0 and releases the Lease.
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=30 * SCALE)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    log = p.stderr.read()
    res.check(rc == 0, "SIGTERM: exit 0", log[-800:])
    lease = env.kube.leases[(NS, "pipewarden-janitor")]
    res.check(lease["spec"]["holderIdentity"] == "", "SIGTERM releases the Lease")
    env.stop()


def test_kube_faults(res, tmp):
    env = Env(tmp)
    standard_state(env)
    # The cluster-wide list fails on its first page (a 500); a failure on
    # page 2 is test_paging's, with real 500-item pages.
    env.kube.faults["fail_page"] = 1
    rc, log = env.once()
    res.check(rc == 1 and env.agent_ids() == ALL_AGENTS,
              "a failed pod list deletes no agent", log[-600:])
    env.kube.faults.clear()
    # Wrong token: 401.
    env.write("kube-token", "PWTESTkube-wrong-token")
    before = env.mark()
    rc, log = env.once()
    res.check(rc == 1 and env.writes(before) == [], "a rejected token (401) deletes nothing")
    res.check("PWTESTkube-wrong-token" not in log, "the token is not logged")
    env.write("kube-token", env.kube.token)
    env.kube.faults["too_many"] = 2
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT and env.kube.faults["too_many"] == 0,
              "the API server's plain-text 429 is waited out (Retry-After) and the cycle completes",
              log[-600:])
    env.kube.faults.clear()
    env.kube.add_pod(sim.pod("bare-stuck-2", phase="Pending", created_ago=2000, owner=None,
                             waiting="CreateContainerConfigError"))
    # A pod replaced between list and delete: 409 is not an error.
    real = env.kube.delete_pod

    def replaced(ns, name, body):
        p = env.kube.pod(name)
        if p is not None:
            p["metadata"]["uid"] = "uid-new-" + name
        return real(ns, name, body)
    env.kube.delete_pod = replaced
    rc, log = env.once()
    res.check("bare-stuck-2" in env.pod_names() and "replaced since it was listed" in log,
              "a pod replaced since it was listed is not deleted (409)")
    res.check(rc == 0, "a failed precondition is not an error")
    env.kube.delete_pod = real
    env.stop()


def test_paging(res, tmp):
    env = Env(tmp)
    standard_state(env)
    # Real paging: 600 managed pods elsewhere make the 500-item pages.
    for i in range(600):
        env.kube.add_pod(sim.pod("page-%03d" % i, node="node-c", phase="Running"))
    env.kube.faults["expire_continue"] = 1
    rc, log = env.once()
    gets = [r for r in env.kube.server.requests("GET", "/api/v1/pods") if "fieldSelector" not in r[2] and
            r[2]["labelSelector"] == "pipewarden.io/managed=true"]
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT,
              "an expired continue token (410) restarts the list, and the cycle completes", log[-600:])
    res.check(len(gets) == 4, "list restarted after 410: page 1, 410, page 1, page 2", str(len(gets)))
    env.kube.faults["fail_page"] = 2
    env.ado.agents[12].append(sim.agent(20, "dead-20", changed_ago=3600, pod_uid="uid-gone-20"))
    rc, log = env.once()
    res.check(rc == 1 and 20 in env.agent_ids(), "a pod list that fails on page 2 deletes no agent")
    env.stop()


def test_busy_race(res, tmp):
    env = Env(tmp)
    standard_state(env)
    real = env.ado.delete_agent

    def became_busy(pid, aid):
        for a in env.ado.agents[pid]:
            if a["id"] == aid:
                a["assignedRequest"] = {"requestId": 1, "planType": "Build"}
        return real(pid, aid)
    env.ado.delete_agent = became_busy
    rc, log = env.once()
    res.check(rc == 0 and 1 in env.agent_ids() and 2 in env.agent_ids(),
              "an agent that took a job since it was listed is kept (400 running a job)")
    res.check("running a job" in log, "the busy answer is logged")
    env.stop()


def test_leases(res, tmp):
    env = Env(tmp)
    standard_state(env)
    held_by_another(env)
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == ALL_AGENTS,
              "a Lease held by another replica: no pool work")
    res.check("unschedulable-x8" in env.pod_names() and "bare-stuck" not in env.pod_names(),
              "node work goes on without the Lease; unscheduled pods are the leader's")
    env.kube.leases[(NS, "pipewarden-janitor")]["spec"]["renewTime"] = sim.now_rfc3339(time.time() - 120, True)
    rc, log = env.once()
    lease = env.kube.leases[(NS, "pipewarden-janitor")]
    res.check(env.agent_ids() == EXPECT_AGENTS_LEFT and lease["spec"]["leaseTransitions"] == 5,
              "an expired Lease is taken over (leaseTransitions + 1)", json.dumps(lease["spec"]))
    # Two and three janitors racing for a free Lease: one does pool work.
    for n in (2, 3):
        env2 = Env(tmp)
        standard_state(env2)
        procs = [subprocess.Popen(env2.command(["--once"]), env=env2.environ("racer-%d" % i),
                                  stderr=subprocess.PIPE, text=True) for i in range(n)]
        logs = [p.communicate(timeout=120 * SCALE)[1] for p in procs]
        # (a --once janitor releases the Lease as it exits, so a slower
        # racer may lead after it: never two at once, never an agent twice)
        leaders = sum('"leader":"true"' in l for l in logs)
        deletes = [r[1] for r in env2.ado.server.requests() if r[0] == "DELETE"]
        res.check(leaders >= 1 and len(deletes) == len(set(deletes)) == 2,
                  "%d janitors racing: the Lease holders delete each dead agent once" % n,
                  "%d leaders, %s" % (leaders, deletes))
        res.check(env2.agent_ids() == EXPECT_AGENTS_LEFT, "%d janitors racing: the right agents go" % n)
        env2.stop()
    env.stop()


def test_workload_identity(res, tmp):
    env = Env(tmp, wi=True)
    standard_state(env)
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT, "workload identity: the cycle works", log[-800:])
    res.check(env.ado.token_requests == 1, "one token exchange, then the cached token",
              str(env.ado.token_requests))
    res.check(env.ado.bearer not in log and env.ado.assertion not in log,
              "neither the Entra token nor the federated token is logged")
    for r in env.ado.server.requests():
        if "/oauth2/" not in r[1]:
            res.check(env.ado.assertion not in json.dumps(r[3]) and
                      (r[3].get("Authorization") or "") == "Bearer " + env.ado.bearer,
                      "Azure DevOps gets the Entra token, never the federated token")
            break
    env.write("federated-token", "expired-assertion")
    env.ado.agents[12].append(sim.agent(30, "dead-30", changed_ago=3600, pod_uid="uid-gone-30"))
    rc, log = env.once()
    res.check(rc == 1 and 30 in env.agent_ids(), "Entra refusing the assertion deletes nothing")
    res.check("AADSTS700024" in log and "expired-assertion" not in log,
              "the Entra error is logged, the assertion is not")
    env.stop()


def test_lease_lost_mid_cycle(res, tmp):
    env = Env(tmp)
    standard_state(env)
    real = env.ado.list_agents

    def stolen(pid, q):
        # While the leader reads the pool, another replica takes the Lease.
        lease = env.kube.leases.get((NS, "pipewarden-janitor"))
        if lease is not None:
            lease["spec"]["holderIdentity"] = "janitor-thief"
            lease["spec"]["renewTime"] = sim.now_rfc3339(time.time(), True)
            lease["metadata"]["resourceVersion"] = env.kube.next_rv()
        return real(pid, q)
    env.ado.list_agents = stolen
    rc, log = env.once()
    res.check(env.agent_ids() == ALL_AGENTS,
              "a Lease lost mid-cycle: no agent is deleted", log[-600:])
    res.check("lost the lease: no more pool work this cycle" in log, "the loss is logged")
    res.check(env.kube.leases[(NS, "pipewarden-janitor")]["spec"]["holderIdentity"] == "janitor-thief",
              "the new holder's Lease is left alone (not released by the old leader)")
    env.stop()


def test_entra_down(res, tmp):
    env = Env(tmp, wi=True)
    standard_state(env)
    env.ado.faults["entra_down"] = True
    rc, log = env.once()
    res.check(rc == 1 and env.agent_ids() == ALL_AGENTS and
              env.pod_names() == EXPECT_PODS_LEFT,
              "Entra unreachable: no agent is deleted, every due pod is", log[-600:])
    env.ado.faults.clear()
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT, "the next cycle with Entra back recovers")
    env.stop()


def test_slow_apis(res, tmp):
    """Each API slower than the client's timeout: what depends on it is not
    deleted (the Kubernetes API: nothing; Azure DevOps or Entra: no agent),
    and the next healthy cycle recovers."""
    fast = {"PIPEWARDEN_HTTP_TIMEOUT_SECONDS": "1"}
    for name, wi in (("Kubernetes API", False), ("Azure DevOps", False), ("Entra", True)):
        env = Env(tmp, wi=wi)
        standard_state(env)
        if name == "Kubernetes API":
            env.kube.faults["hang"] = 2.5
        elif name == "Azure DevOps":
            env.ado.faults["hang"] = 2.5
        else:
            real = env.ado.token
            env.ado.token = lambda body: (time.sleep(2.5), real(body))[1]
        pods_before = env.pod_names()
        rc, log = env.once(env=fast)
        res.check(rc == 1 and env.agent_ids() == ALL_AGENTS and
                  env.pod_names() == (pods_before if name == "Kubernetes API" else EXPECT_PODS_LEFT),
                  "%s slower than the timeout: no agent deleted (%s), exit 1" % (
                      name, "nor any pod" if name == "Kubernetes API" else "every due pod is"),
                  str(env.pod_names()) + log[-400:])
        env.kube.faults.clear()
        env.ado.faults.clear()
        if name == "Entra":
            env.ado.token = real
        rc, log = env.once(env=fast)
        res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT, "%s back: the next cycle recovers" % name,
                  log[-400:])
        env.stop()


def test_sigterm_mid_cycle(res, tmp):
    env = Env(tmp)
    for i in range(20):
        env.ado.agents[12].append(sim.agent(100 + i, "dead-%d" % i, changed_ago=3600, pod_uid="uid-gone-%d" % i))
    env.ado.faults["slow_delete"] = 0.3
    p = subprocess.Popen(env.command(), env=env.environ(), stderr=subprocess.PIPE, text=True)
    lines = []
    for line in p.stderr:
        lines.append(line)
        if '"msg":"deleted"' in line:
            break
    p.send_signal(signal.SIGTERM)
    try:
        _, rest = p.communicate(timeout=60 * SCALE)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        rest, rc = "", None
    log = "".join(lines) + rest
    deleted = log.count('"msg":"deleted"')
    gone = 20 - len(env.ado.agents[12])
    res.check(rc == 0, "SIGTERM mid-cycle: exit 0", str(rc))
    res.check(1 <= deleted < 20, "SIGTERM mid-cycle: no new deletion starts (%d of 20 done)" % deleted)
    res.check(gone == deleted, "SIGTERM mid-cycle: every deletion started was completed and logged, none half-done",
              "%d gone, %d logged" % (gone, deleted))
    lease = env.kube.leases[(NS, "pipewarden-janitor")]
    res.check(lease["spec"]["holderIdentity"] == "", "SIGTERM mid-cycle: the Lease is released")
    env.stop()


class Loop:
    """A long-running janitor (not --once), its log in a file, its metrics."""

    def __init__(self, env, extra=None, environ=None):
        self.env = env
        self.port = lib.free_port()
        self.log_path = env.write("loop-%d.log" % self.port, "")
        self.logf = open(self.log_path, "w")
        self.p = subprocess.Popen(env.command(["--metrics-port", str(self.port)] + (extra or [])),
                                  env=env.environ(extra=environ), stderr=self.logf, text=True)
        lib.wait_until(lambda: lib.port_open(self.port) or self.p.poll() is not None, 30 * SCALE,
                       "metrics port")

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def cycles(self):
        return self.log().count('"msg":"cycle done"')

    def wait_cycles(self, n, timeout=60):
        lib.wait_until(lambda: self.cycles() >= n, timeout * SCALE, "%d cycles" % n)

    def metrics(self):
        return lib.http_get(self.port, "/metrics")[1]

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60 * SCALE)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()
        log = self.log()
        if "Sanitizer" in log or "runtime error:" in log:
            SANITIZER_REPORTS.append(log[-3000:])
        return self.p.returncode, log


def test_reregistered_agent(res, tmp):
    """#21.1: an agent registered again under its name (config.sh --replace)
    keeps its id; one that does so between the list and the DELETE is read
    again and never deleted.  The simulator reuses the id, as Azure DevOps
    does (fixture fact 25)."""
    env = Env(tmp)
    env.ado.agents[12] += [sim.agent(41, "fixed-agent", changed_ago=3600, pod_uid="uid-old-41"),
                           sim.agent(42, "dead-42", changed_ago=3600, pod_uid="uid-gone-42")]
    env.ado.reregister_after_list = {"fixed-agent"}
    rc, log = env.once()
    left = {a["id"]: a for a in env.ado.agents[12]}
    res.check(rc == 0 and sorted(left) == [41] and left[41]["status"] == "online" and
              left[41]["systemCapabilities"]["PIPEWARDEN_POD_UID"] == "uid-fixed-agent-again",
              "the agent that came back under its id is kept; the dead one goes", str(sorted(left)))
    deletes = [r[1] for r in env.ado.server.requests("DELETE")]
    res.check(deletes == ["/contoso/_apis/distributedtask/pools/12/agents/42"],
              "no DELETE of the agent that registered again", str(deletes))
    res.check('"kept: the agent changed since it was listed"' in log and '"agentId":"41"' in log,
              "the janitor says why it kept it")
    # Re-registered with the same pod uid and the same statusChangedOn is
    # impossible; but an agent gone between list and DELETE is just gone.
    env.ado.agents[12].append(sim.agent(43, "dead-43", changed_ago=3600, pod_uid="uid-gone-43"))
    real = env.ado.list_agents

    def list_then_vanish(pid, q):
        body = real(pid, q)
        env.ado.agents[12] = [a for a in env.ado.agents[12] if a["id"] != 43]
        return body
    env.ado.list_agents = list_then_vanish
    rc, log = env.once()
    res.check(rc == 0 and not env.ado.server.requests("DELETE", "/contoso/_apis/distributedtask/pools/12/agents/43"),
              "an agent gone before its DELETE: read 404, no DELETE, not an error")
    env.stop()


def test_capabilities_always(res, tmp):
    """#21.2: includeCapabilities=true on every list, also with
    onlyManagedAgents false: an offline agent whose PIPEWARDEN_POD_UID names
    a live pod of another name is that pod's, and stays."""
    env = Env(tmp, cfg={"janitor": {"onlyManagedAgents": False}})
    env.kube.add_pod(sim.pod("agent-pod-b", uid="uid-b"))
    env.ado.agents[12] += [sim.agent(51, "renamed-agent", changed_ago=3600, pod_uid="uid-b"),
                           sim.agent(52, "dead-52", changed_ago=3600, pod_uid="uid-gone-52")]
    rc, log = env.once()
    lists = [r for r in env.ado.server.requests("GET") if r[1].endswith("/agents")]
    res.check(lists and all(r[2].get("includeCapabilities") == "true" for r in lists),
              "onlyManagedAgents false: the list still asks for capabilities")
    res.check(rc == 0 and env.agent_ids() == [51], "the agent backed by its pod's uid stays; the dead one goes",
              str(env.agent_ids()))
    env.stop()


def test_pool_name_case(res, tmp):
    """#21.3: pool names match without regard to case, as Azure DevOps
    matches them; the server's spelling is logged."""
    env = Env(tmp)
    env.ado.pools = {"AKS-Pool": 12}
    env.ado.agents[12].append(sim.agent(61, "dead-61", changed_ago=3600, pod_uid="uid-gone-61"))
    rc, log = env.once()
    res.check(rc == 0 and env.agent_ids() == [], "config 'aks-pool' finds the pool 'AKS-Pool' and cleans it",
              log[-600:])
    res.check('"serverName":"AKS-Pool"' in log, "the server's spelling is logged")
    env.stop()


def test_api_version(res, tmp):
    """#21.4: every call carries janitor.apiVersion; a server that does not
    serve it (Azure DevOps Server 2022: up to 7.0) is a configuration error
    of the pool, named as such; workload identity needs Services."""
    env = Env(tmp)
    env.ado.max_api_version = "7.0"
    env.ado.agents[12].append(sim.agent(71, "dead-71", changed_ago=3600, pod_uid="uid-gone-71"))
    loop = Loop(env)
    loop.wait_cycles(1)
    text = loop.metrics()
    rc, log = loop.stop()
    res.check(env.agent_ids() == [71] and
              'pipewarden_janitor_pool_errors_total{pool="aks-pool",reason="api-version"}' in text,
              "api-version 7.1 against a 7.0 server: none of the pool's agents deleted, reason api-version",
              "\n".join(l for l in text.splitlines() if "pool_errors" in l))
    res.check("'janitor.apiVersion'" in log and "serves up to 7.0" in log,
              "the error names the key and the version the server offers",
              [l for l in log.splitlines() if "api-version" in l][:1])
    env.stop()
    env = Env(tmp, cfg={"janitor": {"apiVersion": "7.0"}})
    env.ado.max_api_version = "7.0"
    env.ado.agents[12].append(sim.agent(72, "dead-72", changed_ago=3600, pod_uid="uid-gone-72"))
    rc, log = env.once()
    calls = [r for r in env.ado.server.requests() if "/oauth2/" not in r[1]]
    res.check(rc == 0 and env.agent_ids() == [] and calls and
              all(r[2].get("api-version") == "7.0" for r in calls),
              "apiVersion 7.0: every call carries it and the pool is cleaned")
    env.stop()
    # Azure DevOps Server without a PAT: refused at start and by --check-config.
    env = Env(tmp, cfg={"organizationUrl": "https://ado.contoso.local/DefaultCollection"})
    e = env.environ()
    e.pop("AZP_TOKEN_FILE", None)
    p = subprocess.run([ARGS.bin, "--config", env.config, "--check-config"], env=e,
                       capture_output=True, text=True, timeout=30)
    res.check(p.returncode == 2 and "'organizationUrl'" in p.stderr and "PAT" in p.stderr,
              "--check-config: Azure DevOps Server without a PAT is a configuration error (exit 2)",
              p.stderr[-300:])
    rc, log = env.once(env={"AZP_TOKEN_FILE": ""})
    res.check(rc == 2 and "PAT" in log, "and the janitor does not start", log[-300:])
    p = subprocess.run([ARGS.bin, "--config", env.config, "--check-config"], env=env.environ(),
                       capture_output=True, text=True, timeout=30)
    res.check(p.returncode == 0 and "configuration OK" in p.stdout, "with a PAT file it is accepted",
              p.stderr[-300:])
    env.stop()


def oom_restarted(pod, finished_ago, now=None):
    """The agent container restarted after an OOM kill (restartPolicy
    OnFailure): running again, its death in lastState (as a kubelet shows it)."""
    now = time.time() if now is None else now
    statuses = pod["status"].setdefault("containerStatuses", [{"name": "agent", "restartCount": 0}])
    for cs in statuses:
        if cs["name"] == "agent":
            cs["state"] = {"running": {"startedAt": sim.now_rfc3339(now - finished_ago + 1)}}
            cs["lastState"] = {"terminated": {"exitCode": 137, "reason": "OOMKilled",
                                              "startedAt": sim.now_rfc3339(now - 900),
                                              "finishedAt": sim.now_rfc3339(now - finished_ago)}}
            cs["restartCount"] = cs.get("restartCount", 0) + 1
    return pod


def test_interruption_attribution(res, tmp):
    """#21.5: an OOM kill in a restarted container's lastState belongs to the
    job before: the job it runs now is not blamed.  Each (pod, request) is
    recorded once, and a later job of the same pod can be recorded too."""
    env = Env(tmp)
    now = time.time()
    env.kube.add_pod(oom_restarted(sim.pod("restarted-agent"), finished_ago=300, now=now))
    env.kube.add_pod(oom_restarted(sim.pod("oom-twice"), finished_ago=30, now=now))
    a1 = sim.agent(81, "restarted-agent", status="online", busy=True, changed_ago=200,
                   pod_uid="uid-restarted-agent")
    a1["assignedRequest"]["assignTime"] = sim.now_rfc3339(now - 100)
    a2 = sim.agent(82, "oom-twice", status="online", busy=True, changed_ago=200, pod_uid="uid-oom-twice")
    a2["assignedRequest"]["assignTime"] = sim.now_rfc3339(now - 100)
    env.ado.agents[12] += [a1, a2]
    rc, log = env.once()
    ann = lambda n: env.kube.pod(n)["metadata"].get("annotations", {}).get("pipewarden.io/interruption")  # noqa: E731
    evs = [e["involvedObject"]["name"] for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
    res.check(rc == 0 and ann("restarted-agent") is None and "restarted-agent" not in evs,
              "an OOM kill before the request was assigned is not blamed on it", str(evs))
    res.check(ann("oom-twice") == "1400082:OOMKilled" and evs.count("oom-twice") == 1,
              "one during the request is recorded as <requestId>:OOMKilled", str(ann("oom-twice")))
    env.once()
    evs = [e["involvedObject"]["name"] for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
    res.check(evs.count("oom-twice") == 1, "once per (pod, request)", str(evs))
    # The container restarts, takes the next job, and is OOM-killed again.
    oom_restarted(env.kube.pod("oom-twice"), finished_ago=5)
    a2["assignedRequest"] = sim.assigned_request(82)
    a2["assignedRequest"]["requestId"] = 1400099
    a2["assignedRequest"]["assignTime"] = sim.now_rfc3339(time.time() - 20)
    env.once()
    evs = [e for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
    res.check(ann("oom-twice") == "1400099:OOMKilled" and len(evs) == 2 and "1400099" in evs[-1]["message"],
              "the next job's OOM kill on the same pod is recorded too", str(ann("oom-twice")))
    env.stop()


def test_refused_writes(res, tmp):
    """#21.6: a delete or patch refused by the API server (403 from the
    shipped ValidatingAdmissionPolicy) holds back that object only: the cap
    counts attempts, a refused object skips one cycle then twice as many,
    and the others go on; a refused patch is not an API error."""
    env = Env(tmp, cfg={"janitor": {"maxDeletionsPerCycle": 3}})
    for i in (1, 2, 3):
        env.kube.add_pod(sim.pod("a-refused-%d" % i, phase="Succeeded", finished_ago=1000, owner=None))
    env.kube.add_pod(sim.pod("z-free-4", phase="Succeeded", finished_ago=1000, owner=None))
    env.kube.refuse = {"a-refused-1", "a-refused-2", "a-refused-3"}
    loop = Loop(env)
    lib.wait_until(lambda: env.kube.pod("z-free-4") is None, 60 * SCALE, "the fourth pod's deletion")
    loop.wait_cycles(6)
    rc, log = loop.stop()
    cycles = log.count('"msg":"cycle done"')
    tries = [len(env.kube.server.requests("DELETE", "/api/v1/namespaces/ci-agents/pods/a-refused-%d" % i))
             for i in (1, 2, 3)]
    # Tried in cycles 1, 3, 6, 11, ...: never in two cycles in a row.
    expect = len([c for c in (1, 3, 6, 11, 20, 37) if c <= cycles])
    res.check(env.kube.pod("z-free-4") is None and cycles >= 6,
              "three refused pods never keep a fourth from its deletion", "%d cycles" % cycles)
    res.check(all(t <= expect for t in tries) and all(t >= 2 for t in tries),
              "each refused pod is tried again after a growing wait, not every cycle",
              "%s tries in %d cycles (at most %d)" % (tries, cycles, expect))
    res.check(log.count('"msg":"write refused: held back, the other objects go on"') == sum(tries) and
              'pods \\"a-refused-1\\" is forbidden: ValidatingAdmissionPolicy' in log,
              "each refusal is logged once, with the API server's message")
    env.stop()
    # A refused PATCH: the pods after it are annotated, and --once exits 0.
    env = Env(tmp)
    for n, aid in (("a-refused-p", 91), ("b-ok-p", 92)):
        env.kube.add_pod(sim.pod(n))
        env.ado.agents[12].append(sim.agent(aid, n, status="online", busy=True, changed_ago=60,
                                            pod_uid="uid-" + n))
    env.kube.refuse = {"a-refused-p"}
    rc, log = env.once()
    ann = env.kube.pod("b-ok-p")["metadata"].get("annotations", {})
    res.check(rc == 0 and ann.get("pipewarden.io/job-request-id") == "1400092",
              "one refused PATCH: the next pod is still annotated and --once exits 0", "rc %d %s" % (rc, ann))
    env.stop()


def agent_running(pod, started_ago):
    """The pod's agent container running since started_ago, as a kubelet writes it."""
    pod["status"]["containerStatuses"] = [{
        "name": "agent", "ready": True, "started": True, "restartCount": 0,
        "state": {"running": {"startedAt": sim.now_rfc3339(time.time() - started_ago)}}}]
    return pod


LIFECYCLE = {"janitor": {"idleAgentSeconds": 1800, "registrationTimeoutSeconds": 600}}


def lifecycle_state(env):
    """One pod for each lifecycle case, with the agent it registered."""
    k, a = env.kube, env.ado.agents[12]
    for name, node in (("idle-x1", NODE), ("busy-x2", NODE), ("never-x3", NODE), ("race-x4", NODE),
                       ("drain-x5", "node-drain"), ("drain-busy-x6", "node-drain"), ("young-x7", NODE)):
        k.add_pod(agent_running(sim.pod(name, node=node), 5000 if name != "young-x7" else 100))
    k.node_specs["node-drain"] = {"unschedulable": True}
    a += [sim.agent(21, "idle-x1", status="online", changed_ago=4000, pod_uid="uid-idle-x1"),
          sim.agent(22, "busy-x2", status="online", busy=True, changed_ago=4000, pod_uid="uid-busy-x2"),
          sim.agent(24, "race-x4", status="online", changed_ago=4000, pod_uid="uid-race-x4"),
          sim.agent(25, "drain-x5", status="online", changed_ago=10, pod_uid="uid-drain-x5"),
          sim.agent(26, "drain-busy-x6", status="online", busy=True, changed_ago=10,
                    pod_uid="uid-drain-busy-x6"),
          sim.agent(27, "young-x7", status="online", changed_ago=60, pod_uid="uid-young-x7")]
    real = env.ado.delete_agent

    def takes_a_job(pid, aid):      # race-x4's agent is given a job right before its DELETE
        if aid == 24:
            for ag in env.ado.agents[pid]:
                if ag["id"] == 24:
                    ag["assignedRequest"] = sim.assigned_request(24)
        return real(pid, aid)
    env.ado.delete_agent = takes_a_job


def test_lifecycle(res, tmp):
    """#24: an agent pod that holds a node without a job is retired, with
    Azure DevOps as the lock: the registration goes first (a 400 "running a
    job" keeps it all), then the pod is marked and its node's replica
    removes it by the owner rules."""
    env = Env(tmp, cfg=LIFECYCLE)
    lifecycle_state(env)
    cmd = env.command()
    wrapper = len(shlex.split(ARGS.wrapper)) if ARGS.wrapper else 0
    p = subprocess.run(cmd[:wrapper + 1] + ["report"] + cmd[wrapper + 1:], env=env.environ(),
                       capture_output=True, text=True, timeout=120 * SCALE)
    res.check(p.returncode == 0 and "retire: idle" in p.stdout and "retire: node-draining" in p.stdout and
              "pod ci-agents/never-x3 on node-a: retire: never-registered" in p.stdout and
              not env.kube.patches and not env.ado.server.requests("DELETE"),
              "report shows what the next cycle would retire and why, and retires nothing", p.stdout[-1500:])
    rc, log = env.once()
    retired = {p["metadata"]["name"]: p["metadata"].get("annotations", {}).get("pipewarden.io/retired")
               for p in env.kube.pods}
    res.check(rc == 0 and {n: r for n, r in retired.items() if r} ==
              {"idle-x1": "idle", "never-x3": "never-registered", "drain-x5": "node-draining"},
              "idle, never-registered and node-draining pods are marked, and no other", str(retired))
    deletes = sorted(int(r[1].rsplit("/", 1)[1]) for r in env.ado.server.requests("DELETE"))
    res.check(deletes == [21, 24, 25] and sorted(env.agent_ids()) == [22, 24, 26, 27],
              "their registrations are deleted first; the agent that took a job keeps its own "
              "(400), and so does its pod", "%s %s" % (deletes, env.agent_ids()))
    evs = sorted((e["involvedObject"]["name"], e["reason"]) for e in env.kube.events)
    res.check(evs == [("drain-x5", "PipewardenRetired"), ("idle-x1", "PipewardenRetired"),
                      ("never-x3", "PipewardenRetired")],
              "a PipewardenRetired Event on each retired pod", str(evs))
    never = [e["message"] for e in env.kube.events if e["involvedObject"]["name"] == "never-x3"]
    res.check(never and "no agent of pool aks-pool carries its uid or name" in never[0],
              "the never-registered Event says what the janitor can tell", str(never))
    res.check(log.count('"msg":"retired"') == 3 and '"msg":"not retired: the agent just took a job"' in log,
              "a log line per retirement, and for the agent that took a job")
    # The node's replica removes its retired pods by their owners' rules.
    rc, log = env.once()
    # (sim.pod's Job of pod "idle-x1" is "idle")
    jobs = sorted(n for _, n in env.kube.jobs)
    res.check(rc == 0 and jobs == ["busy", "drain", "drain-busy", "race", "young"],
              "the next cycle: node-a's replica deletes the Jobs of its retired pods; the draining "
              "node's pod is its own node's replica's", str(jobs))
    env.stop()
    # A dry run retires nothing; the other switches.
    env = Env(tmp, cfg=LIFECYCLE)
    lifecycle_state(env)
    rc, log = env.once(["--dry-run"])
    res.check(rc == 0 and not env.ado.server.requests("DELETE") and env.kube.patches == [] and
              log.count('"msg":"would retire"') == 4,
              "a dry run only says what it would retire", str(env.kube.patches))
    env.stop()
    env = Env(tmp)      # idleAgentSeconds and registrationTimeoutSeconds 0: draining only
    lifecycle_state(env)
    rc, log = env.once()
    marked = sorted(p["metadata"]["name"] for p in env.kube.pods
                    if p["metadata"].get("annotations", {}).get("pipewarden.io/retired"))
    res.check(rc == 0 and marked == ["drain-x5"], "with idle and registration timeouts off, only "
              "the idle agent on the cordoned node retires", str(marked))
    env.stop()


def waiting_state(env, now, usage_requests=None):
    """#25: a pod whose startup phases took 4, 20 and 7 s; job requests that
    waited 37 and 3 s, one that ran 124 s and succeeded, two still queued
    (90 and 30 s), one canceled before any agent took it."""
    created = int(now) - 600
    p = agent_running(sim.pod("w-sched", created_ago=now - created), now - (created + 24))
    p["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                  "lastTransitionTime": sim.now_rfc3339(created + 4)}]
    if usage_requests:
        p["spec"]["containers"][0]["resources"] = {"requests": usage_requests}
    env.kube.add_pod(p)
    pending = sim.pod("w-pending", node=None, phase="Pending", created_ago=30)
    env.kube.add_pod(pending)
    env.ado.agents[12] += [sim.agent(31, "w-sched", status="online", changed_ago=now - (created + 31),
                                     pod_uid="uid-w-sched", now=now)]
    t = int(now)
    env.ado.job_requests[12] = [
        sim.job_request(5001, t - 1000, t - 963, t - 962, t - 838, "succeeded", agent=(31, "w-sched")),
        sim.job_request(5002, t - 500, t - 497, t - 496, agent=(31, "w-sched")),
        sim.job_request(5003, t - 200, finished=t - 150, result="canceled"),
        sim.job_request(5004, t - 90, matched=["keda-placeholder-0"]),
        sim.job_request(5005, t - 30)]


def test_waiting(res, tmp):
    """#25: why is my job waiting -- the exact observations the simulator's
    request times and the pods' timestamps give, each made once."""
    env = Env(tmp)
    now = time.time()
    waiting_state(env, now)
    cmd = env.command()
    wrapper = len(shlex.split(ARGS.wrapper)) if ARGS.wrapper else 0
    p = subprocess.run(cmd[:wrapper + 1] + ["report"] + cmd[wrapper + 1:], env=env.environ(),
                       capture_output=True, text=True, timeout=120 * SCALE)
    rows = {l.split()[0]: l.split()[1:] for l in p.stdout.splitlines() if l.startswith("ci-agents/")}
    res.check(p.returncode == 0 and "queue: 2 jobs waiting for an agent, the oldest for 1m" in p.stdout and
              rows.get("ci-agents/w-sched") == ["node-a", "Running", "4s", "20s", "7s"] and
              rows.get("ci-agents/w-pending", [])[:2] == ["-", "Pending"] and
              re.fullmatch(r"(3\d|[4-9]\d)s", rows["ci-agents/w-pending"][2]) and
              rows["ci-agents/w-pending"][3:] == ["so", "far", "-", "-"],
              "report: the pool's queue, and where each pod's start went (the pending pod's "
              "scheduling so far)", p.stdout[-1500:])
    p = subprocess.run(cmd[:wrapper + 1] + ["report", "--output", "json"] + cmd[wrapper + 1:], env=env.environ(),
                       capture_output=True, text=True, timeout=120 * SCALE)
    doc = json.loads(p.stdout) if p.returncode == 0 else {}
    pool = (doc.get("pools") or [{}])[0]
    w = {x["name"]: x["startup"] for x in pool.get("pods", [])}
    res.check(pool.get("queue", {}).get("jobsQueued") == 2 and pool["queue"]["oldestSeconds"] >= 90 and
              w.get("w-sched") == {"scheduling": {"seconds": 4, "done": True},
                                   "starting": {"seconds": 20, "done": True},
                                   "registering": {"seconds": 7, "done": True}},
              "report --json: the queue and each pod's startup phases", json.dumps(pool)[:1500])
    loop = Loop(env)
    loop.wait_cycles(3)
    text = loop.metrics()
    m = lambda name, labels="": lib.metric_value(text, name, labels)  # noqa: E731
    res.check(m("pipewarden_janitor_job_wait_seconds_count", 'pool="aks-pool"') == 2 and
              m("pipewarden_janitor_job_wait_seconds_sum", 'pool="aks-pool"') == 40,
              "job wait: the two assigned requests, 37 s and 3 s, each observed once in three cycles",
              "%s %s" % (m("pipewarden_janitor_job_wait_seconds_count", 'pool="aks-pool"'),
                         m("pipewarden_janitor_job_wait_seconds_sum", 'pool="aks-pool"')))
    res.check(m("pipewarden_janitor_job_wait_seconds_bucket", 'pool="aks-pool",le="5"') == 1 and
              m("pipewarden_janitor_job_wait_seconds_bucket", 'pool="aks-pool",le="60"') == 2,
              "job wait buckets: 3 s under 5, 37 s under 60")
    res.check(m("pipewarden_janitor_job_duration_seconds_count", 'pool="aks-pool",result="succeeded"') == 1 and
              m("pipewarden_janitor_job_duration_seconds_sum", 'pool="aks-pool",result="succeeded"') == 124 and
              "result=\"canceled\"" not in text,
              "job duration: received to finished, 124 s, succeeded; a request canceled before "
              "any agent took it is no duration", "%s" % [l for l in text.splitlines() if "job_duration" in l][:4])
    res.check(m("pipewarden_janitor_jobs_queued", 'pool="aks-pool"') == 2,
              "two requests queued (neither assigned nor finished)")
    oldest = m("pipewarden_janitor_oldest_queued_job_seconds", 'pool="aks-pool"')
    res.check(oldest is not None and 90 <= oldest <= 90 + (time.time() - now) + 1,
              "the oldest queued request has waited 90 s (and the time since)", str(oldest))
    phases = {ph: (m("pipewarden_janitor_pod_startup_seconds_count", 'pool="aks-pool",phase="%s"' % ph),
                   m("pipewarden_janitor_pod_startup_seconds_sum", 'pool="aks-pool",phase="%s"' % ph))
              for ph in ("scheduling", "starting", "registering")}
    res.check(phases == {"scheduling": (1, 4), "starting": (1, 20), "registering": (1, 7)},
              "pod startup: created to scheduled 4 s, to the agent running 20 s, to its agent online "
              "7 s, once each; the pod not yet scheduled gives nothing", str(phases))
    # A request that finishes now is observed at the next cycle, once.
    t = int(time.time())
    with env.ado.lock:
        env.ado.job_requests[12][1].update(finishTime=sim.now_rfc3339(t, frac=True), result="failed")
        env.ado.job_requests[12][1].pop("lockedUntil", None)
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    text = loop.metrics()
    res.check(lib.metric_value(text, "pipewarden_janitor_job_duration_seconds_count",
                           'pool="aks-pool",result="failed"') == 1 and
              lib.metric_value(text, "pipewarden_janitor_job_duration_seconds_sum",
                           'pool="aks-pool",result="failed"') == t - (int(now) - 496) and
              lib.metric_value(text, "pipewarden_janitor_job_wait_seconds_count", 'pool="aks-pool"') == 2,
              "a request that finished since is observed once; its wait is not counted again",
              str([l for l in text.splitlines() if "result=\"failed\"" in l][:3]))
    res.check("pipewarden_janitor_pipeline_cpu_seconds_total{" not in text,
              "usageByPipeline off (the default): no per-pipeline series")
    # The job requests fail: the queue is unknown, nothing else is held back.
    env.ado.faults["jobrequests_down"] = True
    env.ado.agents[12].append(sim.agent(32, "gone-agent", changed_ago=7200, pod_uid="uid-gone"))
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    text = loop.metrics()
    rc, log = loop.stop()
    res.check("pipewarden_janitor_jobs_queued{" not in text and
              '"msg":"reading the pool\'s job requests failed' in log and 32 not in env.agent_ids(),
              "job requests failing: no queue gauge, logged, and the dead agent is still deleted",
              str(env.agent_ids()))
    env.stop()
    # usageByPipeline: requested cores and bytes times the seconds the job ran.
    env = Env(tmp, cfg={"janitor": {"usageByPipeline": True}})
    now = time.time()
    waiting_state(env, now, usage_requests={"cpu": "1500m", "memory": "2Gi"})
    loop = Loop(env)
    loop.wait_cycles(1)
    text = loop.metrics()
    loop.stop()
    labels = 'pool="aks-pool",pipeline="payments-api - CI"'
    res.check(lib.metric_value(text, "pipewarden_janitor_pipeline_cpu_seconds_total", labels) == 1.5 * 124 and
              lib.metric_value(text, "pipewarden_janitor_pipeline_memory_byte_seconds_total", labels) ==
              2 * 1024 ** 3 * 124,
              "usageByPipeline: 1.5 cores and 2 GiB requested, for the job's 124 s",
              str([l for l in text.splitlines() if "pipeline_" in l and not l.startswith("#")]))
    env.stop()


QUOTA_MSG = ('Error creating: pods "quota-x1-7bq2m" is forbidden: exceeded quota: agents, '
             'requested: requests.cpu=1, used: requests.cpu=4, limited: requests.cpu=4')
DENIED_MSG = ('Error creating: admission webhook "inject.pipewarden.io" denied the request: pod '
              'ci-agents/denied-x2-k2l9q: the container "agent" sets AZP_TOKEN to a literal value')


def test_jobs_without_pod(res, tmp):
    """#25: agent Jobs that never get a pod: the gauge, one Warning Event on
    each Job saying why (its FailedCreate Event), report."""
    env = Env(tmp)
    standard_state(env)
    k = env.kube
    k.add_podless_job("ci-agents", "quota-x1", 1000, failed_create=QUOTA_MSG)
    k.add_podless_job("ci-agents", "denied-x2", 1000, failed_create=DENIED_MSG)
    k.add_podless_job("ci-agents", "young-x3", 60, failed_create=QUOTA_MSG)
    k.add_podless_job("ci-agents", "other-x4", 1000, opted_in=False, failed_create=QUOTA_MSG)
    k.add_podless_job("team-b", "noevent-x5", 1000)
    cmd = env.command()
    wrapper = len(shlex.split(ARGS.wrapper)) if ARGS.wrapper else 0
    p = subprocess.run(cmd[:wrapper + 1] + ["report"] + cmd[wrapper + 1:], env=env.environ(),
                       capture_output=True, text=True, timeout=120 * SCALE)
    lines = sorted(l for l in p.stdout.splitlines() if l.startswith("job "))
    res.check(p.returncode == 0 and lines == [
        "job ci-agents/denied-x2 has had no pod for 16m: this webhook denied it: " + DENIED_MSG,
        "job ci-agents/quota-x1 has had no pod for 16m: a ResourceQuota: " + QUOTA_MSG,
        "job team-b/noevent-x5 has had no pod for 16m: no FailedCreate Event yet"],
        "report: each agent Job without a pod past stuckPendingSeconds, with why (not the young "
        "one, not one that did not opt in)", "\n".join(lines) or p.stdout[-800:])
    loop = Loop(env)
    loop.wait_cycles(3)
    text = loop.metrics()
    res.check(lib.metric_value(text, "pipewarden_janitor_jobs_without_pod", 'namespace="ci-agents"') == 2 and
              lib.metric_value(text, "pipewarden_janitor_jobs_without_pod", 'namespace="team-b"') == 1,
              "the gauge by namespace", str([l for l in text.splitlines() if "without_pod{" in l]))
    evs = sorted((e["involvedObject"]["kind"], e["involvedObject"]["name"], e["type"], e["message"])
                 for e in k.events if e.get("reason") == "PipewardenJobWithoutPod")
    res.check([e[:3] for e in evs] == [("Job", "denied-x2", "Warning"), ("Job", "noevent-x5", "Warning"),
                                       ("Job", "quota-x1", "Warning")] and
              "a ResourceQuota: " + QUOTA_MSG in evs[2][3] and "no pod for" in evs[2][3],
              "one Warning Event on each such Job in three cycles, carrying its FailedCreate reason",
              str(evs))
    # The quota is lifted: the Job's pod appears.
    with k.lock:
        del k.podless_jobs[("ci-agents", "quota-x1")]
        k.add_pod(sim.pod("quota-x1-7bq2m", owner_name="quota-x1", phase="Pending", node=None, created_ago=5))
        k.jobs[("ci-agents", "quota-x1")] = "owner-quota-x1"
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    text = loop.metrics()
    res.check(lib.metric_value(text, "pipewarden_janitor_jobs_without_pod", 'namespace="ci-agents"') == 1,
              "once the Job has a pod it no longer counts")
    # Listing Jobs is refused (an older ClusterRole): logged, nothing else held back.
    k.faults["jobs_forbidden"] = True
    env.ado.agents[12].append(sim.agent(41, "gone-41", changed_ago=7200, pod_uid="uid-gone-41"))
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    text = loop.metrics()
    rc, log = loop.stop()
    res.check('"msg":"listing Jobs failed' in log and "jobs_without_pod{" not in text and
              41 not in env.agent_ids(),
              "Jobs cannot be listed: logged, no gauge, and the dead agent is still deleted",
              str(env.agent_ids()))
    env.stop()


def test_reload_in_place(res, tmp):
    """#13.1: a config changed in place is reloaded and used; the Azure DevOps
    client never points into the freed config (ASan: heap use-after-free)."""
    env = Env(tmp)
    env.ado.agents[12].append(sim.agent(1, "dead-1", changed_ago=3600, pod_uid="uid-gone-1"))
    loop = Loop(env)
    loop.wait_cycles(1)
    res.check(env.agent_ids() == [], "before the reload: the dead agent goes")
    # The same file, rewritten in place (a ConfigMap swaps a symlink; an
    # operator's editor writes in place): a new organization path.
    env.ado.org = "contoso2"
    cfg = dict(env.config_obj, organizationUrl=env.ado.server.url + "/contoso2/")
    with open(env.config, "w") as f:
        json.dump(cfg, f)
    lib.wait_until(lambda: "config reloaded" in loop.log(), 30 * SCALE, "the reload")
    env.ado.agents[12].append(sim.agent(2, "dead-2", changed_ago=3600, pod_uid="uid-gone-2"))
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    rc, log = loop.stop()
    res.check(env.agent_ids() == [], "after the reload: the new organization URL is used and the agent goes",
              str(env.agent_ids()) + log[-600:])
    urls = [r[1] for r in env.ado.server.requests() if "/agents" in r[1]]
    res.check(any(u.startswith("/contoso2/_apis/") for u in urls) and not any("//_apis" in u for u in urls),
              "requests go to the reloaded organization, the trailing / dropped", str(urls[-2:]))
    res.check(rc == 0 and "Sanitizer" not in log, "no sanitizer report after a reload", log[-400:])
    env.stop()


def test_lease_half_life(res, tmp):
    """#13.3: no leader-only deletion starts more than half the Lease after
    the last successful renewal; agent deletes slowed past it."""
    env = Env(tmp)
    for i in range(8):
        env.ado.agents[12].append(sim.agent(100 + i, "dead-%d" % i, changed_ago=3600, pod_uid="uid-gone-%d" % i))
    env.ado.faults["slow_delete"] = 2.5          # the Lease is 17 s: half is 8.5 s
    renewals, starts = [], []
    real_lease, real_delete = env.kube.lease, env.ado.delete_agent

    def lease(method, parts, body):
        r = real_lease(method, parts, body)
        if method in ("PUT", "POST") and r[0] in (200, 201):
            renewals.append(time.monotonic())
        return r

    def delete(pid, aid):
        starts.append(time.monotonic())
        return real_delete(pid, aid)
    env.kube.lease, env.ado.delete_agent = lease, delete
    rc, log = env.once()
    late = [t for t in starts if t - max([r for r in renewals if r <= t] or [0]) > 8.5]
    res.check(starts and not late, "every agent delete starts within half the Lease of a renewal (%d deletes, "
              "%d renewals)" % (len(starts), len(renewals)), log[-500:])
    res.check(rc == 1 and 0 < len(starts) < 8 and "the cycle's time budget is spent" in log,
              "the cycle ends within half the Lease: the rest waits for the next cycle", log[-500:])
    env.stop()
    # Two pools: the Lease is taken while the first pool's agent is deleted
    # (its holder's renewal was more than a Lease ago, from our replica's
    # view); the second pool's renewal fails and none of its agents goes.
    env = Env(tmp, cfg={"pools": ["aks-pool", "linux-large"]})
    env.ado.pools["linux-large"] = 13
    env.ado.agents[12] = [sim.agent(1, "dead-1", changed_ago=3600, pod_uid="uid-gone-1")]
    env.ado.agents[13] = [sim.agent(2, "dead-2", changed_ago=3600, pod_uid="uid-gone-2")]
    real_delete = env.ado.delete_agent

    def taken_during(pid, aid):
        lease = env.kube.leases[(NS, "pipewarden-janitor")]
        lease["spec"].update(holderIdentity="janitor-other", renewTime=sim.now_rfc3339(time.time(), True))
        lease["metadata"]["resourceVersion"] = env.kube.next_rv()
        return real_delete(pid, aid)
    env.ado.delete_agent = taken_during
    rc, log = env.once()
    left = {a["id"] for pid in (12, 13) for a in env.ado.agents[pid]}
    res.check(left == {2} and "lost the lease: no more pool work this cycle" in log,
              "a renewal that fails holds every remaining leader-only deletion", str(left) + log[-400:])
    env.ado.delete_agent = real_delete
    env.stop()


def test_pod_annotations(res, tmp):
    """#16: the leader writes on each managed pod the pipeline job its agent
    runs, from the agent's assignedRequest, only when a value changes."""
    env = Env(tmp)
    standard_state(env)
    rc, log = env.once()
    want = {"pipewarden.io/job-request-id": "1400010", "pipewarden.io/pipeline": "payments-api - CI",
            "pipewarden.io/run": "20260901.10",
            "pipewarden.io/run-url": "https://dev.azure.com/contoso/8a428564-bc22-474e-9694-fcbc5b5c8672"
                                     "/_build/results?buildId=88010"}
    pod = [p for p in env.kube.pods if p["metadata"]["name"] == "job-running-x3"][0]
    got = {k: v for k, v in pod["metadata"].get("annotations", {}).items() if k in want}
    res.check(rc == 0 and got == want and len(env.kube.patches) == 1,
              "the busy agent's pod gets its pipeline, run, run URL and request id (one PATCH)",
              "%s %s" % (got, env.kube.patches))
    res.check('"annotated the pod with its pipeline job"' in log and '"pipeline":"payments-api - CI"' in log,
              "the annotation is logged with the pipeline")
    rc, log = env.once()
    res.check(rc == 0 and len(env.kube.patches) == 1, "nothing changed: no PATCH the next cycle",
              str(env.kube.patches))
    agent = [a for a in env.ado.agents[12] if a["id"] == 10][0]
    agent["assignedRequest"] = sim.assigned_request(10, run="20260901.11")
    env.once()
    res.check(len(env.kube.patches) == 2 and env.kube.patches[-1][2]["pipewarden.io/run"] == "20260901.11",
              "a new job on the same agent: its pod is annotated again", str(env.kube.patches[-1:]))
    env.stop()
    for name, cfg, extra, lease_held in [("maxPatchesPerCycle 0", {"janitor": {"maxPatchesPerCycle": 0}}, [], False),
                                         ("a dry run", {}, ["--dry-run"], False),
                                         ("not the leader", {}, [], True)]:
        env = Env(tmp, cfg=cfg)
        standard_state(env)
        if lease_held:
            held_by_another(env)
        rc, log = env.once(extra)
        res.check(rc == 0 and env.kube.patches == [], "%s: no pod is annotated" % name, str(env.kube.patches))
        if extra:
            res.check('"would annotate the pod with its pipeline job"' in log, "a dry run says what it would write")
        env.stop()


def test_interruptions(res, tmp):
    """#16: a pipeline job whose pod ended abnormally while its agent ran it
    is recorded once: an Event on the pod, a log line, the counter, and the
    pipewarden.io/interruption annotation."""
    env = Env(tmp)
    pod = sim.pod("oom-agent", phase="Failed", finished_ago=30)
    for cs in pod["status"]["containerStatuses"]:
        cs["state"]["terminated"]["reason"] = "OOMKilled"
    env.kube.add_pod(pod)
    evicted = sim.pod("evicted-agent", phase="Failed", finished_ago=30)
    evicted["status"]["reason"] = "Evicted"
    env.kube.add_pod(evicted)
    done = sim.pod("done-agent", phase="Succeeded", finished_ago=30)
    env.kube.add_pod(done)
    # Preempted: the scheduler's DisruptionTarget, then its delete (the pod is going).
    preempted = sim.pod("preempted-agent", phase="Running", deleting=True)
    preempted["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "True",
                                          "reason": "PreemptionByScheduler",
                                          "message": "ci-agents: preempting to accommodate a higher priority pod",
                                          "lastTransitionTime": sim.now_rfc3339()}]
    env.kube.add_pod(preempted)
    env.ado.agents[12] += [sim.agent(31, "oom-agent", busy=True, changed_ago=20, pod_uid="uid-oom-agent"),
                           sim.agent(32, "evicted-agent", busy=True, changed_ago=20, pod_uid="uid-evicted-agent"),
                           sim.agent(33, "done-agent", busy=True, changed_ago=20, pod_uid="uid-done-agent"),
                           sim.agent(34, "preempted-agent", busy=True, changed_ago=20,
                                     pod_uid="uid-preempted-agent")]
    loop = Loop(env)
    loop.wait_cycles(2)
    text = loop.metrics()
    loop.stop()
    evs = [e for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
    names = sorted((e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in evs)
    res.check(names == [("Job", "preempted"), ("Pod", "evicted-agent"), ("Pod", "oom-agent")] and
              all(e["type"] == "Warning" for e in evs),
              "one Warning Event per interrupted job, over two cycles: on the pod, or on its Job when the "
              "pod is going (a job that ended normally: none)",
              json.dumps([(e["involvedObject"]["name"], e["message"]) for e in evs])[:600])
    runs = {e["involvedObject"]["name"]: e["message"] for e in evs}
    res.check("pipeline payments-api - CI run 20260901.31 (job request 1400031)" in runs.get("oom-agent", "") and
              "(OOMKilled)" in runs.get("oom-agent", "") and "(Evicted)" in runs.get("evicted-agent", ""),
              "the Event names the pipeline run, its request and the reason", json.dumps(runs)[:600])
    ann = {p["metadata"]["name"]: p["metadata"].get("annotations", {}).get("pipewarden.io/interruption")
           for p in env.kube.pods}
    res.check(ann.get("oom-agent") == "1400031:OOMKilled" and ann.get("evicted-agent") == "1400032:Evicted" and
              ann.get("preempted-agent") == "1400034:Preempted" and ann.get("done-agent") is None,
              "the pod carries pipewarden.io/interruption: <requestId>:<reason>", str(ann))
    res.check('pipewarden_janitor_job_interruptions_total{pool="aks-pool",reason="OOMKilled"} 1' in text and
              'pipewarden_janitor_job_interruptions_total{pool="aks-pool",reason="Evicted"} 1' in text,
              "pipewarden_janitor_job_interruptions_total{pool,reason}",
              "\n".join(l for l in text.splitlines() if "interruptions" in l))
    res.check('"pipeline job interrupted"' in loop.log(), "a log line per interruption")
    env.stop()


GONE_PODS = {"spot-job-x1": "node-spot", "deleted-job-x2": NODE, "bare-agent": NODE, "jobless-x5": NODE,
             "replaced-job-x8": NODE, "finished-x4": NODE, "idle-x6": NODE, "stays-x7": NODE}


def gone_state(env):
    """Busy agents, each in a running pod of its own (gone_pods removes most)."""
    for i, (name, node) in enumerate(sorted(GONE_PODS.items())):
        if name == "finished-x4":
            p = sim.pod(name, node=node, phase="Succeeded", finished_ago=5)
        else:
            p = sim.pod(name, node=node, phase="Running", owner=None if name == "bare-agent" else "Job")
        env.kube.add_pod(p)
        env.ado.agents[12].append(sim.agent(40 + i, name, status="online", busy=True, changed_ago=600,
                                            pod_uid="uid-" + name))


def gone_pods(env):
    """The pods go while their agents still run their jobs: a spot node is
    deleted with its pod, a Job and a bare pod are deleted, a Job goes with
    its pod, another Job of the same name replaces one; a finished pod goes
    (its agent ended the job itself), and one whose agent is idle first (its
    job ended; Azure DevOps knows how).  (An agent that moves on to another
    request is left to the unit test: a leader cycling meanwhile may see the
    new request in the pod it still lists, and rightly count its end.)"""
    k = env.kube
    with env.ado.lock:
        for a in env.ado.agents[12]:
            if a["name"] == "idle-x6":
                a.pop("assignedRequest", None)
    with k.lock:
        k.pods = [p for p in k.pods if p["metadata"]["name"] not in GONE_PODS or
                  p["metadata"]["name"] == "stays-x7"]
        k.nodes.discard("node-spot")
        del k.jobs[("ci-agents", "jobless")]
        k.jobs[("ci-agents", "replaced-job")] = "owner-replaced-job-2"


def run_gone(env, extra=None, between=None, after=3):
    """A long-running janitor over gone_state: two cycles (the leader has
    seen the pods run their jobs), `between` if any, gone_pods, `after`
    more cycles.  Its metrics text, exit code and log."""
    gone_state(env)
    loop = Loop(env, extra)
    loop.wait_cycles(2)
    if between:
        between(loop)
    seen = loop.cycles()
    gone_pods(env)
    loop.wait_cycles(seen + after)
    text = loop.metrics()
    rc, log = loop.stop()
    return text, rc, log


def reload_other_pool_first(env, loop):
    """A reload that puts another pool first."""
    env.ado.pools["other-pool"] = 13
    env.ado.agents[13] = []
    with open(env.config, "w") as f:
        json.dump(dict(env.config_obj, pools=["other-pool", "aks-pool"]), f)
    lib.wait_until(lambda: "config reloaded" in loop.log(), 30 * SCALE, "the reload")


def test_gone_pods(res, tmp):
    """#16: a pipeline job whose pod is gone while its agent still runs it is
    recorded once, from what the leader saw at its previous pass: a Warning
    Event on the pod's Job (NodeDeleted when its node is gone, else Deleted),
    a log line and the counter; nothing for a job that ended by itself."""
    env = Env(tmp)
    # Across a reload that puts another pool first: what the leader
    # remembers follows its pool (by name, not by place).
    text, rc, log = run_gone(env, between=lambda loop: reload_other_pool_first(env, loop))
    evs = [e for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
    on = sorted((e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in evs)
    res.check(on == [("Job", "deleted-job"), ("Job", "spot-job")],
              "one Warning Event on each gone pod's Job that is still there, over three cycles "
              "(none for a Job gone or replaced, a bare pod, a job that ended)",
              json.dumps([(e["involvedObject"], e["message"]) for e in evs])[:900])
    msg = {e["involvedObject"]["name"]: e["message"] for e in evs}
    res.check("pipeline payments-api - CI run 20260901.41 (job request 1400041)" in msg.get("deleted-job", "") and
              "its pod ci-agents/deleted-job-x2 is gone (Deleted)" in msg.get("deleted-job", "") and
              "its pod ci-agents/spot-job-x1 is gone (NodeDeleted)" in msg.get("spot-job", ""),
              "the Event names the run, the pod and why it went", json.dumps(msg)[:900])
    job = [e for e in evs if e["involvedObject"]["name"] == "spot-job"]
    res.check(job and job[0]["involvedObject"] == {"kind": "Job", "apiVersion": "batch/v1", "namespace": "ci-agents",
                                                   "name": "spot-job", "uid": "owner-spot-job"} and
              job[0]["metadata"]["namespace"] == "ci-agents" and job[0]["type"] == "Warning",
              "the Event is about the Job (kind, apiVersion, uid), in its namespace", json.dumps(job)[:600])
    res.check('pipewarden_janitor_job_interruptions_total{pool="aks-pool",reason="NodeDeleted"} 1' in text and
              'pipewarden_janitor_job_interruptions_total{pool="aks-pool",reason="Deleted"} 4' in text,
              "counted once each: NodeDeleted 1, Deleted 4 (a Job and a bare pod deleted, a Job gone "
              "with its pod, a Job replaced)", "\n".join(l for l in text.splitlines() if "interruptions" in l))
    lines = [json.loads(l) for l in log.splitlines() if '"pipeline job interrupted"' in l]
    res.check(sorted(l["pod"] for l in lines if l.get("podGone") == "true") ==
              ["bare-agent", "deleted-job-x2", "jobless-x5", "replaced-job-x8", "spot-job-x1"],
              "a log line for each, podGone true, Event or not", str([l.get("pod") for l in lines]))
    nodes = [r[1] for r in env.kube.server.requests() if r[1].startswith("/api/v1/nodes/")]
    res.check("/api/v1/nodes/node-spot" in nodes and all(r[0] == "GET" for r in env.kube.server.requests()
                                                         if r[1].startswith("/api/v1/nodes")),
              "the gone pod's node is read (GET only)", str(sorted(set(nodes))))
    res.check(not any(e["involvedObject"]["kind"] == "Pod" for e in evs) and rc == 0,
              "no interruption Event on a pod that is gone; the janitor stops cleanly", str(rc))
    env.stop()

    # Not the leader, or a dry run: nothing recorded.
    for name, extra, lease_held in [("a dry run", ["--dry-run"], False), ("not the leader", [], True)]:
        env = Env(tmp)
        if lease_held:
            held_by_another(env)
        text, rc, log = run_gone(env, extra, after=2)
        evs = [e for e in env.kube.events if e["reason"] == "PipelineJobInterrupted"]
        res.check(evs == [] and "interruptions_total{" not in text, "%s: nothing recorded" % name,
                  json.dumps(evs)[:300])
        if extra:
            res.check(log.count('"would record a job interruption"') >= 5 and '"podGone":"true"' in log,
                      "a dry run says what it would record")
        env.stop()


def test_report(res, tmp):
    """#16: `pipewarden-janitor report` shows each pool's agents, the pod
    behind each and what the next cycle would do and why; it changes
    nothing and takes no Lease."""
    env = Env(tmp)
    standard_state(env)
    cmd = env.command()
    wrapper = len(shlex.split(ARGS.wrapper)) if ARGS.wrapper else 0
    report = cmd[:wrapper + 1] + ["report"] + cmd[wrapper + 1:]
    p = subprocess.run(report + ["--output", "json"], env=env.environ(), capture_output=True, text=True,
                       timeout=120 * SCALE)
    try:
        doc = json.loads(p.stdout)
    except ValueError:
        doc = {}
    pools = doc.get("pools", [])
    agents = {a["name"]: a for a in (pools[0].get("agents", []) if pools else [])}
    res.check(p.returncode == 0 and len(pools) == 1 and pools[0]["pool"] == "aks-pool" and len(agents) == 10,
              "report --output json: the pool and its ten agents", p.stdout[:300] + p.stderr[-300:])
    if len(agents) == 10:
        res.check(agents["dead-1"]["nextCycle"] == {"action": "delete", "reason": "offline"} and
                  agents["busy"]["nextCycle"] == {"action": "keep", "reason": "busy"} and
                  agents["vm-agent"]["nextCycle"]["reason"] == "unmanaged" and
                  agents["keda-placeholder-aks-pool"]["nextCycle"]["reason"] == "keep-agents",
                  "report: what the next cycle would do with each agent, and why",
                  json.dumps({k: v.get("nextCycle") for k, v in agents.items()}))
        res.check(agents["backed-by-live-pod"]["pod"] == {"namespace": "ci-agents", "name": "live-agent-pod",
                                                          "node": "node-b", "phase": "Running"} and
                  agents["dead-1"]["pod"] is None and agents["dead-2"]["offlineSeconds"] >= 90000,
                  "report: the pod behind each agent (or none), and how long it has been offline",
                  json.dumps(agents["backed-by-live-pod"]))
        res.check(agents["job-running-x3"]["job"]["pipeline"] == "payments-api - CI" and
                  agents["job-running-x3"]["job"]["run"] == "20260901.10",
                  "report: a busy agent's pipeline and run", json.dumps(agents["job-running-x3"]))
    p = subprocess.run(report, env=env.environ(), capture_output=True, text=True, timeout=120 * SCALE)
    lines = p.stdout.splitlines()
    res.check(p.returncode == 0 and lines and lines[0].startswith("pool aks-pool (id 12): 10 agents") and
              "NEXT CYCLE" in lines[1] and any(l.startswith("dead-1 ") and "delete: offline" in l for l in lines)
              and any("live-agent-pod" in l and "keep: pod-exists" in l for l in lines),
              "report (table): one row per agent with its pod and the next cycle's action", p.stdout[:1500])
    writes = [r for r in env.kube.server.requests() + env.ado.server.requests()
              if r[0] != "GET" and "/oauth2/" not in r[1]]
    leases = [r for r in env.kube.server.requests() if "/leases" in r[1]]
    res.check(not writes and not leases, "report: nothing written, no Lease read or taken", str(writes + leases))
    p = subprocess.run(cmd + ["--output", "json"], env=env.environ(), capture_output=True, text=True)
    res.check(p.returncode == 2 and "only 'pipewarden-janitor report' takes --output" in p.stderr,
              "--output without report: a usage error", p.stderr)
    env.stop()


def test_pool_scope(res, tmp):
    """#13.4: a missing pool fails alone; an outage holds no pod; a pool
    recreated under a new id is looked up again."""
    env = Env(tmp, cfg={"pools": ["aks-pool", "ghost-pool"]})
    standard_state(env)
    loop = Loop(env)
    loop.wait_cycles(1)
    text = loop.metrics()
    res.check(env.agent_ids() == EXPECT_AGENTS_LEFT and env.pod_names() == EXPECT_PODS_LEFT,
              "a missing pool: every other pool's agents and every pod are still cleaned",
              str(env.agent_ids()) + str(env.pod_names()))
    res.check('pipewarden_janitor_pool_errors_total{pool="ghost-pool",reason="not-found"}' in text,
              "the missing pool is counted in pool_errors_total{pool,reason}")
    res.check("no agent pool named 'ghost-pool'" in loop.log() and '"pool":"ghost-pool"' in loop.log(),
              "and logged with its name and the fix")
    # The pool is deleted and recreated: its cached id 12 now answers 404.
    env.ado.agents[14] = env.ado.agents.pop(12)
    env.ado.pools["aks-pool"] = 14
    env.ado.agents[14].append(sim.agent(40, "dead-40", changed_ago=3600, pod_uid="uid-gone-40"))
    n = loop.cycles()
    loop.wait_cycles(n + 2)
    res.check(40 not in [a["id"] for a in env.ado.agents[14]],
              "a pool recreated under a new id: looked up again after the 404, its agent deleted")
    loop.stop()
    env.stop()


def test_hanging_ado(res, tmp):
    """#13.5: Azure DevOps accepts connections and never answers, two pools:
    the cycle still ends within half the Lease, pods cleaned, exit 1."""
    env = Env(tmp, cfg={"pools": ["aks-pool", "linux-large"]})
    env.ado.pools["linux-large"] = 13
    env.ado.agents[13] = []
    standard_state(env)
    env.ado.faults["hang"] = 120
    t0 = time.monotonic()
    rc, log = env.once()
    took = time.monotonic() - t0
    res.check(rc == 1 and took < 8.5 + 6, "a hanging Azure DevOps: the cycle ends within half the Lease "
              "(%.1f s; the Lease is 17 s)" % took, log[-500:])
    res.check(env.pod_names() == EXPECT_PODS_LEFT, "and every due pod is still deleted", str(env.pod_names()))
    res.check(log.count('"reason":"timeout"') >= 1, "the pools' failures say timeout", log[-500:])
    env.ado.faults.clear()
    env.stop()


def test_janitor_identity(res, tmp):
    """#13.8: the janitor exchanges its token as its own identity (config
    janitor.identity, else its pod's AZURE_CLIENT_ID), never the agents'."""
    env = Env(tmp, wi=True, cfg={"janitor": {"identity": {"clientId": "22222222-0000-4000-8000-000000000002",
                                                          "tenantId": "aaaaaaaa-0000-4000-8000-000000000001"}}})
    env.ado.client_id = "22222222-0000-4000-8000-000000000002"
    # The authority from the config (the simulator's: no request leaves this machine).
    env.config_obj["identity"]["authorityHost"] = env.ado.authority
    env.write("config.json", json.dumps(env.config_obj))
    standard_state(env)
    rc, log = env.once(env={"AZURE_CLIENT_ID": "", "AZURE_AUTHORITY_HOST": ""})
    forms = [r[4].decode() for r in env.ado.server.requests("POST") if "/oauth2/" in r[1]]
    res.check(rc == 0 and env.agent_ids() == EXPECT_AGENTS_LEFT,
              "an empty AZURE_AUTHORITY_HOST: the config's authority is used, the cycle works", log[-300:])
    res.check(forms and all("client_id=22222222-0000-4000-8000-000000000002" in f for f in forms),
              "config janitor.identity.clientId is the one exchanged", str(forms[:1])[:200])
    res.check(not any("00000000-0000-0000-0000-000000000000" in f for f in forms),
              "never the agents' identity.clientId")
    env.stop()
    # No janitor.identity: its pod's AZURE_CLIENT_ID (the Azure webhook's).
    env = Env(tmp, wi=True)
    standard_state(env)
    rc, log = env.once()
    forms = [r[4].decode() for r in env.ado.server.requests("POST") if "/oauth2/" in r[1]]
    res.check(rc == 0 and forms and all("client_id=" + env.ado.client_id in f for f in forms),
              "no janitor.identity: AZURE_CLIENT_ID from its pod", log[-300:])
    # A 401 from Azure DevOps drops the cached Entra token.
    before = env.ado.token_requests
    loop = Loop(env)
    loop.wait_cycles(1)
    env.ado.faults["unauthorized"] = 1
    n = loop.cycles()
    loop.wait_cycles(n + 3)
    rc, log = loop.stop()
    res.check(env.ado.token_requests == before + 2 and "TF400813" in log,
              "a 401 drops the cached Entra token: one new exchange follows, then it is cached again",
              "%d -> %d" % (before, env.ado.token_requests))
    env.stop()


def test_small_faults(res, tmp):
    """#13.9: stale pool gauges on a replica that lost the Lease; /healthz of
    a wedged loop; SIGTERM with an Azure DevOps call in flight."""
    env = Env(tmp)
    standard_state(env)
    loop = Loop(env)
    loop.wait_cycles(1)
    res.check('pipewarden_janitor_agents{pool="aks-pool"' in loop.metrics(), "the leader exports the pool gauges")
    lease = env.kube.leases[(NS, "pipewarden-janitor")]
    lease["spec"]["holderIdentity"] = "janitor-other"
    lease["spec"]["renewTime"] = sim.now_rfc3339(time.time() + 3600, True)
    lease["metadata"]["resourceVersion"] = env.kube.next_rv()
    lib.wait_until(lambda: "pipewarden_janitor_is_leader 0" in loop.metrics(), 30 * SCALE, "leadership lost")
    text = loop.metrics()
    res.check("pipewarden_janitor_agents{" not in text, "a replica that lost the Lease drops the pool gauges")
    res.check("pipewarden_janitor_last_cycle_timestamp_seconds " in text, "last_cycle_timestamp_seconds exported")
    res.check(lib.http_get(loop.port, "/healthz")[0] == 200, "/healthz 200 while cycles finish")
    # A wedged loop (every call is bounded, so stop the process itself): no
    # cycle finishes for more than ten intervals (10 s).  The request is
    # sent before it continues, and its next cycle is held up by a slow API.
    loop.p.send_signal(signal.SIGSTOP)
    time.sleep(11)      # the time that must pass is what is tested
    env.kube.faults["hang"] = 3
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", loop.port, timeout=20)
    c.request("GET", "/healthz")
    loop.p.send_signal(signal.SIGCONT)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    res.check(r.status == 503 and "no cycle has finished" in body,
              "/healthz fails after ten intervals without a finished cycle", "%d %s" % (r.status, body))
    env.kube.faults.clear()
    res.check(lib.eventually(lambda: lib.http_get(loop.port, "/healthz")[0] == 200, 30 * SCALE),
              "/healthz recovers once a cycle finishes")
    loop.stop()
    env.stop()
    # SIGTERM while an Azure DevOps read hangs: it is given up, the Lease released.
    env = Env(tmp)
    standard_state(env)
    env.ado.faults["hang"] = 60
    loop = Loop(env)
    lib.wait_until(lambda: len(env.ado.server.requests()) > 0, 30 * SCALE, "an Azure DevOps call")
    t0 = time.monotonic()
    rc, log = loop.stop()
    took = time.monotonic() - t0
    res.check(rc == 0 and took < 10, "SIGTERM gives up a hanging Azure DevOps read (%.1f s)" % took, log[-400:])
    res.check(env.kube.leases[(NS, "pipewarden-janitor")]["spec"]["holderIdentity"] == "",
              "and releases the Lease within the grace period")
    env.ado.faults.clear()
    env.stop()


def test_flags(res, tmp):
    b = ARGS.bin
    p = subprocess.run([b, "--help"], capture_output=True, text=True)
    res.check(p.returncode == 0 and "--dry-run" in p.stdout and "--kube-api" in p.stdout, "--help")
    p = subprocess.run([b, "--version"], capture_output=True, text=True)
    res.check(p.stdout.startswith("pipewarden-janitor 0.1.0"), "--version")
    p = subprocess.run([b, "--check-config", "--config", lib.DEFAULT_CONFIG], capture_output=True, text=True)
    res.check(p.returncode == 0 and p.stdout.strip() == "configuration OK", "--check-config")
    env = {k: v for k, v in os.environ.items() if k != "NODE_NAME"}
    p = subprocess.run([b, "--once", "--config", lib.DEFAULT_CONFIG], capture_output=True, text=True, env=env)
    res.check(p.returncode == 2 and "--node or NODE_NAME" in p.stderr, "no node: exit 2")
    p = subprocess.run([b, "--once", "--frobnicate"], capture_output=True, text=True)
    res.check(p.returncode == 2, "unknown flag: exit 2")


def main():
    global ARGS, SCALE
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--results")
    ap.add_argument("--wrapper", default="")
    ap.add_argument("--suite", default="janitor end-to-end")
    ap.add_argument("--quick", action="store_true", help="the main scenarios only (valgrind)")
    ap.add_argument("--only", action="append", default=[], metavar="TEST",
                    help="run this test function only (repeatable), e.g. test_refused_writes")
    ARGS = ap.parse_args()
    if ARGS.wrapper:
        SCALE = 10.0
    res = lib.Results(ARGS.suite, ARGS.results)
    with tempfile.TemporaryDirectory() as tmp:
        tests = (test_standard_cycle, test_pod_annotations, test_interruptions, test_gone_pods, test_report, test_job_retry, test_job_backoff,
                 test_reregistered_agent, test_capabilities_always, test_pool_name_case, test_api_version,
                 test_interruption_attribution, test_refused_writes, test_lifecycle, test_waiting, test_jobs_without_pod, test_reload_in_place, test_lease_half_life, test_pool_scope, test_hanging_ado, test_janitor_identity, test_small_faults, test_dry_run, test_outages, test_ado_faults,
                 test_kube_faults, test_paging, test_busy_race, test_leases, test_workload_identity, test_metrics,
                 test_sigterm_mid_cycle, test_lease_lost_mid_cycle, test_entra_down, test_slow_apis,
                 test_flags)
        if ARGS.quick:
            tests = (test_standard_cycle, test_dry_run, test_ado_faults, test_workload_identity,
                     test_metrics, test_gone_pods, test_reregistered_agent, test_refused_writes, test_waiting)
        if ARGS.only:
            tests = [t for t in tests if t.__name__ in ARGS.only]
            if len(tests) != len(ARGS.only):
                ap.error("--only: no such test among %s" % ", ".join(ARGS.only))
        for t in tests:
            try:
                t(res, tmp)
            except Exception as e:  # noqa: BLE001 - a crash in a scenario is a failure
                import traceback
                traceback.print_exc()
                res.check(False, t.__name__ + " ran to the end", repr(e))
        res.check(not SANITIZER_REPORTS, "no sanitizer report in any --once run (ASan builds)",
                  "\n".join(SANITIZER_REPORTS[:1]))
        if ARGS.wrapper:
            res.check(not VALGRIND_ERRORS, "valgrind: no memory errors or definite leaks in any janitor run",
                      "\n".join(VALGRIND_ERRORS[:1]))
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
