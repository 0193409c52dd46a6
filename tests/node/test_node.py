#!/usr/bin/python3
"""make e2e-node: the agent lifecycle on real parts.

A real node (tests/node/node.py: kubelet, containerd, runc, CNI) joins the
pinned control plane; pipewarden's webhook completes agent pods (first as
the chart runs it: its own Deployment and DaemonSet pods from make image,
installed with helm; then as host processes for the scenarios that need a
janitor of their own config); an agent
that behaves like Microsoft's (tests/node/agent.py, in an image built here)
registers with the Azure DevOps simulator, takes its job, runs it and exits;
the real KEDA operator scales agent Jobs from the pool's queue; the janitor
cleans up after them.  Every pod status here is the kubelet's.

usage: test_node.py --webhook BIN --janitor BIN --image DIR [--results FILE] [--only TEST] [--keep]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, "..", "support"), os.path.join(HERE, "..", "cluster"), HERE]
import cluster  # noqa: E402
import lib  # noqa: E402
import node  # noqa: E402
import sim  # noqa: E402
import test_cluster as tc  # noqa: E402
from cluster import ns_path  # noqa: E402

ARGS = None
NS = "azdo-agents"
PAT = tc.PAT


class World(tc.World):
    """The control plane with a real node, the simulators, pipewarden's
    webhook (on the host, called by url) and config."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cp = node.ControlPlane(os.path.join(tmp, "cp"))
        os.makedirs(self.cp.dir)
        self.cp.start()
        self.api = self.cp.api
        self.certdir = os.path.join(tmp, "webhook-certs")
        self.ado = sim.AdoSim(self.certdir_made())
        self.ado.pat = PAT
        self.ado.pools["aks-pool"] = 12
        self.ado.agents[12] = []
        self.ado.job_requests[12] = []
        self.ado.session_timeout = 3.0     # a killed agent goes offline, its job abandoned 5 s later
        self.images = os.path.join(tmp, "images")
        os.makedirs(self.images)
        t0 = time.monotonic()
        tars = [node.pause_image(self.images), node.agent_image(self.images, self.certdir + "/ca.crt")]
        self.images_built_in = time.monotonic() - t0
        self.node = node.Node(self.cp, os.path.join(tmp, "node"), images=tars)
        self.node.start()
        self.config = self.write_config({})
        self.webhook = None
        self.janitors = {}
        self.tokens = {}
        self.proxy = cluster.Proxy(self.certdir, self.cp.url, self.cp.pki + "/ca.crt")
        self.all_janitor_calls = []

    def write_config(self, over, name="config.json"):
        c = {"organizationUrl": self.ado.url, "defaultPool": "aks-pool", "pools": ["aks-pool"],
             "identity": {"mode": "pat", "patSecret": "azp-pat"},
             "nodeSelector": {"workload": "ci"},
             "defaultProfile": "node",
             "profiles": {"node": {"requests": {"cpu": "100m", "memory": "64Mi"},
                                   "limits": {"cpu": "1", "memory": "256Mi"},
                                   "max": {"cpu": "2", "memory": "1Gi"}}},
             "janitor": {"intervalSeconds": 1, "finishedPodTtlSeconds": 1, "offlineGraceSeconds": 1,
                         "stuckPendingSeconds": 30, "pendingTimeoutSeconds": 60,
                         "idleAgentSeconds": 0, "registrationTimeoutSeconds": 0}}
        with open(os.path.join(lib.ROOT, "manifests", "base", "config.json")) as f:
            base = json.load(f)
        base.pop("tolerations", None)
        c = lib.deep_merge(lib.deep_merge(base, c), over)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(c, f)
        return path

    def stop(self):
        problems = []
        for p in list(self.janitors.values()):
            cluster.kill(p)
        if getattr(self, "keda", None) is not None:
            self.keda.stop()
        self.stop_webhook()
        try:
            problems = self.node.stop()
        finally:
            self.proxy.stop()
            self.ado.stop()
            self.cp.stop()
        return problems


def agent_job(name, run_ns=NS, extra_env=()):
    """An agent Job as KEDA makes one from manifests/examples' PAT ScaledJob,
    with this suite's image (hostNetwork: the simulator is on 127.0.0.1)."""
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": run_ns},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": {"pipewarden.io/inject": "true", "pipewarden.io/identity": "pat"}},
                "spec": {"restartPolicy": "Never", "hostNetwork": True, "dnsPolicy": "Default",
                         "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "agent", "image": node.AGENT_IMAGE,
                                         "imagePullPolicy": "Never", "env": list(extra_env)}]}}}}


def agent_namespace(w):
    """The opted-in agent namespace with the agents' PAT Secret."""
    tc.namespace(w.api, NS, True)
    w.api.create(ns_path("secrets", NS), {"apiVersion": "v1", "kind": "Secret",
                                          "metadata": {"name": "azp-pat"}, "stringData": {"token": PAT}})


# ---- the chart's own pods on the node ------------------------------------

def metric_sum(port, name, *having):
    """The sum of a metric's series, scraped from port, whose labels hold
    every string of having."""
    return lib.metric_sum(lib.http_get(port, "/metrics")[1], name, *having)


def chart_pods(w):
    return w.api.get(ns_path("pods", tc.SYS_NS), labelSelector="app.kubernetes.io/name in "
                     "(pipewarden-webhook,pipewarden-janitor)")["items"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def install_chart(res, w):
    """`helm install` as docs/install.md shows it, from `make image` imported
    into the node's containerd: the webhook's Deployment and the janitor's
    DaemonSet run on the real node.  Both in the node's network (hostNetwork),
    as a pod that must reach kube-apiserver or the simulator on 127.0.0.1 is
    here; the janitor finds kube-apiserver through janitor.extraEnv (no
    kube-proxy routes the kubernetes Service) and trusts the simulator's CA
    through janitor.adoCA.  kube-apiserver calls the webhook through the
    chart's Service (its EndpointSlice: the pod on the node's address)."""
    version = tc.image_version()
    w.node.ctr("images", "import", "--all-platforms",
               os.path.join(ARGS.image, "pipewarden-%s.docker.tar" % version))
    # docs/install.md's registry: the image as a user's push would name it.
    w.node.ctr("images", "tag", "ghcr.io/pipewarden/pipewarden:" + version,
               "registry.example.com/platform/pipewarden:" + version)
    if not w.api.exists("/api/v1/namespaces/" + tc.SYS_NS):
        tc.namespace(w.api, tc.SYS_NS, False)
    w.api.create(ns_path("secrets", tc.SYS_NS), {"apiVersion": "v1", "kind": "Secret",
                                                 "metadata": {"name": "azp-pat"}, "stringData": {"token": PAT}})
    with open(w.certdir + "/ca.crt") as f:
        w.api.create(ns_path("configmaps", tc.SYS_NS), {"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "ado-ca"}, "data": {"ca.crt": f.read()}})
    with open(w.config) as f:
        config = json.load(f)
    w.chart_ports = {"webhook": lib.free_port(), "webhook-metrics": lib.free_port(), "janitor": lib.free_port()}
    values = {"image": {"tag": version, "pullPolicy": "Never"}, "config": config,
              "webhook": {"replicas": 1, "hostNetwork": True, "port": w.chart_ports["webhook"],
                          "metricsPort": w.chart_ports["webhook-metrics"]},
              "janitor": {"pat": {"enabled": True}, "hostNetwork": True, "metricsPort": w.chart_ports["janitor"],
                          "adoCA": {"configMap": "ado-ca"},
                          "extraEnv": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                                       {"name": "KUBERNETES_SERVICE_PORT", "value": w.cp.url.rsplit(":", 1)[1]}]}}
    p = tc.helm(w, "install", *tc.documented_helm("install"), values=values)
    if not res.check(p.returncode == 0, "helm install, as docs/install.md shows it, with make image's image",
                     (p.stdout + p.stderr)[-800:]):
        raise RuntimeError("helm install failed")

    def both_ready():
        pods = chart_pods(w)
        return len(pods) == 2 and all(ready(q) and q["spec"].get("nodeName") == node.NODE_NAME for q in pods)
    ok = lib.eventually(both_ready, 120)
    res.check(ok, "the chart's webhook pod and janitor pod run from the image on the real node, Ready",
              json.dumps([(q["metadata"]["name"], q["status"].get("phase"), q["status"].get("containerStatuses"))
                          for q in chart_pods(w)])[:1500])
    if not ok:
        raise RuntimeError("the chart's pods are not Ready")


def uninstall_chart(res, w):
    """The leader's pod taken off the node (its DaemonSet's nodeSelector
    changed): the kubelet's SIGTERM makes it hand back its Lease.  Then helm
    uninstall: the kubelet stops the webhook's pod and everything goes.
    (A plain uninstall leaves the Lease held until it expires: the janitor's
    Role and ServiceAccount are deleted with its DaemonSet, so its last write
    can be refused.)"""
    p = w.cp.kubectl("--namespace", tc.SYS_NS, "patch", "daemonset", "pipewarden-janitor", "--patch",
                     json.dumps({"spec": {"template": {"spec": {"nodeSelector": {"pipewarden.test/nowhere": "x"}}}}}))
    gone = p.returncode == 0 and lib.eventually(
        lambda: not [q for q in chart_pods(w) if q["metadata"]["name"].startswith("pipewarden-janitor")], 60)
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases/pipewarden-janitor" % tc.SYS_NS
    lease = w.api.get(path) if w.api.exists(path) else {"spec": {"holderIdentity": "(no Lease)"}}
    res.check(gone and not lease["spec"].get("holderIdentity"),
              "the janitor's pod, stopped by the kubelet, handed back its Lease", json.dumps(lease["spec"]))
    p = tc.helm(w, "uninstall", *tc.documented_helm("uninstall"), "--wait", "--timeout", "90s")
    res.check(p.returncode == 0 and lib.eventually(lambda: not chart_pods(w), 90),
              "helm uninstall: the kubelet stops the chart's pods and they go", (p.stdout + p.stderr)[-600:])
    for kind, name in (("secrets", "azp-pat"), ("configmaps", "ado-ca")):
        w.api.delete(ns_path(kind, tc.SYS_NS, name))


def test_chart_one_job(res, w):
    """#23 item 2: one queued job, one agent Job, with pipewarden as the
    chart runs it: kube-apiserver calls the webhook pod through the chart's
    Service; the agent registers, runs its job and exits; the janitor pod
    (leader, its token the kubelet's, so the shipped policy checks its node)
    deletes the finished Job and the dead agent."""
    mwc = w.api.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pipewarden")
    svc = mwc["webhooks"][0]["clientConfig"].get("service", {})
    slices = w.api.get("/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices" % tc.SYS_NS,
                       labelSelector="kubernetes.io/service-name=pipewarden-webhook")["items"]
    res.check(svc.get("name") == "pipewarden-webhook" and "url" not in mwc["webhooks"][0]["clientConfig"] and
              any(e["addresses"] == [node.NODE_IP] for sl in slices for e in sl.get("endpoints", [])),
              "the webhook configuration names the chart's Service, whose EndpointSlice holds the webhook "
              "pod on the real node", json.dumps([svc, [sl.get("endpoints") for sl in slices]])[:600])
    wm = w.chart_ports["webhook-metrics"]
    before = metric_sum(wm, "pipewarden_webhook_requests_total")
    w.ado.job_requests[12].append(sim.job_request(7051, time.time(), run="succeed:1"))
    w.api.create(ns_path("jobs", NS), agent_job("agent-chart"))
    pod = lib.wait_until(lambda: (pods_of(w, "agent-chart") or [None])[0], 60, "the Job's pod")
    env = {e["name"] for e in pod["spec"]["containers"][0].get("env", [])}
    res.check("PIPEWARDEN_POD_UID" in env and "pipewarden.io/injected" in pod["metadata"].get("annotations", {}) and
              metric_sum(wm, "pipewarden_webhook_requests_total") > before,
              "kube-apiserver called the chart's webhook pod, which completed the agent pod", str(sorted(env)))
    name = pod["metadata"]["name"]
    lib.wait_until(lambda: [r for r in w.ado.job_requests[12] if r["requestId"] == 7051 and r.get("result")],
                   90, "the agent's job")
    jm = w.chart_ports["janitor"]
    res.check(lib.eventually(lambda: not w.api.exists(ns_path("jobs", NS, "agent-chart")) and
                             not agent_named(w, name), 60),
              "the chart's janitor pod deletes the finished Job and, its pod gone, the dead agent",
              json.dumps(agent_named(w, name))[:300])
    res.check(metric_sum(jm, "pipewarden_janitor_is_leader") == 1 and
              metric_sum(jm, "pipewarden_janitor_agents_deleted_total") >= 1 and
              metric_sum(jm, "pipewarden_janitor_pods_deleted_total") >= 1,
              "its /metrics: the leader, an agent and a pod (by its Job) deleted",
              "leader %s agents %s pods %s" % (metric_sum(jm, "pipewarden_janitor_is_leader"),
                                             metric_sum(jm, "pipewarden_janitor_agents_deleted_total"),
                                             metric_sum(jm, "pipewarden_janitor_pods_deleted_total")))


def test_drain(res, w):
    """A node drained as an autoscaler or an operator does it: cordoned, then
    its agent pods evicted (kubectl drain, the Eviction API).  On the cordon
    the chart's janitor retires the idle agent at once (registration first,
    then its Job) and leaves the busy one to its job; the eviction then ends
    that job: the leader records it (Evicted, on its Job), the service
    abandons it, and the dead agent goes."""
    jm = w.chart_ports["janitor"]
    w.ado.job_requests[12].append(sim.job_request(7951, time.time(), run="hang"))
    w.api.create(ns_path("jobs", NS), agent_job("agent-busy"))
    wait_running_job(w, 7951)
    busy = pods_of(w, "agent-busy")[0]["metadata"]["name"]
    w.api.create(ns_path("jobs", NS), agent_job("agent-idle"))
    idle = lib.wait_until(lambda: (pods_of(w, "agent-idle") or [None])[0], 60, "the idle pod")["metadata"]["name"]
    lib.wait_until(lambda: [a for a in agent_named(w, idle) if a["status"] == "online"], 60,
                   "the idle agent online")
    try:
        p = w.cp.kubectl("cordon", node.NODE_NAME)
        res.check(p.returncode == 0, "kubectl cordon", p.stderr)
        res.check(lib.eventually(lambda: not agent_named(w, idle) and
                                 not w.api.exists(ns_path("jobs", NS, "agent-idle")), 30),
                  "on the cordoned node the idle agent is retired at once: its registration, then its Job",
                  json.dumps(agent_named(w, idle))[:300])
        evs = [e for e in w.api.get(ns_path("events", NS))["items"] if e.get("reason") == "PipewardenRetired"]
        res.check(any("node-draining" in e["message"] for e in evs) and
                  metric_sum(jm, "pipewarden_janitor_agents_retired_total", 'reason="node-draining"') == 1,
                  "a PipewardenRetired Event and the counter say node-draining",
                  json.dumps([e["message"] for e in evs])[:600])
        cycled = metric_sum(jm, "pipewarden_janitor_last_cycle_timestamp_seconds")
        time.sleep(3)       # several more cycles on the cordoned node
        req = [r for r in w.ado.job_requests[12] if r["requestId"] == 7951][0]
        res.check(metric_sum(jm, "pipewarden_janitor_last_cycle_timestamp_seconds") >= cycled + 2 and
                  container_status(w, busy)[1] == "Running" and agent_named(w, busy) and not req.get("result"),
                  "the busy agent is left to its job on the cordoned node, cycle after cycle")
        p = w.cp.kubectl("drain", node.NODE_NAME, "--pod-selector", "pipewarden.io/managed=true",
                         "--ignore-daemonsets", "--timeout", "90s")
        res.check(p.returncode == 0 and not w.api.exists(ns_path("pods", NS, busy)),
                  "kubectl drain evicts the busy agent's pod; SIGTERM ends it", (p.stdout + p.stderr)[-600:])

        def recorded():
            return [e for e in w.api.get(ns_path("events", NS))["items"]
                    if e.get("reason") == "PipelineJobInterrupted" and "7951" in e.get("message", "")]
        res.check(lib.eventually(recorded, 30) and
                  recorded()[0]["involvedObject"]["kind"] == "Job" and "Evicted" in recorded()[0]["message"] and
                  metric_sum(jm, "pipewarden_janitor_job_interruptions_total", 'reason="Evicted"') == 1,
                  "the leader records the evicted job: an Event on its Job naming request 7951 and Evicted, "
                  "the counter", json.dumps([e["message"] for e in recorded()]))
        res.check(lib.eventually(lambda: not agent_named(w, busy), 60) and
                  [r for r in w.ado.job_requests[12] if r["requestId"] == 7951][0].get("result") == "abandoned",
                  "the service abandons the job of the evicted agent, and the janitor deletes the agent")
    finally:
        w.cp.kubectl("uncordon", node.NODE_NAME)
        w.api.delete(ns_path("jobs", NS, "agent-busy"), propagationPolicy="Background")


def prepare(w):
    """pipewarden installed from kustomize as the cluster suite installs it,
    but its Deployment and DaemonSet: for the scenarios that need a janitor
    with their own config (or one cycle at a time) the webhook and the
    janitor run on the host (the webhook called by url), and the janitor's
    token is bound to a stand-in pod of its ServiceAccount on the real node
    (the shipped ValidatingAdmissionPolicy checks the node in the token)."""
    objs = [o for o in w.render() if o["kind"] not in ("Deployment", "DaemonSet")]
    w.webhook_port = lib.free_port()
    for o in objs:
        if o["kind"] == "MutatingWebhookConfiguration":
            cc = o["webhooks"][0]["clientConfig"]
            o["webhooks"][0]["clientConfig"] = {"url": "https://localhost:%d/mutate" % w.webhook_port,
                                                "caBundle": cc["caBundle"]}
    w.installed = objs
    p = w.apply(objs)
    if p.returncode != 0:
        raise RuntimeError("kubectl apply: " + p.stderr[-800:])
    w.api.create(ns_path("pods", tc.SYS_NS), {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "janitor-stand-in", "labels": {"app.kubernetes.io/name": "pipewarden-janitor"}},
        "spec": {"serviceAccountName": "pipewarden-janitor", "nodeName": node.NODE_NAME,
                 "tolerations": [{"operator": "Exists"}],
                 "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "pause", "image": node.PAUSE_IMAGE, "imagePullPolicy": "Never",
                                 "securityContext": {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}}]}})
    w.start_webhook()


def pods_of(w, job):
    return w.api.get(ns_path("pods", NS), labelSelector="job-name=" + job)["items"]


def test_one_job(res, w):
    """One queued job, one agent Job: the webhook completes the pod, the
    agent registers, runs its job, reports it and exits; the kubelet says
    Succeeded; the janitor deletes the Job after finishedPodTtlSeconds and
    the dead agent after offlineGraceSeconds."""
    now = time.time()
    w.ado.job_requests[12].append(sim.job_request(7001, now, run="succeed:2"))
    w.api.create(ns_path("jobs", NS), agent_job("agent-one"))
    pod = lib.wait_until(lambda: (pods_of(w, "agent-one") or [None])[0], 60, "the Job's pod")
    env = {e["name"]: e for e in pod["spec"]["containers"][0].get("env", [])}
    res.check("PIPEWARDEN_POD_UID" in env and env.get("AZP_TOKEN_FILE", {}).get("value") == "/var/run/secrets/azp/token",
              "the webhook completed the agent pod (PAT file, pod uid)", json.dumps(sorted(env))[:300])
    name = pod["metadata"]["name"]

    def phase():
        return w.api.get(ns_path("pods", NS, name))["status"].get("phase")
    lib.wait_until(lambda: phase() in ("Succeeded", "Failed"), 120, "the agent pod to finish")
    st = w.api.get(ns_path("pods", NS, name))["status"]
    term = st["containerStatuses"][0]["state"].get("terminated", {})
    res.check(st["phase"] == "Succeeded" and term.get("exitCode") == 0,
              "the kubelet reports the agent container exited 0: Succeeded", json.dumps(st)[:600])
    req = w.ado.job_requests[12][-1]
    ag = [a for a in w.ado.agents[12] if a["name"] == name]
    res.check(req.get("result") == "succeeded" and ag and ag[0]["status"] == "offline" and
              ag[0]["systemCapabilities"].get("PIPEWARDEN_POD_UID") == pod["metadata"]["uid"] and
              "AZP_TOKEN_FILE" not in ag[0]["systemCapabilities"],
              "the agent registered with its pod's uid, ran the job, went offline",
              json.dumps(ag)[:600] + json.dumps(req)[:300])
    time.sleep(2)       # past finishedPodTtlSeconds and offlineGraceSeconds
    p = w.janitor_once(node.NODE_NAME)
    res.check(p.returncode == 0, "the janitor on the real node exits 0", p.stderr[-800:])
    # The agent whose pod still exists is kept; once the Job's pod is gone
    # (the garbage collector), the next cycle deletes the agent.
    tc.wait_gone(w.api, ns_path("pods", NS, name))
    p = w.janitor_once(node.NODE_NAME)
    res.check(tc.wait_gone(w.api, ns_path("jobs", NS, "agent-one")) and
              not [a for a in w.ado.agents[12] if a["name"] == name],
              "the finished Job and the dead agent are deleted",
              "\n".join(l for l in p.stderr.splitlines() if '"agent' in l or "keep" in l)[-1500:])


def example(kind, name, path="keda-scaledjob-pat.yaml"):
    import yaml
    with open(os.path.join(lib.ROOT, "manifests", "examples", path)) as f:
        return [d for d in yaml.safe_load_all(f) if d and d["kind"] == kind and d["metadata"]["name"] == name][0]


def for_this_node(template, w):
    """A pod template from manifests/examples with this suite's agent image:
    hostNetwork (the simulator is on 127.0.0.1), AZP_URL the simulator."""
    spec = template["spec"]
    spec.update(hostNetwork=True, dnsPolicy="Default", terminationGracePeriodSeconds=5)
    spec.pop("serviceAccountName", None)
    for c in spec["containers"]:
        c.update(image=node.AGENT_IMAGE, imagePullPolicy="Never")
        c.pop("args", None)
        for e in c.get("env", []):
            if e["name"] == "AZP_URL":
                e["value"] = w.ado.url
    return template


def start_keda(w):
    if getattr(w, "keda", None) is None:
        w.keda = node.Keda(w.cp, os.path.join(w.tmp, "keda"), w.certdir, w.certdir + "/ca.crt").start()
    return w.keda


def agent_online_at(w, pod_name):
    for a in w.ado.agents[12]:
        if a["name"] == pod_name and a.get("systemCapabilities", {}).get("PIPEWARDEN_POD_UID"):
            return a
    return None


class Janitor:
    """A long-running janitor for the real node (as the DaemonSet runs it),
    its metrics on a local port."""

    def __init__(self, w, config=None):
        cmd, env, _ = w.janitor_cmd(node.NODE_NAME, config)
        self.port = lib.free_port()
        cmd[cmd.index("--metrics-port") + 1] = str(self.port)
        self.log_path = os.path.join(w.tmp, "janitor-%d.log" % self.port)
        self.p = cluster.spawn(cmd, self.log_path, env)
        lib.wait_until(lambda: lib.port_open(self.port), 30, "the janitor's metrics port")

    def metric(self, name, labels=""):
        return lib.metric_value(lib.http_get(self.port, "/metrics")[1], name, labels)

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        cluster.kill(self.p)


def container_status(w, pod):
    st = w.api.get(ns_path("pods", NS, pod))["status"]
    return (st.get("containerStatuses") or [{}])[0], st.get("phase")


def test_oom(res, w):
    """A job that allocates past its limit is really OOMKilled by the kernel:
    the leader names that run on the pod's annotation, an Event and the
    counter.  On a restarted container (restartPolicy OnFailure) the agent
    registers again under its id and takes the next job: the old OOM kill
    in lastState is never blamed on it."""
    j = Janitor(w)
    try:
        now = time.time()
        w.ado.job_requests[12].append(sim.job_request(7201, now, run="oom"))
        w.api.create(ns_path("jobs", NS), agent_job("agent-oom"))
        pod = lib.wait_until(lambda: (pods_of(w, "agent-oom") or [None])[0], 60, "the pod")["metadata"]["name"]
        lib.wait_until(lambda: container_status(w, pod)[1] in ("Failed", "Succeeded"), 120, "the OOM kill")
        cs, phase = container_status(w, pod)
        term = cs.get("state", {}).get("terminated", {})
        res.check(phase == "Failed" and term.get("reason") == "OOMKilled" and term.get("exitCode") == 137,
                  "the kernel kills the agent past its 256Mi limit: OOMKilled, exit 137, Failed", json.dumps(cs))

        def annotated():
            return w.api.get(ns_path("pods", NS, pod))["metadata"].get("annotations", {}).get(
                "pipewarden.io/interruption")
        res.check(lib.eventually(lambda: annotated() == "7201:OOMKilled", 30),
                  "the leader names the run the OOM kill ended on the pod", str(annotated()))
        evs = [e for e in w.api.get(ns_path("events", NS))["items"]
               if e.get("reason") == "PipelineJobInterrupted" and e["involvedObject"]["name"] == pod]
        res.check(len(evs) == 1 and "OOMKilled" in evs[0]["message"],
                  "one PipelineJobInterrupted Event", json.dumps([e["message"] for e in evs]))
        res.check(lib.eventually(lambda: j.metric("pipewarden_janitor_job_interruptions_total",
                                                  'pool="aks-pool",reason="OOMKilled"') == 1, 15),
                  "pipewarden_janitor_job_interruptions_total{reason=\"OOMKilled\"} 1")
        # A restarted container: OOM on its first job, then the next job.
        now = time.time()
        w.ado.job_requests[12] += [sim.job_request(7202, now, run="oom"),
                                   sim.job_request(7203, now + 1, run="succeed:8")]
        job = agent_job("agent-restart")
        job["spec"]["backoffLimit"] = 2
        job["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
        w.api.create(ns_path("jobs", NS), job)
        pod = lib.wait_until(lambda: (pods_of(w, "agent-restart") or [None])[0], 60, "the pod")["metadata"]["name"]
        blamed, seen = set(), {}

        def watch():
            try:
                p = w.api.get(ns_path("pods", NS, pod))
            except cluster.ApiError:        # the janitor deleted its finished Job
                return bool(seen)
            a = p["metadata"].get("annotations", {}).get("pipewarden.io/interruption")
            if a:
                blamed.add(a)
            if p["status"].get("phase") in ("Succeeded", "Failed"):
                seen.update(phase=p["status"]["phase"], cs=p["status"]["containerStatuses"][0])
            return False
        lib.wait_until(lambda: watch() or (seen and not w.api.exists(ns_path("jobs", NS, "agent-restart"))),
                       180, "the restarted agent to finish its next job, and the janitor to clean up")
        cs = seen.get("cs", {})
        res.check(seen.get("phase") == "Succeeded" and cs.get("restartCount") == 1 and
                  cs.get("lastState", {}).get("terminated", {}).get("reason") == "OOMKilled",
                  "the kubelet restarted the killed container once; it then succeeded (lastState OOMKilled)",
                  json.dumps(seen))
        reqs = {r["requestId"]: r for r in w.ado.job_requests[12]}
        res.check(reqs[7203].get("result") == "succeeded" and
                  reqs[7203]["reservedAgent"]["id"] == reqs[7202]["reservedAgent"]["id"],
                  "the agent registered again under its id (--replace) and ran the next job",
                  json.dumps([reqs[7202].get("reservedAgent"), reqs[7203].get("reservedAgent")]))
        res.check(not any(b.startswith("7203:") for b in blamed) and blamed <= {"7202:OOMKilled"},
                  "the next job on the restarted container is never blamed for the old OOM kill", str(blamed))
    finally:
        j.stop()


def rfc3339(s):
    """Unix seconds of a Kubernetes or Azure DevOps time (fractions dropped,
    as the janitor drops them)."""
    return int(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone)


def timing_seen_from_outside(res, w, janitor):
    """#25 on real parts: the janitor's wait, duration and startup
    histograms hold what the requests' and the pods' own times say (every
    request assigned or finished, every managed pod of the pool the janitor
    has seen), each within a second."""
    reqs = [r for r in w.ado.job_requests[12] if "assignTime" in r]
    waits = [rfc3339(r["assignTime"]) - rfc3339(r["queueTime"]) for r in reqs]
    done = [r for r in reqs if r.get("result") == "succeeded" and "receiveTime" in r]
    durations = [rfc3339(r["finishTime"]) - rfc3339(r["receiveTime"]) for r in done]
    phases = {"scheduling": [], "starting": [], "registering": []}
    for p in w.api.get(ns_path("pods", NS), labelSelector="pipewarden.io/managed=true")["items"]:
        created = rfc3339(p["metadata"]["creationTimestamp"])
        sched = [rfc3339(c["lastTransitionTime"]) for c in p["status"]["conditions"]
                 if c["type"] == "PodScheduled" and c["status"] == "True"][0]
        cs = p["status"]["containerStatuses"][0]["state"]
        started = rfc3339((cs.get("terminated") or cs.get("running"))["startedAt"])
        phases["scheduling"].append(sched - created)
        phases["starting"].append(started - sched)
        online = [rfc3339(t) for n, t in w.ado.online_log if n == p["metadata"]["name"]]
        if online:
            phases["registering"].append(online[0] - started)

    def hist(name, labels):
        return janitor.metric(name + "_count", labels), janitor.metric(name + "_sum", labels)
    want = {"wait": waits, "duration": durations, **phases}
    keys = {"wait": ("pipewarden_janitor_job_wait_seconds", 'pool="aks-pool"'),
            "duration": ("pipewarden_janitor_job_duration_seconds", 'pool="aks-pool",result="succeeded"')}
    for ph in phases:
        keys[ph] = ("pipewarden_janitor_pod_startup_seconds", 'pool="aks-pool",phase="%s"' % ph)
    lib.wait_until(lambda: all(hist(*keys[k])[0] == len(v) for k, v in want.items()), 30,
                   "the janitor to observe every request and pod phase")
    got = {k: hist(*keys[k]) for k in want}
    print("  from outside: %s" % json.dumps(want))
    print("  the janitor:  %s" % json.dumps(got))
    for k, vals in want.items():
        n, total = got[k]
        res.check(n == len(vals) and abs(total - sum(vals)) <= len(vals),
                  "%s: the janitor's histogram holds %d observations summing to what the times "
                  "seen from outside give, within a second each" % (k, len(vals)),
                  "janitor %s, outside %s" % (got[k], vals))


def test_keda_scale_from_zero(res, w):
    """manifests/examples' placeholder Job and PAT ScaledJob on the real
    KEDA operator: three queued jobs make a Job each (KEDA may make one too
    many: that pod's idle agent is retired); each pod is completed by the
    webhook, its agent registers, runs its job and exits; the janitor
    deletes each Job and dead agent, never the placeholder; the pool ends as
    it began."""
    ph = example("Job", "keda-placeholder-aks-pool", "placeholder-agent.yaml")
    ph["spec"]["template"] = for_this_node(ph["spec"]["template"], w)
    w.api.create(ns_path("jobs", NS), ph)
    lib.wait_until(lambda: any(a["name"] == "keda-placeholder-aks-pool" for a in w.ado.agents[12]), 90,
                   "the placeholder agent to register")
    placeholder = [a for a in w.ado.agents[12] if a["name"] == "keda-placeholder-aks-pool"][0]
    res.check(placeholder["status"] == "offline", "the placeholder registers and stays offline")
    lib.wait_until(lambda: tc.job_condition_ns(w, NS, "keda-placeholder-aks-pool", "Complete"), 60,
                   "the placeholder Job to complete")
    before = sorted(a["name"] for a in w.ado.agents[12])
    janitor = Janitor(w, w.write_config({"janitor": {"finishedPodTtlSeconds": 600, "offlineGraceSeconds": 600}},
                                        "keep.json"))
    keda = start_keda(w)
    ta = example("TriggerAuthentication", "azdo-pipelines-pat")
    sj = example("ScaledJob", "azdo-agent-pat")
    sj["spec"]["pollingInterval"] = 2
    sj["spec"]["jobTargetRef"]["template"] = for_this_node(sj["spec"]["jobTargetRef"]["template"], w)
    now = time.time()
    for i in range(3):
        w.ado.job_requests[12].append(sim.job_request(7101 + i, now, run="succeed:3",
                                                      matched=["keda-placeholder-aks-pool"]))
    for obj, plural in ((ta, "triggerauthentications"), (sj, "scaledjobs")):
        w.api.create("/apis/keda.sh/v1alpha1/namespaces/%s/%s" % (NS, plural), obj)
    t0 = time.time()

    def keda_jobs():
        return [j for j in w.api.get(ns_path("jobs", NS))["items"]
                if j["metadata"].get("labels", {}).get("scaledjob.keda.sh/name") == "azdo-agent-pat"]
    lib.wait_until(lambda: len(keda_jobs()) >= 3, 90, "KEDA to create three Jobs")
    lib.wait_until(lambda: all(r.get("result") for r in w.ado.job_requests[12][-3:]), 180,
                   "the three agents to run their jobs")
    time.sleep(6)       # three more polls with an empty queue
    jobs = keda_jobs()
    reqs = w.ado.job_requests[12][-3:]
    ran = {r["reservedAgent"]["name"] for r in reqs}
    res.check(all(r["result"] == "succeeded" for r in reqs) and len(ran) == 3 and 3 <= len(jobs) <= 10,
              "KEDA made a Job for each of the three queued requests (at most maxReplicaCount), and "
              "each request ran once, on its own agent",
              str([j["metadata"]["name"] for j in jobs]) + keda.log()[-600:])
    pods = [p for j in jobs for p in pods_of(w, j["metadata"]["name"])]
    worked = [p for p in pods if p["metadata"]["name"] in ran]
    extra = [p for p in pods if p["metadata"]["name"] not in ran]
    res.check(len(worked) == 3 and all(p["status"].get("phase") == "Succeeded" for p in worked) and
              all("PIPEWARDEN_POD_UID" in {e["name"] for e in p["spec"]["containers"][0].get("env", [])}
                  for p in pods),
              "each KEDA pod was completed by the webhook; each that ran a job exited 0 (Succeeded)",
              json.dumps([(p["metadata"]["name"], p["status"].get("phase")) for p in pods]))
    took = []
    for p in worked:
        created = tc.parse_time(p["metadata"]["creationTimestamp"])
        ag = agent_online_at(w, p["metadata"]["name"])
        took.append(round(time.mktime(time.strptime(ag["createdOn"][:19], "%Y-%m-%dT%H:%M:%S")) -
                          time.timezone - created, 1) if ag else None)
    print("  KEDA's pod to a registered agent on the real node: %s s (each); %d Jobs for 3 requests" %
          (took, len(jobs)))
    res.check(all(t is not None for t in took), "every KEDA pod's agent registered with its pod's uid", str(took))
    timing_seen_from_outside(res, w, janitor)
    janitor.stop()
    if extra:
        # KEDA can make one Job too many (it counts from a cache): that
        # pod's agent comes online and waits for a job that never comes.
        # The lifecycle retires it, and KEDA, its queue empty, makes none.
        retiring = Janitor(w, w.write_config({"janitor": {"finishedPodTtlSeconds": 600,
                                                          "offlineGraceSeconds": 600, "idleAgentSeconds": 3}},
                                             "retire.json"))
        try:
            names = [p["metadata"]["name"] for p in extra]
            res.check(lib.eventually(lambda: all(not agent_named(w, n) and
                                                 not w.api.exists(ns_path("pods", NS, n)) for n in names), 60),
                      "the pod KEDA made one too many idles; it is retired (registration, then pod)",
                      str(names))
            time.sleep(6)
            res.check(len(keda_jobs()) <= len(jobs), "and KEDA does not make it again (its queue is empty)")
        finally:
            retiring.stop()
    time.sleep(2)       # past finishedPodTtlSeconds and offlineGraceSeconds
    p = w.janitor_once(node.NODE_NAME)
    for j in jobs:      # their pods go with them; then their agents
        for pod in pods_of(w, j["metadata"]["name"]):
            tc.wait_gone(w.api, ns_path("pods", NS, pod["metadata"]["name"]))
    p = w.janitor_once(node.NODE_NAME)
    after = sorted(a["name"] for a in w.ado.agents[12])
    res.check(p.returncode == 0 and all(tc.wait_gone(w.api, ns_path("jobs", NS, j["metadata"]["name"]))
                                        for j in jobs) and after == before,
              "the janitor deletes the Jobs and their dead agents; the placeholder stays: the pool "
              "ends as it began", "%s -> %s %s" % (before, after, p.stderr[-600:]))
    w.api.delete("/apis/keda.sh/v1alpha1/namespaces/%s/scaledjobs/azdo-agent-pat" % NS)



def container_id(w, pod):
    """The agent container's containerd id (from the kubelet's status)."""
    cs = container_status(w, pod)[0]
    return cs.get("containerID", "").split("://")[-1]


def wait_running_job(w, rid, timeout=90):
    return lib.wait_until(lambda: [r for r in w.ado.job_requests[12]
                                   if r["requestId"] == rid and "receiveTime" in r], timeout,
                          "request %d to be running" % rid)[0]


def agent_named(w, name):
    return [a for a in w.ado.agents[12] if a["name"] == name]


def test_agent_killed(res, w):
    """An agent SIGKILLed mid-job, without deregistering: the container
    exits 137 and the pod fails; the service stops hearing from it (offline)
    and abandons its job; the janitor deletes the Job and, once the agent is
    no longer busy and past offlineGraceSeconds, the registration."""
    j = Janitor(w)
    try:
        w.ado.job_requests[12].append(sim.job_request(7301, time.time(), run="hang"))
        w.api.create(ns_path("jobs", NS), agent_job("agent-killed"))
        wait_running_job(w, 7301)
        pod = pods_of(w, "agent-killed")[0]["metadata"]["name"]
        w.node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id(w, pod))
        lib.wait_until(lambda: (container_status(w, pod)[1] if w.api.exists(ns_path("pods", NS, pod))
                                else "gone") in ("Failed", "gone"), 60, "the pod to fail")
        res.check(lib.eventually(lambda: not agent_named(w, pod) and
                                 not w.api.exists(ns_path("jobs", NS, "agent-killed")), 60),
                  "the Job and, once its job is abandoned, the dead agent are deleted",
                  json.dumps(agent_named(w, pod))[:400])
        req = [r for r in w.ado.job_requests[12] if r["requestId"] == 7301][0]
        res.check(req.get("result") == "abandoned", "the service abandoned the killed agent's job", str(req.get("result")))
    finally:
        j.stop()


def test_pod_deleted_mid_job(res, w):
    """A pod deleted while its agent runs a job: SIGTERM reaches start.sh,
    whose `config remove` is refused (the agent holds a job) while the job
    goes on, until the kubelet's SIGKILL at the grace period; the leader,
    which saw the pod run that job, records it on the Job; the Job and the
    agent go as they should."""
    j = Janitor(w)
    try:
        w.ado.job_requests[12].append(sim.job_request(7401, time.time(), run="hang"))
        w.api.create(ns_path("jobs", NS), agent_job("agent-deleted"))
        wait_running_job(w, 7401)
        pod = pods_of(w, "agent-deleted")[0]
        uid = pod["metadata"]["uid"]
        time.sleep(3)       # the leader sees the pod run the job (its annotations)
        w.api.delete(ns_path("pods", NS, pod["metadata"]["name"]))
        res.check(tc.wait_gone(w.api, ns_path("pods", NS, pod["metadata"]["name"]), 60),
                  "the deleted pod goes at the end of its grace period")
        res.check(lib.eventually(lambda: [e for e in w.api.get(ns_path("events", NS))["items"]
                                          if e.get("reason") == "PipelineJobInterrupted" and
                                          "7401" in e.get("message", "")], 30),
                  "the leader records the interrupted job (an Event naming request 7401)",
                  j.log()[-800:])
        res.check(lib.eventually(lambda: not agent_named(w, pod["metadata"]["name"]), 60),
                  "the agent, offline and no longer busy, is deleted", uid)
    finally:
        j.stop()


def test_bad_token(res, w):
    """An agent whose PAT is wrong never registers: it fails and exits
    (start.sh's config fails), the pod fails, nothing is registered, and the
    janitor deletes the Job after finishedPodTtlSeconds."""
    ns = "team-badtoken"
    tc.namespace(w.api, ns, True)
    w.api.create(ns_path("secrets", ns), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azp-pat"},
                                          "stringData": {"token": "PWTESTPAT-wrong-0123456789"}})
    w.api.create(ns_path("jobs", ns), agent_job("agent-badtoken", run_ns=ns))
    pod = lib.wait_until(lambda: (w.api.get(ns_path("pods", ns), labelSelector="job-name=agent-badtoken")
                                  ["items"] or [None])[0], 60, "the pod")["metadata"]["name"]
    lib.wait_until(lambda: w.api.get(ns_path("pods", ns, pod))["status"].get("phase") in ("Failed", "Succeeded"),
                   90, "the agent to give up")
    res.check(w.api.get(ns_path("pods", ns, pod))["status"]["phase"] == "Failed" and not agent_named(w, pod),
              "the agent never registers and its pod fails")
    time.sleep(2)
    p = w.janitor_once(node.NODE_NAME)
    res.check(p.returncode == 0 and tc.wait_gone(w.api, ns_path("jobs", ns, "agent-badtoken")),
              "the janitor deletes the failed Job", p.stderr[-600:])


def test_sidecars(res, w):
    """A regular sidecar keeps the pod Running after the agent exits: the
    janitor deletes its Job finishedPodTtlSeconds after the agent's end.  A
    native sidecar (an init container with restartPolicy Always) is stopped
    by the kubelet: the pod Succeeds."""
    now = time.time()
    w.ado.job_requests[12] += [sim.job_request(7501, now, run="succeed:1"),
                               sim.job_request(7502, now, run="succeed:1")]
    side = {"name": "log-forwarder", "image": node.PAUSE_IMAGE, "imagePullPolicy": "Never"}
    regular = agent_job("agent-sidecar")
    regular["spec"]["template"]["spec"]["containers"].append(dict(side))
    native = agent_job("agent-native")
    native["spec"]["template"]["spec"]["initContainers"] = [dict(side, restartPolicy="Always")]
    for job in (regular, native):
        w.api.create(ns_path("jobs", NS), job)
    r_pod = lib.wait_until(lambda: (pods_of(w, "agent-sidecar") or [None])[0], 60, "the pod")["metadata"]["name"]
    n_pod = lib.wait_until(lambda: (pods_of(w, "agent-native") or [None])[0], 60, "the pod")["metadata"]["name"]

    def agent_done(pod):
        st = w.api.get(ns_path("pods", NS, pod))["status"]
        return any(c["name"] == "agent" and "terminated" in c.get("state", {})
                   for c in st.get("containerStatuses", []))
    lib.wait_until(lambda: agent_done(r_pod) and agent_done(n_pod), 90, "both agents to finish")
    lib.wait_until(lambda: w.api.get(ns_path("pods", NS, n_pod))["status"]["phase"] == "Succeeded", 60,
                   "the native sidecar's pod to succeed")
    time.sleep(2)
    res.check(w.api.get(ns_path("pods", NS, r_pod))["status"]["phase"] == "Running",
              "the regular sidecar keeps its pod Running after the agent exited")
    time.sleep(2)       # past finishedPodTtlSeconds since the agent's end
    p = w.janitor_once(node.NODE_NAME)
    res.check(p.returncode == 0 and tc.wait_gone(w.api, ns_path("jobs", NS, "agent-sidecar")) and
              tc.wait_gone(w.api, ns_path("jobs", NS, "agent-native")),
              "the janitor deletes both Jobs: the Running one by its agent's end", p.stderr[-600:])


def test_reregistered(res, w):
    """An agent name used again (a fixed AZP_AGENT_NAME, as a StatefulSet
    gives): the second pod registers under the first's id while the janitor
    runs; the live agent is never deleted and runs its job."""
    # (a grace that outlasts a pod's start, so the second registers under
    # the first's id; the janitor cycles every second meanwhile)
    j = Janitor(w, w.write_config({"janitor": {"offlineGraceSeconds": 10}}, "grace.json"))
    try:
        now = time.time()
        w.ado.job_requests[12].append(sim.job_request(7601, now, run="succeed:1"))
        fixed = [{"name": "AZP_AGENT_NAME", "value": "fixed-agent-0"}]
        w.api.create(ns_path("jobs", NS), agent_job("agent-first", extra_env=fixed))
        lib.wait_until(lambda: [r for r in w.ado.job_requests[12] if r["requestId"] == 7601 and r.get("result")],
                       90, "the first agent's job")
        first = agent_named(w, "fixed-agent-0")
        aid = first[0]["id"] if first else None
        w.ado.job_requests[12].append(sim.job_request(7602, time.time(), run="succeed:6"))
        w.api.create(ns_path("jobs", NS), agent_job("agent-second", extra_env=fixed))
        present = []

        def finished():
            present.append(bool(agent_named(w, "fixed-agent-0")))
            return [r for r in w.ado.job_requests[12] if r["requestId"] == 7602 and r.get("result")]
        lib.wait_until(finished, 90, "the second agent's job")
        req = [r for r in w.ado.job_requests[12] if r["requestId"] == 7602][0]
        res.check(aid is not None and req["result"] == "succeeded" and req["reservedAgent"]["id"] == aid,
                  "the second pod's agent registered under the first's id and ran its job to the end "
                  "while the janitor ran", json.dumps(req.get("reservedAgent")))
        res.check(all(present) and agent_named(w, "fixed-agent-0"),
                  "the registration was never deleted from the first pod's end to the second's job's end",
                  "%d polls, %d without it" % (len(present), present.count(False)))
    finally:
        j.stop()


def test_startup_cost(res, w):
    """How long a Job takes to a running agent on the real node, with the
    webhook and without (a namespace that did not opt in, the same agent
    wired by hand), interleaved; every agent must come online."""
    plain = "team-plain"
    tc.namespace(w.api, plain, False)
    w.api.create(ns_path("secrets", plain), {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "azp-pat"},
                                             "stringData": {"token": PAT}})
    took = {"webhook": [], "no webhook": []}
    marked = {"webhook": [], "no webhook": []}
    for i in range(3):
        for kind in ("webhook", "no webhook") if i % 2 == 0 else ("no webhook", "webhook"):
            name = "cost-%s-%d" % ("w" if kind == "webhook" else "p", i)
            w.ado.job_requests[12].append(sim.job_request(7700 + len(w.ado.job_requests[12]), time.time(),
                                                          run="succeed:0"))
            job = agent_job(name, run_ns=NS if kind == "webhook" else plain)
            if kind != "webhook":
                spec = job["spec"]["template"]["spec"]
                spec["containers"][0]["env"] = [
                    {"name": "AZP_URL", "value": w.ado.url}, {"name": "AZP_POOL", "value": "aks-pool"},
                    {"name": "AZP_TOKEN_FILE", "value": "/var/run/secrets/azp/token"},
                    {"name": "AZP_AGENT_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
                spec["containers"][0]["volumeMounts"] = [{"name": "azp", "mountPath": "/var/run/secrets/azp",
                                                          "readOnly": True}]
                spec["volumes"] = [{"name": "azp", "secret": {"secretName": "azp-pat"}}]
            t0 = time.time()
            w.api.create(ns_path("jobs", job["metadata"]["namespace"]), job)
            pod = lib.wait_until(lambda: (w.api.get(ns_path("pods", job["metadata"]["namespace"]),
                                                    labelSelector="job-name=" + name)["items"] or [None])[0],
                                 60, "the pod of " + name)["metadata"]["name"]
            online = lib.wait_until(lambda: [t for n, t in w.ado.online_log if n == pod], 90,
                                    "the agent of %s online" % name)[0]
            took[kind].append(sim.parse_rfc3339(online) - t0)
            caps = agent_named(w, pod)[0]["systemCapabilities"]
            marked[kind].append(caps.get("PIPEWARDEN_MANAGED") == "true")
    line = ", ".join("%s p50 %.2f s (%s)" % (k, sorted(v)[1], " ".join("%.2f" % x for x in v))
                     for k, v in took.items())
    print("  Job created to its agent online on the real node: " + line)
    res.check(marked == {"webhook": [True] * 3, "no webhook": [False] * 3},
              "the agents of opted-in Jobs carry the webhook's PIPEWARDEN_MANAGED; the hand-wired ones "
              "do not (the comparison is with and without the webhook)", str(marked))


def alert_state(port, name):
    import test_monitoring
    alerts = test_monitoring.query(port, "/api/v1/alerts")["data"]["alerts"]
    return sorted((a["labels"].get("pool"), a["state"]) for a in alerts if a["labels"]["alertname"] == name)


def test_quota_alert(res, w):
    """#25 on real parts: a ResourceQuota keeps KEDA's agent Job from getting
    a pod while a job has waited 15 minutes: Prometheus (Debian's) evaluates
    the shipped PipewardenJobsWaiting (pending: its 'for' is 5 minutes) and
    the Job gets its PipewardenJobWithoutPod Event; once the quota is lifted
    the pod starts, its agent runs the job, and the alert resolves."""
    sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
    import test_monitoring
    w.api.create(ns_path("resourcequotas", NS), {"apiVersion": "v1", "kind": "ResourceQuota",
                                                  "metadata": {"name": "agents"}, "spec": {"hard": {"pods": "0"}}})
    lib.wait_until(lambda: w.api.get(ns_path("resourcequotas", NS, "agents")).get("status", {}).get("hard"),
                   60, "the quota's status")
    j = Janitor(w, w.write_config({"janitor": {"stuckPendingSeconds": 3}}, "quota.json"))
    prom = None
    try:
        os.makedirs(os.path.join(w.tmp, "prom"), exist_ok=True)
        prom, port, _ = test_monitoring.start_prometheus(os.path.join(w.tmp, "prom"),
                                                         [("pipewarden-janitor", j.port)])
        # The port opens before the TSDB is ready (503 until then).
        lib.wait_until(lambda: lib.http_get(port, "/-/ready")[0] == 200, 60, "Prometheus ready")
        w.ado.job_requests[12].append(sim.job_request(7801, time.time() - 900, run="succeed:1",
                                                      matched=["keda-placeholder-aks-pool"]))
        start_keda(w)
        sj = example("ScaledJob", "azdo-agent-pat")
        sj["metadata"]["name"] = "azdo-agent-quota"
        sj["spec"]["pollingInterval"] = 2
        sj["spec"]["jobTargetRef"]["template"] = for_this_node(sj["spec"]["jobTargetRef"]["template"], w)
        if not w.api.exists("/apis/keda.sh/v1alpha1/namespaces/%s/triggerauthentications/azdo-pipelines-pat" % NS):
            w.api.create("/apis/keda.sh/v1alpha1/namespaces/%s/triggerauthentications" % NS,
                         example("TriggerAuthentication", "azdo-pipelines-pat"))
        w.api.create("/apis/keda.sh/v1alpha1/namespaces/%s/scaledjobs" % NS, sj)
        res.check(lib.eventually(lambda: alert_state(port, "PipewardenJobsWaiting") == [("aks-pool", "pending")],
                                 60),
                  "while the quota blocks the ScaledJob's pods, Prometheus evaluates PipewardenJobsWaiting "
                  "for aks-pool (pending its 5 minutes)", str(alert_state(port, "PipewardenJobsWaiting")))
        evs = lib.wait_until(lambda: [e for e in w.api.get(ns_path("events", NS))["items"]
                                      if e.get("reason") == "PipewardenJobWithoutPod"], 30,
                             "the PipewardenJobWithoutPod Event")
        res.check("a ResourceQuota" in evs[0]["message"] and j.metric(
            "pipewarden_janitor_jobs_without_pod", 'namespace="%s"' % NS) == 1,
            "KEDA's Job without a pod: its Event names the quota, and the gauge counts it", evs[0]["message"])
        w.api.delete(ns_path("resourcequotas", NS, "agents"))
        lib.wait_until(lambda: [r for r in w.ado.job_requests[12] if r["requestId"] == 7801 and r.get("result")],
                       120, "the job to run once the quota is lifted")
        res.check(lib.eventually(lambda: alert_state(port, "PipewardenJobsWaiting") == [], 60),
                  "once the quota is lifted and the pod started, the alert resolves",
                  str(alert_state(port, "PipewardenJobsWaiting")))
    finally:
        if prom is not None:
            prom.terminate()
            prom.wait()
        j.stop()
        w.api.delete("/apis/keda.sh/v1alpha1/namespaces/%s/scaledjobs/azdo-agent-quota" % NS)


# Under the chart's own pods (helm install before, helm uninstall after);
# then the scenarios that need a janitor of their own config, on the host.
CHART_TESTS = [test_chart_one_job, test_drain]
TESTS = [test_one_job, test_keda_scale_from_zero, test_oom, test_agent_killed, test_pod_deleted_mid_job,
         test_bad_token, test_sidecars, test_reregistered, test_startup_cost, test_quota_alert]


def scenario(res, w, t):
    """Run one scenario; a crash in it is a failure.  True if it ran to the end."""
    t1 = time.monotonic()
    try:
        t(res, w)
        return True
    except Exception as e:  # noqa: BLE001 - a crash in a scenario is a failure
        import traceback
        traceback.print_exc()
        res.check(False, t.__name__ + " ran to the end", repr(e))
        return False
    finally:
        print("  %s: %.1f s" % (t.__name__, time.monotonic() - t1))


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhook", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--image", required=True, help="make image's output (build/image)")
    ap.add_argument("--results")
    ap.add_argument("--suite", default="real node")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--keep", action="store_true")
    ARGS = ap.parse_args()
    tc.ARGS = argparse.Namespace(webhook=ARGS.webhook, janitor=ARGS.janitor)
    res = lib.Results(ARGS.suite, ARGS.results)
    tmp = tempfile.mkdtemp(prefix="pipewarden-node-")
    w = None
    t0 = time.monotonic()
    try:
        w = World(tmp)
        print("real node Ready in %.1f s (images built in %.1f s)" % (w.node.started_in, w.images_built_in))
        agent_namespace(w)
        chart = [t for t in CHART_TESTS if not ARGS.only or t.__name__ in ARGS.only]
        if chart:
            if scenario(res, w, install_chart):
                for t in chart:
                    scenario(res, w, t)
            scenario(res, w, uninstall_chart)
        prepare(w)
        for t in TESTS:
            if not ARGS.only or t.__name__ in ARGS.only:
                scenario(res, w, t)
    finally:
        if w is not None:
            problems = w.stop()
            res.check(not problems, "the host is put back as it was", str(problems))
        cluster.kill_all()
        print("suite took %.1f s" % (time.monotonic() - t0))
        if ARGS.keep:
            print("kept", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
