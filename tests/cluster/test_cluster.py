#!/usr/bin/python3
"""pipewarden on a real control plane.

Starts etcd, kube-apiserver, kube-controller-manager and kube-scheduler
(tests/cluster/cluster.py), three fake Nodes and a test kubelet, installs pipewarden
from its own kustomize output (the self-signed overlay; the one test-only
change: the MutatingWebhookConfiguration calls the webhook on loopback by
`url`), runs the real webhook and one real janitor process per node, each with
a token of the janitor's ServiceAccount bound to its DaemonSet pod on that
node, and checks what kube-apiserver, the Job controller, the garbage
collector and the scheduler make of it.  Azure DevOps and Entra are the
simulators of tests/support/sim.py.

Then the way users install (#15): the container image, unpacked from its
OCI layout, runs both programs as its user with only its own files; every
documented values combination of the Helm chart passes kube-apiserver's
server-side dry run; `helm install` puts pipewarden in place and the
image's webhook, served at the chart's Service ClusterIP (the test control
plane's Service range is loopback), answers kube-apiserver through the
chart's own clientConfig; `helm upgrade` keeps the CA and serves the new
config; `helm uninstall` leaves only what the README says stays.

usage: test_cluster.py --webhook BIN --janitor BIN [--image DIR] [--results FILE] [--suite NAME] [--only NAME]
"""
import argparse
import base64
import copy
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import tarfile
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "install"))
import cluster  # noqa: E402
import lib  # noqa: E402
import sim  # noqa: E402
from cluster import ns_path  # noqa: E402

ARGS = None
SYS_NS = "pipewarden-system"
JANITOR_USER = "system:serviceaccount:pipewarden-system:pipewarden-janitor"
CI_NODES = ["node-ci-1", "node-ci-2"]     # tainted workload=ci:NoSchedule, labelled workload=ci
PLAIN_NODE = "node-plain"                 # neither
PARKED_NODE = "node-parked"               # a node no janitor runs for
AGENT_NS = "azdo-agents"                  # opted in (manifests/examples)
OTHER_NS = "team-other"                   # not opted in
PAT = "PWTESTPAT-cluster-Secret-0123456789abcdef"


# ---- the world ---------------------------------------------------------------

class World:
    """The control plane, nodes, kubelet, pipewarden installed, the webhook and
    the Azure DevOps simulator; janitors are started per scenario."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.cp = cluster.ControlPlane(os.path.join(tmp, "cp"))
        os.makedirs(self.cp.dir)
        self.cp.start()
        self.api = self.cp.api
        for n in CI_NODES:
            cluster.add_node(self.api, n, {"workload": "ci"},
                             [{"key": "workload", "value": "ci", "effect": "NoSchedule"}])
        cluster.add_node(self.api, PLAIN_NODE)
        cluster.add_node(self.api, PARKED_NODE, {"workload": "parked"},
                         [{"key": "parked", "value": "true", "effect": "NoSchedule"}])
        self.kubelet = cluster.Kubelet(self.api, CI_NODES + [PLAIN_NODE])
        self.certdir = os.path.join(tmp, "webhook-certs")
        self.ado = sim.AdoSim(self.certdir_made())
        self.ado.pat = PAT
        self.ado.pools["aks-pool"] = 12
        self.ado.agents[12] = []
        self.config = self.write_config({})
        self.webhook = None
        self.janitors = {}
        self.tokens = {}
        self.proxy = cluster.Proxy(self.certdir, self.cp.url, self.cp.pki + "/ca.crt",
                                   on_request=self.before_proxied, on_response=self.after_proxied)
        self.compact_after_first_page = False
        self.compacted_token = None
        self.compactions = 0
        self.expired_seen = False
        self.all_janitor_calls = []

    def certdir_made(self):
        lib.make_certs(self.certdir)
        return self.certdir

    def write_config(self, over, name="config.json"):
        with open(os.path.join(lib.ROOT, "manifests", "base", "config.json")) as f:
            c = json.load(f)
        c["organizationUrl"] = self.ado.url
        c["nodeSelector"] = {"workload": "ci"}
        # (agent retirement is off but where a test turns it on: the test
        # kubelet's running pods have no agent behind them)
        c["janitor"].update({"intervalSeconds": 1, "finishedPodTtlSeconds": 300,
                             "stuckPendingSeconds": 3, "pendingTimeoutSeconds": 4,
                             "offlineGraceSeconds": 600, "idleAgentSeconds": 0,
                             "registrationTimeoutSeconds": 0})
        c = lib.deep_merge(c, over)
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(c, f)
        return path

    # -- install ---------------------------------------------------------------

    def render(self, overlay="overlays/self-signed", components=()):
        """The kustomize output a user applies, with the webhook's certificates
        from certs/make-certs.sh."""
        tree = os.path.join(self.tmp, "manifests")
        if not os.path.isdir(tree):
            shutil.copytree(os.path.join(lib.ROOT, "manifests"), tree)
            certs = os.path.join(tree, "overlays", "self-signed", "certs")
            os.makedirs(certs)
            for f in os.listdir(self.certdir):
                shutil.copy(os.path.join(self.certdir, f), certs)
        p = self.cp.kubectl("kustomize", os.path.join(tree, overlay), check=True)
        return [d for d in yaml.safe_load_all(p.stdout) if d]

    def install(self):
        objs = self.render()
        self.webhook_port = lib.free_port()
        for o in objs:
            if o["kind"] == "MutatingWebhookConfiguration":
                cc = o["webhooks"][0]["clientConfig"]
                # The one test-only change: no kube-proxy, so call the
                # webhook on loopback by url (caBundle, rules, selectors kept).
                o["webhooks"][0]["clientConfig"] = {
                    "url": "https://localhost:%d/mutate" % self.webhook_port, "caBundle": cc["caBundle"]}
        self.installed = objs
        return self.apply(objs)

    def apply(self, objs, *extra):
        text = json.dumps({"apiVersion": "v1", "kind": "List", "items": objs})
        return self.cp.kubectl("apply", "-f", "-", *extra, input=text)

    def start_webhook(self):
        self.webhook_metrics = lib.free_port()
        self.webhook_log = os.path.join(self.tmp, "webhook.log")
        self.webhook = cluster.spawn(
            [ARGS.webhook, "--config", self.config, "--tls-cert", self.certdir + "/tls.crt",
             "--tls-key", self.certdir + "/tls.key", "--port", str(self.webhook_port),
             "--metrics-port", str(self.webhook_metrics), "--address", "127.0.0.1",
             "--shutdown-delay", "0"] if self.webhook_supports_delay() else
            [ARGS.webhook, "--config", self.config, "--tls-cert", self.certdir + "/tls.crt",
             "--tls-key", self.certdir + "/tls.key", "--port", str(self.webhook_port),
             "--metrics-port", str(self.webhook_metrics), "--address", "127.0.0.1"],
            self.webhook_log)
        lib.wait_until(lambda: lib.port_open(self.webhook_port), 20, "the webhook's port")

    def webhook_supports_delay(self):
        p = subprocess.run([ARGS.webhook, "--help"], capture_output=True, text=True)
        return "--shutdown-delay" in p.stdout + p.stderr

    def stop_webhook(self):
        if self.webhook:
            cluster.kill(self.webhook)
            self.webhook = None

    def webhook_metric(self, name):
        text = lib.http_get(self.webhook_metrics, "/metrics")[1]
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name):
                total += float(line.split()[-1])
        return total

    # -- janitors ---------------------------------------------------------------

    def janitor_pod(self, node):
        """The janitor DaemonSet's pod on a node (bound by the scheduler)."""
        pods = self.api.get(ns_path("pods", SYS_NS), labelSelector="app.kubernetes.io/name=pipewarden-janitor",
                            fieldSelector="spec.nodeName=" + node)["items"]
        return pods[0] if pods else None

    def janitor_token(self, node):
        """A token of the janitor's ServiceAccount bound to its pod on `node`
        (TokenRequest, as the kubelet's projected volume gets it): it carries
        the node's name, which the shipped ValidatingAdmissionPolicy checks."""
        pod = lib.wait_until(lambda: self.janitor_pod(node), 60, "the janitor DaemonSet's pod on " + node)
        tr = self.api.create("/api/v1/namespaces/%s/serviceaccounts/pipewarden-janitor/token" % SYS_NS, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"audiences": [cluster.ISSUER], "expirationSeconds": 3600,
                     "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod["metadata"]["name"],
                                        "uid": pod["metadata"]["uid"]}}})
        path = os.path.join(self.tmp, "token-" + node)
        with open(path, "w") as f:
            f.write(tr["status"]["token"])
        self.tokens[node] = tr["status"]["token"]
        return path, pod["metadata"]["name"]

    def janitor_api(self, node):
        if node not in self.tokens:
            self.janitor_token(node)
        return cluster.Api(self.cp.url, self.cp.pki + "/ca.crt", token=self.tokens[node])

    def janitor_cmd(self, node, config=None, extra=()):
        token, pod = self.janitor_token(node)
        pat = os.path.join(self.tmp, "pat")
        with open(pat, "w") as f:
            f.write(PAT + "\n")
        env = sim.janitor_environ(self.ado, pod, SYS_NS, False, pat, None)
        env["NODE_NAME"] = node
        cmd = [ARGS.janitor, "--config", config or self.config, "--kube-api", self.proxy.url,
               "--kube-token-file", token, "--kube-ca", self.certdir + "/ca.crt",
               "--ado-ca", self.certdir + "/ca.crt", "--metrics-port", "0"] + list(extra)
        return cmd, env, pod

    def janitor_once(self, node, config=None, extra=()):
        cmd, env, _ = self.janitor_cmd(node, config, extra)
        p = subprocess.run(cmd + ["--once"], env=env, capture_output=True, text=True, timeout=120)
        self.all_janitor_calls += self.proxy.take()
        return p

    def janitor_start(self, node, config=None, identity=None):
        cmd, env, pod = self.janitor_cmd(node, config)
        if identity:
            env["POD_NAME"] = identity
        log = os.path.join(self.tmp, "janitor-%s-%d.log" % (node, len(self.janitors)))
        p = cluster.spawn(cmd, log, env)
        p.identity = env["POD_NAME"]
        self.janitors[p.identity] = p
        return p

    # A paged list across an etcd compaction.  After the first page, etcd is
    # compacted as kube-apiserver's compactor does it; its watch cache drops
    # the snapshot the continue token points at within 15 s.  The janitor's
    # next requests are each held a few seconds (well inside its 15 s
    # timeout) until a probe with the same token sees the real 410.

    def after_proxied(self, method, path, q, status, data):
        if not (self.compact_after_first_page and method == "GET" and path == "/api/v1/pods"
                and status == 200 and not q.get("continue") and q.get("limit")):
            return
        token = json.loads(data).get("metadata", {}).get("continue")
        if not token:
            return
        self.compact_after_first_page = False
        self.api.create(ns_path("configmaps", "default"), {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "bump-"}})
        self.cp.etcd_compact()
        self.compactions += 1
        self.compacted_token = (token, q.get("labelSelector", ""))
        self.wait_expired(12)

    def before_proxied(self, method, path, q):
        if self.compacted_token and method == "GET" and q.get("continue"):
            self.wait_expired(12)

    def wait_expired(self, seconds):
        if self.expired_seen:
            return
        token, sel = self.compacted_token
        self.expired_seen = lib.eventually(lambda: self.api.raw("GET", "/api/v1/pods", query={
            "labelSelector": sel, "limit": "1", "continue": token})[0] == 410, seconds)

    def stop(self):
        for p in list(self.janitors.values()):
            cluster.kill(p)
        self.stop_webhook()
        self.proxy.stop()
        self.ado.stop()
        self.kubelet.stop()
        self.cp.stop()


# ---- helpers -----------------------------------------------------------------

def namespace(api, name, opted_in):
    labels = {"pipewarden.io/injection": "enabled"} if opted_in else {}
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": name, "labels": labels}})
    lib.wait_until(lambda: api.exists("/api/v1/namespaces/%s/serviceaccounts/default" % name), 60,
                   "the default ServiceAccount of " + name)


def agent_pod(name, ns=AGENT_NS, opt_in=True, annotations=None, containers=None, **spec):
    ann = {"pipewarden.io/inject": "true"} if opt_in else {}
    ann.update(annotations or {})
    s = {"restartPolicy": "Never",
         "containers": containers or [{"name": "agent", "image": "contoso.azurecr.io/azp-agent:ubuntu-22.04"}]}
    s.update(spec)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "annotations": ann}, "spec": s}


def env_of(pod, container="agent"):
    for c in pod["spec"]["containers"]:
        if c["name"] == container:
            return {e["name"]: e for e in c.get("env", [])}
    return {}


def container(pod, name="agent"):
    return [c for c in pod["spec"]["containers"] if c["name"] == name][0]


def gone(api, path):
    return not api.exists(path)


def wait_gone(api, path, timeout=60):
    return lib.eventually(lambda: gone(api, path), timeout)


def create_pod(w, pod):
    return w.api.create(ns_path("pods", pod["metadata"]["namespace"]), pod)


def events_for(w, ns, name):
    evs = w.api.get(ns_path("events", ns), fieldSelector="involvedObject.name=" + name)["items"]
    return [e for e in evs if (e.get("source") or {}).get("component") == "pipewarden-janitor"
            or e.get("reportingComponent") == "pipewarden-janitor"]


# ---- the webhook ------------------------------------------------------------------

def test_install(res, w):
    p = w.install()
    res.check(p.returncode == 0, "kubectl apply of the self-signed overlay", p.stderr[-800:])
    w.start_webhook()
    kinds = sorted({o["kind"] for o in w.installed})
    res.check({"MutatingWebhookConfiguration", "DaemonSet", "Deployment", "ClusterRole"} <= set(kinds),
              "the overlay holds the webhook, janitor and RBAC objects", ", ".join(kinds))
    namespace(w.api, AGENT_NS, True)
    namespace(w.api, OTHER_NS, False)
    w.api.create(ns_path("serviceaccounts", AGENT_NS), {"apiVersion": "v1", "kind": "ServiceAccount",
                                                        "metadata": {"name": "azdo-agent"}})
    # The DaemonSet controller and the scheduler put a janitor pod on every node
    # (it tolerates the agent taint); pipewarden-system's restricted Pod
    # Security admits it.
    ok = lib.eventually(lambda: all(w.janitor_pod(n) for n in CI_NODES + [PLAIN_NODE]), 60)
    res.check(ok, "a janitor DaemonSet pod is bound on every node, tainted ones included",
              json.dumps([(n, bool(w.janitor_pod(n))) for n in CI_NODES + [PLAIN_NODE]]))


def test_bare_pod(res, w):
    stored = create_pod(w, agent_pod("bare-agent"))
    env = env_of(stored)
    res.check(env.get("AZP_URL", {}).get("value") == w.ado.url, "stored pod: AZP_URL from config")
    res.check(env.get("AZP_POOL", {}).get("value") == "aks-pool", "stored pod: AZP_POOL the default pool")
    res.check(env.get("AZP_AGENT_NAME", {}).get("valueFrom") ==
              {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
              "stored pod: AZP_AGENT_NAME from metadata.name (defaulted apiVersion v1)")
    res.check(env.get("PIPEWARDEN_POD_UID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
              == "metadata.uid", "stored pod: PIPEWARDEN_POD_UID from metadata.uid")
    res.check(env.get("PIPEWARDEN_MANAGED", {}).get("value") == "true", "stored pod: PIPEWARDEN_MANAGED")
    res.check(env.get("AZURE_FEDERATED_TOKEN_FILE", {}).get("value") ==
              "/var/run/secrets/azure/tokens/azure-identity-token", "stored pod: workload identity token file")
    vols = {v["name"]: v for v in stored["spec"].get("volumes", [])}
    proj = vols.get("azure-identity-token", {}).get("projected", {})
    sat = proj.get("sources", [{}])[0].get("serviceAccountToken", {})
    res.check(proj.get("defaultMode") == 420 and sat.get("audience") == "api://AzureADTokenExchange",
              "stored pod: projected token volume, defaulted by kube-apiserver", json.dumps(proj))
    res.check(sat.get("expirationSeconds") == 3600,
              "stored pod: the token's 3600 s lifetime, kube-apiserver's default (the patch leaves it out)",
              json.dumps(sat))
    mounts = {m["name"]: m for m in container(stored).get("volumeMounts", [])}
    res.check(mounts.get("azure-identity-token", {}).get("readOnly") is True,
              "stored pod: the token mounted read-only")
    r = container(stored).get("resources", {})
    res.check(r.get("requests") == {"cpu": "1", "memory": "2Gi"} and r.get("limits") == {"cpu": "4", "memory": "8Gi"},
              "stored pod: the profile's resources", json.dumps(r))
    m = stored["metadata"]
    res.check(m["labels"].get("pipewarden.io/managed") == "true" and m["labels"].get("pipewarden.io/pool") == "aks-pool"
              and m["labels"].get("azure.workload.identity/use") == "true", "stored pod: labels")
    res.check("pipewarden.io/injected" in m["annotations"] and
              m["annotations"].get("cluster-autoscaler.kubernetes.io/safe-to-evict") == "false" and
              m["annotations"].get("karpenter.sh/do-not-disrupt") == "true",
              "stored pod: annotations (safe-to-evict and karpenter.sh/do-not-disrupt)")
    res.check(env_of(stored).get("VSO_AGENT_IGNORE", {}).get("value") ==
              "AZURE_CLIENT_ID,AZURE_TENANT_ID,AZURE_FEDERATED_TOKEN_FILE,AZURE_AUTHORITY_HOST",
              "stored pod: VSO_AGENT_IGNORE names the identity variables it injected",
              json.dumps(env_of(stored).get("VSO_AGENT_IGNORE")))
    # (no operator: "Equal" is what an absent one means; the scheduler's
    # placement below proves the toleration works)
    res.check({"key": "workload", "value": "ci", "effect": "NoSchedule"}
              in stored["spec"]["tolerations"], "stored pod: the config's toleration", json.dumps(stored["spec"]["tolerations"]))
    res.check(stored["spec"].get("nodeSelector") == {"workload": "ci"}, "stored pod: the config's nodeSelector")
    # The service-account admission plugin ran after the webhook: both mounts.
    res.check(any(v["name"].startswith("kube-api-access-") for v in stored["spec"]["volumes"]),
              "stored pod: kube-apiserver's own token volume beside the webhook's")
    node = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS, "bare-agent"))["spec"].get("nodeName"),
                          60, "the scheduler to bind bare-agent")
    res.check(node in CI_NODES, "the scheduler puts the completed pod on a tainted CI node", node)
    # The same pod, not opted in: untouched, and the scheduler keeps it off them.
    plain = create_pod(w, agent_pod("bare-not-opted-in", opt_in=False))
    res.check("pipewarden.io/injected" not in (plain["metadata"].get("annotations") or {})
              and "AZP_URL" not in env_of(plain), "a pod that did not opt in is stored unchanged")
    node = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS, "bare-not-opted-in"))["spec"].get("nodeName"),
                          60, "the scheduler to bind bare-not-opted-in")
    res.check(node == PLAIN_NODE, "without the injected toleration and selector it lands on the plain node", node)
    other = create_pod(w, agent_pod("opted-in-elsewhere", ns=OTHER_NS))
    res.check("AZP_URL" not in env_of(other), "an opted-in pod in a namespace that did not opt in is not sent")


def job_from_scaledjob():
    """A Job from manifests/examples' KEDA ScaledJob template, as KEDA makes it."""
    with open(os.path.join(lib.ROOT, "manifests", "examples", "keda-scaledjob-workload-identity.yaml")) as f:
        sj = [d for d in yaml.safe_load_all(f) if d and d["kind"] == "ScaledJob"][0]
    spec = copy.deepcopy(sj["spec"]["jobTargetRef"])
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"generateName": "azdo-agent-", "namespace": sj["metadata"]["namespace"]},
            "spec": spec}


def job_pods(w, ns, job_name):
    return w.api.get(ns_path("pods", ns), labelSelector="batch.kubernetes.io/job-name=" + job_name)["items"]


def test_job_and_deployment(res, w):
    job = w.api.create(ns_path("jobs", AGENT_NS), job_from_scaledjob())
    jname = job["metadata"]["name"]
    pods = lib.wait_until(lambda: job_pods(w, AGENT_NS, jname), 60, "the Job controller's pod")
    pod = pods[0]
    env = env_of(pod)
    res.check(env.get("AZP_URL", {}).get("value") == "https://dev.azure.com/contoso",
              "KEDA Job pod: the template's own AZP_URL is kept")
    res.check(env.get("AZP_POOL", {}).get("value") == "aks-pool" and "PIPEWARDEN_POD_UID" in env,
              "KEDA Job pod (from the Job controller): completed")
    res.check(pod["spec"]["serviceAccountName"] == "azdo-agent", "KEDA Job pod: its own ServiceAccount")
    dep = {"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "agent-pool", "namespace": AGENT_NS},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "agent-pool"}},
                    "template": {"metadata": {"labels": {"app": "agent-pool", "pipewarden.io/inject": "true"},
                                              "annotations": {"pipewarden.io/container": "agent"}},
                                 "spec": {"containers": [
                                     {"name": "log-forwarder", "image": "fluent/fluent-bit:3.1"},
                                     {"name": "agent", "image": "contoso.azurecr.io/azp-agent:ubuntu-22.04"}]}}}}
    w.api.create(ns_path("deployments", AGENT_NS), dep)
    pods = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS), labelSelector="app=agent-pool")["items"],
                          60, "the ReplicaSet controller's pod")
    pod = pods[0]
    env = env_of(pod)
    res.check(pod["metadata"].get("generateName", "").startswith("agent-pool-") and
              env.get("AZP_AGENT_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name",
              "Deployment pod (generateName): AZP_AGENT_NAME is a fieldRef, never the empty name")
    res.check("AZP_URL" not in env_of(pod, "log-forwarder"), "Deployment pod: the sidecar is left alone")
    owner = pod["metadata"]["ownerReferences"][0]
    res.check(owner["kind"] == "ReplicaSet", "Deployment pod: owned by its ReplicaSet")


class SecondWebhook:
    """A second mutating webhook, served by the test: it adds an annotation,
    so kube-apiserver reinvokes pipewarden (reinvocationPolicy IfNeeded)."""

    def __init__(self, certdir):
        outer = self
        self.calls = 0

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.calls += 1
                obj = review["request"]["object"]
                ann = obj["metadata"].get("annotations") or {}
                patch = []
                if "test.pipewarden.io/second" not in ann:
                    patch = [{"op": "add", "path": "/metadata/annotations/test.pipewarden.io~1second",
                              "value": "seen"}]
                resp = {"uid": review["request"]["uid"], "allowed": True}
                if patch:
                    resp.update(patchType="JSONPatch", patch=base64.b64encode(json.dumps(patch).encode()).decode())
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": resp}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certdir + "/tls.crt", certdir + "/tls.key")
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_reinvocation(res, w):
    second = SecondWebhook(w.certdir)
    with open(w.certdir + "/ca.crt", "rb") as f:
        ca = base64.b64encode(f.read()).decode()
    mwc = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "zz-test-second"},
           "webhooks": [{"name": "second.test.pipewarden.io", "admissionReviewVersions": ["v1"],
                         "clientConfig": {"url": "https://localhost:%d/mutate" % second.port, "caBundle": ca},
                         "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                                    "resources": ["pods"]}],
                         "namespaceSelector": {"matchLabels": {"pipewarden.io/injection": "enabled"}},
                         "sideEffects": "None", "failurePolicy": "Fail", "reinvocationPolicy": "Never",
                         "timeoutSeconds": 5}]}
    w.api.create("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", mwc)
    try:
        before = w.webhook_metric('pipewarden_webhook_requests_total{result="unchanged"}')
        stored = lib.wait_until(lambda: _create_when_second_active(w, second), 30, "the second webhook to be called")
        after = w.webhook_metric('pipewarden_webhook_requests_total{result="unchanged"}')
        res.check(stored["metadata"]["annotations"].get("test.pipewarden.io/second") == "seen",
                  "reinvocation: the second webhook's change is stored")
        res.check(after >= before + 1, "reinvocation: pipewarden was called again and answered with no patch",
                  "unchanged %s -> %s" % (before, after))
        names = [e["name"] for e in container(stored).get("env", [])]
        res.check(len(names) == len(set(names)), "reinvocation: no env var twice", json.dumps(names))
        tols = [json.dumps(t, sort_keys=True) for t in stored["spec"]["tolerations"]]
        vols = [v["name"] for v in stored["spec"]["volumes"]]
        res.check(len(tols) == len(set(tols)) and len(vols) == len(set(vols)),
                  "reinvocation: no toleration or volume twice")
    finally:
        w.api.delete("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/zz-test-second")
        second.stop()


def _create_when_second_active(w, second):
    name = "reinvoked-%d" % time.monotonic_ns()
    stored = create_pod(w, agent_pod(name))
    if "test.pipewarden.io/second" in stored["metadata"].get("annotations", {}):
        return stored
    return None


def kubectl_create(w, pod, *extra):
    return w.cp.kubectl("create", "-f", "-", "-o", "json", *extra, input=json.dumps(pod))


def test_dry_run_and_update(res, w):
    p = kubectl_create(w, agent_pod("dry-run-agent"), "--dry-run=server")
    ok = p.returncode == 0
    res.check(ok, "kubectl create --dry-run=server", p.stderr)
    if ok:
        out = json.loads(p.stdout)
        res.check("AZP_POOL" in env_of(out), "dry run: the answer is the completed pod")
    res.check(not w.api.exists(ns_path("pods", AGENT_NS, "dry-run-agent")), "dry run: nothing stored")
    calls = w.webhook_metric("pipewarden_webhook_requests_total")
    before = w.api.get(ns_path("pods", AGENT_NS, "bare-agent"))
    p = w.cp.kubectl("-n", AGENT_NS, "annotate", "pod", "bare-agent", "pipewarden.io/profile=small")
    res.check(p.returncode == 0, "an UPDATE of an agent pod is admitted", p.stderr)
    after = w.api.get(ns_path("pods", AGENT_NS, "bare-agent"))
    res.check(container(after)["resources"] == container(before)["resources"] and
              env_of(after) == env_of(before), "an UPDATE is not mutated (pods CREATE only)")
    res.check(w.webhook_metric("pipewarden_webhook_requests_total") == calls,
              "kube-apiserver does not even call the webhook for an UPDATE")


DENIALS = [
    ("unknown profile", {"pipewarden.io/profile": "huge"}, None, "unknown profile 'huge'"),
    ("unknown identity", {"pipewarden.io/identity": "kerberos"}, None, "pipewarden.io/identity"),
    ("container not in the pod", {"pipewarden.io/container": "runner"}, None, "runner"),
    ("plaintext AZP_TOKEN", {}, [{"name": "agent", "image": "azp-agent",
                                  "env": [{"name": "AZP_TOKEN", "value": PAT}]}], "AZP_TOKEN"),
    ("over the profile's max", {}, [{"name": "agent", "image": "azp-agent",
                                     "resources": {"limits": {"memory": "32Gi"}}}], "exceeds the maximum"),
]


def test_denials(res, w):
    for i, (what, ann, containers, words) in enumerate(DENIALS):
        p = kubectl_create(w, agent_pod("denied-%d" % i, annotations=ann, containers=containers))
        res.check(p.returncode != 0 and 'admission webhook "inject.pipewarden.io" denied the request' in p.stderr
                  and words in p.stderr, "kubectl shows the denial: " + what, p.stderr.strip()[:300])
        res.check(PAT not in p.stderr + p.stdout, "the denial never repeats the token: " + what)


def test_team_values(res, w):
    """#14: a team's envFrom values are not overridden; a GPU profile and
    pod-level resources give pods that kube-apiserver accepts."""
    AGENT = "contoso.azurecr.io/azp-agent:ubuntu-22.04"
    stored = create_pod(w, agent_pod("envfrom-agent", containers=[
        {"name": "agent", "image": AGENT, "envFrom": [{"secretRef": {"name": "team-azp"}}]}]))
    env = env_of(stored)
    res.check("AZP_POOL" not in env and "AZP_URL" not in env and
              container(stored)["envFrom"] == [{"secretRef": {"name": "team-azp"}}] and
              env.get("PIPEWARDEN_MANAGED", {}).get("value") == "true" and "PIPEWARDEN_POD_UID" in env,
              "envFrom: the team's Secret supplies AZP_*, nothing in env overrides it; PIPEWARDEN_* still set",
              json.dumps(container(stored))[:500])
    res.check("AZP_POOL" in stored["metadata"]["annotations"].get("pipewarden.io/skipped-env", "").split(","),
              "envFrom: kubectl get pod -o yaml shows the skipped names (pipewarden.io/skipped-env)",
              json.dumps(stored["metadata"]["annotations"]))
    # A GPU profile: extended resources and hugepages are never overcommitted.
    w.write_config({"profiles": {"gpu": {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2", "hugepages-2Mi": "256Mi"},
        "limits": {"cpu": "8", "memory": "16Gi", "nvidia.com/gpu": "2", "hugepages-2Mi": "256Mi"}}}})

    def gpu_pod(name, resources):
        st, body = w.api.raw("POST", ns_path("pods", AGENT_NS), agent_pod(
            name, annotations={"pipewarden.io/profile": "gpu"},
            containers=[{"name": "agent", "image": AGENT, "resources": resources}]))
        return st, body
    lib.wait_until(lambda: gpu_pod("gpu-probe-%d" % time.monotonic_ns(), {})[0] == 201, 20,
                   "the webhook to reload a config with the gpu profile")
    # (kube-apiserver defaults a request from its limit before it calls
    # mutating webhooks: an own limit arrives with an equal request)
    for name, resources, want in [
            ("gpu-own-request", {"requests": {"nvidia.com/gpu": "1"}}, "1"),
            ("gpu-own-limit", {"limits": {"nvidia.com/gpu": "1"}}, "1"),
            ("gpu-profile", {}, "2")]:
        st, body = gpu_pod(name, resources)
        r = container(body).get("resources", {}) if st == 201 else {}
        res.check(st == 201 and r.get("requests", {}).get("nvidia.com/gpu") == want and
                  r.get("limits", {}).get("nvidia.com/gpu") == want and
                  r["requests"].get("hugepages-2Mi") == r["limits"].get("hugepages-2Mi") == "256Mi",
                  "a GPU profile, %s: kube-apiserver accepts the pod, GPU request = limit = %s" % (name, want),
                  "%d %s" % (st, json.dumps(body)[:400]))
    # Pod-level resources: the container is not given limits above the pod's.
    st, body = w.api.raw("POST", ns_path("pods", AGENT_NS), agent_pod(
        "pod-level", resources={"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}))
    r = container(body).get("resources", {}) if st == 201 else {}
    res.check(st == 201 and "cpu" not in r.get("limits", {}) and "memory" not in r.get("limits", {}),
              "pod-level resources: kube-apiserver accepts the pod; the pod's budget governs cpu and memory",
              "%d %s" % (st, json.dumps(body)[:400]))
    w.write_config({})


def test_webhook_down(res, w):
    w.stop_webhook()
    try:
        p = kubectl_create(w, agent_pod("while-down"))
        res.check(p.returncode != 0 and 'failed calling webhook "inject.pipewarden.io"' in p.stderr,
                  "webhook down, failurePolicy Fail: an opted-in namespace's pod is refused", p.stderr[:300])
        p = kubectl_create(w, agent_pod("elsewhere-while-down", ns=OTHER_NS))
        res.check(p.returncode == 0, "webhook down: other namespaces are not affected", p.stderr[:300])
        p = kubectl_create(w, agent_pod("system-while-down", ns=SYS_NS, opt_in=False,
                                        securityContext={"runAsNonRoot": True, "runAsUser": 65532,
                                                         "seccompProfile": {"type": "RuntimeDefault"}},
                                        containers=[{"name": "c", "image": "x", "securityContext": {
                                            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}]))
        res.check(p.returncode == 0, "webhook down: pipewarden's own namespace is not affected", p.stderr[:300])
        # failurePolicy Ignore, with the shipped ValidatingAdmissionPolicy as the backstop.
        w.api.call("PATCH", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pipewarden",
                   [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}],
                   ctype="application/json-patch+json")
        vap = [o for o in w.render("components/validating-policy") if o["kind"].startswith("ValidatingAdmission")]
        p = w.apply(vap)
        res.check(p.returncode == 0, "the validating-policy component applies", p.stderr[-300:])
        denied = lib.eventually(lambda: "pipewarden-injected" in kubectl_create(
            w, agent_pod("vap-probe-%d" % time.monotonic_ns())).stderr, 30)
        p = kubectl_create(w, agent_pod("while-down-ignored"))
        res.check(denied and p.returncode != 0 and "not completed by the pipewarden webhook" in p.stderr,
                  "failurePolicy Ignore + the policy: kube-apiserver's CEL denies an uncompleted pod",
                  p.stderr[:400])
        p = kubectl_create(w, agent_pod("not-opted-while-ignored", opt_in=False))
        res.check(p.returncode == 0, "failurePolicy Ignore + the policy: a pod that did not opt in is admitted",
                  p.stderr[:300])
    finally:
        w.start_webhook()
        w.api.call("PATCH", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pipewarden",
                   [{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Fail"}],
                   ctype="application/json-patch+json")
        w.api.delete("/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicybindings/pipewarden-injected")
        w.api.delete("/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies/pipewarden-injected")
    ok = lib.eventually(lambda: kubectl_create(w, agent_pod("after-recovery")).returncode == 0, 30)
    res.check(ok, "the webhook back: opted-in pods are admitted and completed again")


# ---- the janitor ---------------------------------------------------------------

def managed_pod(w, name, node, phase, ns=AGENT_NS, **status):
    """A completed agent pod bound to `node`, given a status by the test kubelet."""
    pod = agent_pod(name, ns=ns)
    if node:
        pod["spec"]["nodeName"] = node
    create_pod(w, pod)
    if phase:
        w.kubelet.set_status(ns, name, phase, **status)


def test_janitor_node_work(res, w):
    n1, n2 = CI_NODES
    managed_pod(w, "done-old", n1, "Succeeded", finished_ago=3600)
    managed_pod(w, "done-young", n1, "Succeeded", finished_ago=5)
    managed_pod(w, "failed-old", n1, "Failed", finished_ago=3600)
    pod = agent_pod("sidecar-kept")
    pod["spec"]["nodeName"] = n1
    pod["spec"]["containers"].append({"name": "log-forwarder", "image": "fluent/fluent-bit:3.1"})
    create_pod(w, pod)
    w.kubelet.set_status(AGENT_NS, "sidecar-kept", "Running", terminated=["agent"], finished_ago=3600)
    managed_pod(w, "image-pull", n1, "Pending", waiting={"agent": "ImagePullBackOff"})
    managed_pod(w, "other-node-done", n2, "Succeeded", finished_ago=3600)
    lib.wait_until(lambda: time.time() - parse_time(w.api.get(ns_path("pods", AGENT_NS, "image-pull"))
                                                    ["metadata"]["creationTimestamp"]) > 4, 10, "image-pull to age")
    p = w.janitor_once(n1)
    res.check(p.returncode == 0, "janitor on %s --once exits 0" % n1, p.stderr[-1500:])
    for name in ("done-old", "failed-old", "sidecar-kept", "image-pull"):
        res.check(wait_gone(w.api, ns_path("pods", AGENT_NS, name)),
                  "node work: %s deleted (and a bound running pod finished by the kubelet)" % name)
    res.check(w.api.exists(ns_path("pods", AGENT_NS, "done-young")), "node work: a pod finished 5 s ago stays")
    res.check(w.api.exists(ns_path("pods", AGENT_NS, "other-node-done")),
              "node work: another node's finished pod is not this replica's")
    evs = events_for(w, AGENT_NS, "done-old")
    res.check(len(evs) == 1 and evs[0]["reason"], "an Event records the deletion", json.dumps(evs)[:400])
    p = w.cp.kubectl("-n", AGENT_NS, "get", "events", "--field-selector", "involvedObject.name=done-old")
    res.check(p.returncode == 0 and "pipewarden-janitor" in p.stdout or "done-old" in p.stdout,
              "kubectl get events shows it", p.stdout[-300:])
    p = w.janitor_once(n2)
    res.check(p.returncode == 0 and wait_gone(w.api, ns_path("pods", AGENT_NS, "other-node-done")),
              "the replica on %s removes its own node's pod" % n2, p.stderr[-600:])


def test_janitor_annotations(res, w):
    """#16: the leader writes on a managed pod the pipeline job its agent
    runs; kube-apiserver lets the janitor's token change those four
    annotations of managed pods, and nothing else."""
    n1 = CI_NODES[0]
    managed_pod(w, "running-a-job", n1, "Running")
    create_pod(w, agent_pod("unmanaged-x", opt_in=False, nodeName=n1))
    pod = w.api.get(ns_path("pods", AGENT_NS, "running-a-job"))
    w.ado.agents[12].append(sim.agent(700, "running-a-job", status="online", busy=True,
                                      pod_uid=pod["metadata"]["uid"]))
    p = w.janitor_once(n1)
    ann = w.api.get(ns_path("pods", AGENT_NS, "running-a-job"))["metadata"].get("annotations", {})
    res.check(p.returncode == 0 and ann.get("pipewarden.io/pipeline") == "payments-api - CI" and
              ann.get("pipewarden.io/run") == "20260901.700" and ann.get("pipewarden.io/job-request-id") == "1400700"
              and ann.get("pipewarden.io/run-url", "").endswith("buildId=88700"),
              "the leader annotates the pod with its agent's pipeline, run, run URL and request id",
              json.dumps(ann) + p.stderr[-600:])
    q = w.cp.kubectl("-n", AGENT_NS, "get", "pod", "running-a-job", "-o",
                     "custom-columns=POD:.metadata.name,PIPELINE:.metadata.annotations.pipewarden\\.io/pipeline,"
                     "RUN:.metadata.annotations.pipewarden\\.io/run")
    res.check(q.returncode == 0 and "payments-api - CI" in q.stdout and "20260901.700" in q.stdout,
              "kubectl -o custom-columns shows the pipeline per pod", q.stdout + q.stderr)
    # A job interrupted: the agent's pod was OOMKilled while it ran the job.
    managed_pod(w, "oom-killed", n1, "Failed", finished_ago=20, exit_code=137, reason="OOMKilled")
    oom = w.api.get(ns_path("pods", AGENT_NS, "oom-killed"))
    w.ado.agents[12].append(sim.agent(701, "oom-killed", busy=True, changed_ago=15,
                                      pod_uid=oom["metadata"]["uid"]))
    for _ in range(2):
        p = w.janitor_once(n1)
    evs = [e for e in events_for(w, AGENT_NS, "oom-killed") if e["reason"] == "PipelineJobInterrupted"]
    ann = w.api.get(ns_path("pods", AGENT_NS, "oom-killed"))["metadata"].get("annotations", {})
    res.check(len(evs) == 1 and evs[0]["type"] == "Warning" and "OOMKilled" in evs[0]["message"] and
              "payments-api - CI" in evs[0]["message"] and
              ann.get("pipewarden.io/interruption") == "1400701:OOMKilled",
              "an OOMKilled agent pod's job: one Warning Event (over two cycles) and the interruption annotation",
              json.dumps(evs)[:600] + json.dumps(ann) + p.stderr[-400:])
    q = w.cp.kubectl("-n", AGENT_NS, "get", "events", "--field-selector",
                     "involvedObject.name=oom-killed,reason=PipelineJobInterrupted")
    res.check(q.returncode == 0 and "PipelineJobInterrupted" in q.stdout, "kubectl get events shows it",
              q.stdout + q.stderr)
    # #21: a container restarted after an OOM kill keeps that death in its
    # lastState (as a kubelet writes it); the job its agent runs now was
    # assigned after it, and is not blamed.
    managed_pod(w, "restarted-agent", n1, "Running", last_oom_ago=300)
    rp = w.api.get(ns_path("pods", AGENT_NS, "restarted-agent"))
    again = sim.agent(702, "restarted-agent", status="online", busy=True, changed_ago=200,
                      pod_uid=rp["metadata"]["uid"])
    again["assignedRequest"]["assignTime"] = sim.now_rfc3339(time.time() - 100)
    w.ado.agents[12].append(again)
    p = w.janitor_once(n1)
    evs = [e for e in events_for(w, AGENT_NS, "restarted-agent") if e["reason"] == "PipelineJobInterrupted"]
    ann = w.api.get(ns_path("pods", AGENT_NS, "restarted-agent"))["metadata"].get("annotations", {})
    res.check(p.returncode == 0 and not evs and "pipewarden.io/interruption" not in ann and
              ann.get("pipewarden.io/job-request-id") == "1400702",
              "an OOM kill in a restarted container's lastState is not blamed on the job it runs now",
              json.dumps(evs)[:300] + json.dumps(ann))
    w.ado.agents[12] = [a for a in w.ado.agents[12] if a["id"] not in (700, 701, 702)]
    api = w.janitor_api(n1)

    def patch(name, body):
        return api.raw("PATCH", ns_path("pods", AGENT_NS, name), body, ctype="application/merge-patch+json")
    # (a policy is enforced once kube-apiserver has loaded and type-checked
    # it, a moment after its creation: wait for that, bounded)
    lib.eventually(lambda: patch("unmanaged-x", {"metadata": {"annotations": {"pipewarden.io/run": "0"}}})[0] == 403,
                   20)
    st, body = patch("running-a-job", {"metadata": {"annotations": {"pipewarden.io/run": "20260901.701"}}})
    res.check(st == 200, "the policy: the janitor's token may change pipewarden.io/run of a managed pod (%d)" % st,
              json.dumps(body)[:300])
    for what, name, change in [
            ("another annotation", "running-a-job", {"metadata": {"annotations": {"team.example/owner": "x"}}}),
            ("a label", "running-a-job", {"metadata": {"labels": {"pipewarden.io/pool": "other"}}}),
            ("the spec", "running-a-job", {"spec": {"activeDeadlineSeconds": 5}}),
            ("an unmanaged pod's annotation", "unmanaged-x", {"metadata": {"annotations": {"pipewarden.io/run": "1"}}})]:
        st, body = patch(name, change)
        res.check(st == 403 and "pipewarden-janitor" in json.dumps(body),
                  "the policy: the janitor's token cannot change %s (%d)" % (what, st), json.dumps(body)[:300])


def test_janitor_lifecycle(res, w):
    """#24: kubectl cordon on a node with an idle and a busy agent retires
    only the idle one (its registration first, then the pod, by its node's
    replica); a pod whose agent never registered is retired with an Event
    that says so.  The status is the test kubelet's."""
    n1, n2 = CI_NODES
    managed_pod(w, "lc-idle", n2, "Running")
    managed_pod(w, "lc-busy", n2, "Running")
    managed_pod(w, "lc-never", n1, "Running", started_ago=1200)
    uid = lambda n: w.api.get(ns_path("pods", AGENT_NS, n))["metadata"]["uid"]  # noqa: E731
    w.ado.agents[12] += [sim.agent(801, "lc-idle", status="online", changed_ago=60, pod_uid=uid("lc-idle")),
                         sim.agent(802, "lc-busy", status="online", busy=True, changed_ago=60,
                                   pod_uid=uid("lc-busy"))]
    q = w.cp.kubectl("cordon", n2)
    res.check(q.returncode == 0, "kubectl cordon " + n2, q.stderr)
    lifecycle = w.write_config({"janitor": {"idleAgentSeconds": 1800, "registrationTimeoutSeconds": 600}},
                               "lifecycle.json")
    try:
        p = w.janitor_once(n1, config=lifecycle)
        ann = lambda n: w.api.get(ns_path("pods", AGENT_NS, n))["metadata"].get("annotations", {})  # noqa: E731
        res.check(p.returncode == 0 and ann("lc-idle").get("pipewarden.io/retired") == "node-draining" and
                  "pipewarden.io/retired" not in ann("lc-busy") and
                  ann("lc-never").get("pipewarden.io/retired") == "never-registered",
                  "the leader retires the idle agent on the cordoned node and the pod that never "
                  "registered, never the busy one", p.stderr[-1200:])
        ids = sorted(a["id"] for a in w.ado.agents[12])
        res.check(801 not in ids and 802 in ids, "the idle agent's registration is deleted; the busy "
                  "one's stays", str(ids))
        q = w.cp.kubectl("-n", AGENT_NS, "get", "events", "--field-selector", "reason=PipewardenRetired")
        print("kubectl get events --field-selector reason=PipewardenRetired:\n" + q.stdout, flush=True)
        res.check(q.returncode == 0 and "pod/lc-idle" in q.stdout and "pod/lc-never" in q.stdout and
                  "never-registered" in q.stdout and "lc-busy" not in q.stdout,
                  "kubectl get events shows each retirement", q.stdout + q.stderr)
        p1 = w.janitor_once(n1, config=lifecycle)
        p2 = w.janitor_once(n2, config=lifecycle)
        res.check(p1.returncode == 0 and p2.returncode == 0 and
                  wait_gone(w.api, ns_path("pods", AGENT_NS, "lc-idle")) and
                  wait_gone(w.api, ns_path("pods", AGENT_NS, "lc-never")) and
                  w.api.exists(ns_path("pods", AGENT_NS, "lc-busy")),
                  "each node's replica removes its retired pod; the busy one's job goes on",
                  p1.stderr[-600:] + p2.stderr[-600:])
    finally:
        w.cp.kubectl("uncordon", n2)
        w.ado.agents[12] = [a for a in w.ado.agents[12] if a["id"] not in (801, 802)]
        w.api.raw("DELETE", ns_path("pods", AGENT_NS, "lc-busy"))


def job_on_node(w, name, node):
    """A Job (the ScaledJob's template, backoffLimit 0) whose pod is bound to
    node, running: its pod's name and uid."""
    job = job_from_scaledjob()
    del job["metadata"]["generateName"]
    job["metadata"]["name"] = name
    job["spec"]["backoffLimit"] = 0
    job["spec"]["template"]["spec"]["nodeName"] = node
    w.api.create(ns_path("jobs", AGENT_NS), job)
    pod = lib.wait_until(lambda: job_pods(w, AGENT_NS, name), 60, "the pod of Job " + name)[0]
    w.kubelet.set_status(AGENT_NS, pod["metadata"]["name"], "Running")
    return pod["metadata"]["name"], pod["metadata"]["uid"]


def test_janitor_gone_pods(res, w):
    """#16: a pipeline job whose pod is gone while its agent still runs it is
    recorded on its Job.  A spot node is deleted: kube-controller-manager's
    pod garbage collector removes its pod; a person deletes another pod.  A
    long-running leader that saw both pods run their jobs records each once:
    a Warning Event on the Job (NodeDeleted, Deleted) and a log line.  The
    pod garbage collector marks the pod Failed with DisruptionTarget
    DeletionByPodGC before it deletes it: seen then, the pod is going, and
    the Event goes on its Job just the same."""
    spot, n1 = "node-spot", CI_NODES[0]
    cluster.add_node(w.api, spot, {"workload": "ci"}, [{"key": "workload", "value": "ci", "effect": "NoSchedule"}])
    spot_pod, spot_uid = job_on_node(w, "spot-run", spot)
    del_pod, del_uid = job_on_node(w, "deleted-run", n1)
    w.ado.agents[12] += [sim.agent(710, spot_pod, status="online", busy=True, pod_uid=spot_uid),
                         sim.agent(711, del_pod, status="online", busy=True, pod_uid=del_uid)]
    j = w.janitor_start(n1)
    try:
        def annotated(name):
            st, pod = w.api.raw("GET", ns_path("pods", AGENT_NS, name))
            return st == 200 and "pipewarden.io/job-request-id" in pod["metadata"].get("annotations", {})
        seen = lib.eventually(lambda: annotated(spot_pod) and annotated(del_pod), 60)
        res.check(seen, "the leader annotated both pods with their jobs (it has seen them run)",
                  cluster.tail(j.log_path, 1500))
        w.api.delete("/api/v1/nodes/" + spot)
        w.api.delete(ns_path("pods", AGENT_NS, del_pod))
        res.check(wait_gone(w.api, ns_path("pods", AGENT_NS, spot_pod), 150),
                  "kube-controller-manager's pod garbage collector removes the deleted node's pod")

        def interrupted(job):
            return [e for e in events_for(w, AGENT_NS, job) if e["reason"] == "PipelineJobInterrupted"]
        lib.eventually(lambda: interrupted("spot-run") and interrupted("deleted-run"), 60)
        n = cluster.tail(j.log_path, 100000).count('"msg":"cycle done"')
        lib.wait_until(lambda: cluster.tail(j.log_path, 100000).count('"msg":"cycle done"') >= n + 2, 30,
                       "two more cycles")
        log = cluster.tail(j.log_path, 100000)
    finally:
        cluster.kill(j)
    spot_job = w.api.get(ns_path("jobs", AGENT_NS, "spot-run"))
    evs = interrupted("spot-run")
    res.check(len(evs) == 1 and evs[0]["type"] == "Warning" and evs[0]["involvedObject"]["kind"] == "Job" and
              evs[0]["involvedObject"]["uid"] == spot_job["metadata"]["uid"] and
              "(NodeDeleted)" in evs[0]["message"] and "run 20260901.710" in evs[0]["message"] and
              spot_pod in evs[0]["message"],
              "the spot node's job: one Warning Event on its Job, NodeDeleted, naming the run and the pod",
              json.dumps(evs)[:800])
    evs = interrupted("deleted-run")
    res.check(len(evs) == 1 and evs[0]["involvedObject"]["kind"] == "Job" and "(Deleted)" in evs[0]["message"]
              and "run 20260901.711" in evs[0]["message"],
              "the deleted pod's job: one Warning Event on its Job, Deleted", json.dumps(evs)[:800])
    lines = [json.loads(l) for l in log.splitlines() if '"pipeline job interrupted"' in l]
    # (the pod garbage collector first marks the pod Failed with a
    # DisruptionTarget, then deletes it: a leader may see either)
    res.check(sorted((l["pod"], l["reason"]) for l in lines) ==
              sorted([(spot_pod, "NodeDeleted"), (del_pod, "Deleted")]),
              "a log line for each", json.dumps(lines)[:600])
    q = w.cp.kubectl("-n", AGENT_NS, "describe", "job", "spot-run")
    res.check(q.returncode == 0 and "PipelineJobInterrupted" in q.stdout and "NodeDeleted" in q.stdout,
              "kubectl describe job shows it", q.stdout[-800:] + q.stderr)
    w.ado.agents[12] = [a for a in w.ado.agents[12] if a["id"] not in (710, 711)]
    for name in ("spot-run", "deleted-run"):
        w.api.delete(ns_path("jobs", AGENT_NS, name), propagationPolicy="Background")
    w.all_janitor_calls += w.proxy.take()


def parse_time(s):
    return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


def job_with_pod(w, name, backoff=0):
    job = job_from_scaledjob()
    del job["metadata"]["generateName"]
    job["metadata"]["name"] = name
    job["spec"]["backoffLimit"] = backoff
    w.api.create(ns_path("jobs", AGENT_NS), job)
    pods = lib.wait_until(lambda: job_pods(w, AGENT_NS, name), 60, "the pod of Job " + name)
    pod = pods[0]
    node = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS, pod["metadata"]["name"]))["spec"].get("nodeName"),
                          60, "the scheduler to bind the pod of " + name)
    return pod["metadata"]["name"], node


def job_condition(w, name, ctype):
    return job_condition_ns(w, AGENT_NS, name, ctype)


def job_condition_ns(w, ns, name, ctype):
    job = w.api.get(ns_path("jobs", ns, name))
    return any(c["type"] == ctype and c["status"] == "True" for c in job.get("status", {}).get("conditions", []))


def test_janitor_jobs(res, w):
    pod, node = job_with_pod(w, "job-complete")
    w.kubelet.set_status(AGENT_NS, pod, "Succeeded", finished_ago=3600)
    res.check(lib.eventually(lambda: job_condition(w, "job-complete", "Complete"), 60),
              "the Job controller marks the Job Complete")
    p = w.janitor_once(node)
    res.check(p.returncode == 0, "janitor exits 0 after deleting a Job", p.stderr[-800:])
    res.check(wait_gone(w.api, ns_path("jobs", AGENT_NS, "job-complete")), "a finished Job is deleted")
    res.check(wait_gone(w.api, ns_path("pods", AGENT_NS, pod)),
              "the garbage collector removes its pod (propagationPolicy Background)")
    # A Job between retries: its first pod failed long ago, the retry failed 5 s
    # ago, and the Job controller's back-off has not created the next pod yet.
    first, node = job_with_pod(w, "job-retrying", backoff=6)
    w.kubelet.set_status(AGENT_NS, first, "Failed", finished_ago=3600)
    retry = lib.wait_until(lambda: [p for p in job_pods(w, AGENT_NS, "job-retrying") if p["metadata"]["name"] != first],
                           60, "the Job controller's retry pod")[0]["metadata"]["name"]
    rnode = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS, retry))["spec"].get("nodeName"), 60, "retry bound")
    w.kubelet.set_status(AGENT_NS, retry, "Failed", finished_ago=2)
    live = [p for p in job_pods(w, AGENT_NS, "job-retrying") if p["status"].get("phase") not in ("Failed", "Succeeded")]
    res.check(not live and not job_condition(w, "job-retrying", "Failed"),
              "the retrying Job has no live pod and no terminal condition (in back-off)")
    for n in {node, rnode}:
        w.janitor_once(n)
    res.check(w.api.exists(ns_path("jobs", AGENT_NS, "job-retrying")),
              "a Job between retries survives every node's janitor")
    # A ReplicaSet's pod stuck Pending is never deleted (it would come straight back).
    rs_pod = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS), labelSelector="app=agent-pool")["items"],
                            30, "the Deployment's pod")[0]
    name = rs_pod["metadata"]["name"]
    rnode = lib.wait_until(lambda: w.api.get(ns_path("pods", AGENT_NS, name))["spec"].get("nodeName"), 60, "rs bound")
    w.kubelet.set_status(AGENT_NS, name, "Pending", waiting={"agent": "ImagePullBackOff"})
    p = w.janitor_once(rnode)
    res.check(p.returncode == 0 and w.api.exists(ns_path("pods", AGENT_NS, name)),
              "a ReplicaSet's Pending pod is never deleted", p.stderr[-500:])


def events_of(w, ns, uid, reason):
    return [e for e in w.api.get(ns_path("events", ns))["items"]
            if e["involvedObject"].get("uid") == uid and e.get("reason") == reason]


def test_janitor_job_without_pod(res, w):
    """#25: a ResourceQuota keeps the real Job controller from creating an
    agent Job's pod; the leader names why on a Warning Event on the Job, and
    report shows it, until the quota is lifted."""
    ns = "team-quota"
    namespace(w.api, ns, True)
    w.api.create(ns_path("serviceaccounts", ns), {"apiVersion": "v1", "kind": "ServiceAccount",
                                                   "metadata": {"name": "azdo-agent"}})
    w.api.create(ns_path("resourcequotas", ns), {"apiVersion": "v1", "kind": "ResourceQuota",
                                                  "metadata": {"name": "agents"}, "spec": {"hard": {"pods": "0"}}})
    lib.wait_until(lambda: w.api.get(ns_path("resourcequotas", ns, "agents")).get("status", {}).get("hard"),
                   60, "the quota controller to fill in the quota's status")
    job = job_from_scaledjob()
    del job["metadata"]["generateName"]
    job["metadata"].update(name="blocked", namespace=ns)
    uid = w.api.create(ns_path("jobs", ns), job)["metadata"]["uid"]
    failed = lib.wait_until(lambda: events_of(w, ns, uid, "FailedCreate"), 60,
                            "the Job controller's FailedCreate Event")
    res.check("exceeded quota: agents" in failed[0]["message"], "the Job controller records the quota",
              failed[0]["message"])
    lib.wait_until(lambda: time.time() - parse_time(w.api.get(ns_path("jobs", ns, "blocked"))["metadata"]
                                                    ["creationTimestamp"]) > 4, 20, "the Job to age")
    p = w.janitor_once(PLAIN_NODE)
    ours = events_of(w, ns, uid, "PipewardenJobWithoutPod")
    res.check(p.returncode == 0 and len(ours) == 1 and ours[0]["type"] == "Warning" and
              "a ResourceQuota: Error creating: " in ours[0]["message"] and
              "exceeded quota: agents" in ours[0]["message"],
              "the leader's Warning Event on the Job says why it has no pod (with the janitor's own "
              "RBAC: list jobs, list events)", json.dumps(ours)[:600] + p.stderr[-600:])
    cmd, env, _ = w.janitor_cmd(PLAIN_NODE)
    r = subprocess.run([cmd[0], "report"] + cmd[1:], env=env, capture_output=True, text=True, timeout=120)
    res.check(r.returncode == 0 and "job team-quota/blocked has had no pod for" in r.stdout and
              "a ResourceQuota" in r.stdout, "report shows the Job and why", r.stdout[:800] + r.stderr[-400:])
    w.api.delete(ns_path("resourcequotas", ns, "agents"))
    lib.wait_until(lambda: job_pods(w, ns, "blocked"), 90, "the Job controller to create the pod once the "
                   "quota is lifted")
    r = subprocess.run([cmd[0], "report"] + cmd[1:], env=env, capture_output=True, text=True, timeout=120)
    res.check(r.returncode == 0 and "team-quota/blocked has had no pod" not in r.stdout,
              "once the quota is lifted and the pod exists, it is no longer listed", r.stdout[:600])
    w.api.delete(ns_path("jobs", ns, "blocked"), propagationPolicy="Background")


def test_janitor_unscheduled(res, w):
    pod = agent_pod("unschedulable", nodeSelector={"workload": "ci", "disk": "none-such"})
    create_pod(w, pod)
    ok = lib.eventually(lambda: any(c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
                                    for c in w.api.get(ns_path("pods", AGENT_NS, "unschedulable"))
                                    .get("status", {}).get("conditions", [])), 60)
    res.check(ok, "the scheduler marks the pod Unschedulable")
    lib.wait_until(lambda: time.time() - parse_time(w.api.get(ns_path("pods", AGENT_NS, "unschedulable"))
                                                    ["metadata"]["creationTimestamp"]) > 5, 10, "unschedulable to age")
    lease = ns_path("leases", SYS_NS, "pipewarden-janitor")
    holder = w.api.raw("GET", lease)[1].get("spec", {}).get("holderIdentity") if w.api.exists(lease) else None
    res.check(not holder, "the Lease is free between --once runs (released on exit)", str(holder))
    p = w.janitor_once(PLAIN_NODE)
    res.check(p.returncode == 0 and wait_gone(w.api, ns_path("pods", AGENT_NS, "unschedulable")),
              "an unschedulable pod is the leader's work: deleted", p.stderr[-600:])


def test_lease(res, w):
    # Three long-running replicas: exactly one leads.
    js = [w.janitor_start(n) for n in CI_NODES + [PLAIN_NODE]]
    lease_path = ns_path("leases", SYS_NS, "pipewarden-janitor")

    def holder():
        st, l = w.api.raw("GET", lease_path)
        return l.get("spec", {}).get("holderIdentity") if st == 200 else None
    first = lib.wait_until(holder, 30, "a leader")
    res.check(first in [j.identity for j in js], "one of the replicas holds the real Lease", str(first))
    lib.wait_until(lambda: all("cycle done" in cluster.tail(j.log_path, 200) for j in js), 30,
                   "every replica to finish a cycle")
    leaders = [j for j in js if "became the leader" in cluster.tail(j.log_path, 400)]
    res.check(len(leaders) == 1, "exactly one replica became the leader", str([j.identity for j in leaders]))
    old = w.api.get(lease_path)["spec"]
    dur = old["leaseDurationSeconds"]
    leader = [j for j in js if j.identity == first][0]
    cluster.kill(leader, signal.SIGKILL)        # no release: the Lease must expire
    killed_at = time.time()
    new = lib.wait_until(lambda: holder() not in (None, first) and holder(), dur + 30, "another leader")
    took = time.time() - killed_at
    spec = w.api.get(lease_path)["spec"]
    res.check(new in [j.identity for j in js if j is not leader], "a surviving replica took the Lease", new)
    last_renew = parse_micro(old["renewTime"])
    res.check(parse_micro(spec["acquireTime"]) >= last_renew + dur - 1,
              "not before the Lease expired (acquired %.1f s after the last renewal, duration %d s)" %
              (parse_micro(spec["acquireTime"]) - last_renew, dur))
    res.check(spec.get("leaseTransitions", 0) >= 1, "leaseTransitions counts the change")
    res.check(took < dur + 30, "and soon after it expired (%.1f s after the kill)" % took)
    for j in js:
        if j is not leader:
            cluster.kill(j)
    lib.wait_until(lambda: not holder(), 15, "the Lease released on SIGTERM")
    res.check(not holder(), "SIGTERM releases the Lease")
    w.all_janitor_calls += w.proxy.take()


def parse_micro(s):
    base, frac = s.rstrip("Z").split(".")
    return parse_time(base + "Z") + float("0." + frac)


def test_paging(res, w):
    """1,200 managed pods read whole by the leader's paged list (500 a page),
    one continue token expired by a real etcd compaction (410) on the way."""
    namespace(w.api, "paging", True)
    n = 1200
    uids = [None] * n

    def make(i):
        pod = agent_pod("p-%04d" % i, ns="paging")
        pod["spec"]["nodeName"] = PARKED_NODE
        uids[i] = create_pod(w, pod)["metadata"]["uid"]
    threads = []
    for k in range(4):
        t = threading.Thread(target=lambda k=k: [make(i) for i in range(k, n, 4)])
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    now = time.time()
    agents = [sim.agent(1000 + i, "paged-agent-%04d" % i, changed_ago=7200, pod_uid=uids[i], now=now)
              for i in range(n)]
    agents += [sim.agent(5000 + i, "dead-agent-%d" % i, changed_ago=7200, pod_uid="gone-%d" % i, now=now)
               for i in range(3)]
    w.ado.agents[12] = agents
    w.compact_after_first_page = True
    # kube-apiserver's compactor polls every 15 s: the janitor's requests
    # are held up to 12 s each (its request timeout is 15 s), so this
    # janitor runs with a 30 s interval, whose cycle budget (half the 75 s
    # Lease) leaves room for that wait even on a loaded machine.
    p = w.janitor_once(PLAIN_NODE, config=w.write_config({"janitor": {"intervalSeconds": 30}},
                                                         name="config-paging.json"))
    w.compacted_token = None
    calls = w.all_janitor_calls
    lists = [c for c in calls if c["path"] == "/api/v1/pods" and c["method"] == "GET"]
    res.check(w.compactions == 1 and w.expired_seen and any(c["status"] == 410 for c in lists),
              "kube-apiserver answers the janitor's continue token with 410 after the compaction",
              json.dumps([(c["query"].get("continue", "")[:10], c["status"]) for c in lists]))
    left = {a["name"] for a in w.ado.agents[12]}
    res.check(p.returncode == 0, "the leader's cycle completes", p.stderr[-800:])
    res.check(not any(a.startswith("dead-agent") for a in left), "the 3 agents with no pod are deleted")
    res.check(sum(a.startswith("paged-agent") for a in left) == n,
              "none of the 1,200 agents backed by a listed pod is deleted (the list was read whole)",
              "%d left" % sum(a.startswith("paged-agent") for a in left))
    w.ado.agents[12] = []


def test_privileges(res, w):
    n1, n2 = CI_NODES
    calls = w.all_janitor_calls + w.proxy.take()
    denied = [(c["method"], c["path"], c["status"]) for c in calls if c["status"] in (401, 403)]
    res.check(len(calls) > 20 and not denied,
              "every call the janitors made (%d) was allowed by the shipped RBAC and policy" % len(calls),
              json.dumps(denied[:10]))
    verbs = sorted({(c["method"], re.sub(r"/namespaces/[^/]+", "/namespaces/*",
                                         re.sub(r"/(pods|jobs|leases|events)/[^/]+", r"/\1/*", c["path"])))
                    for c in calls})
    print("janitor calls seen: " + ", ".join("%s %s" % v for v in verbs), flush=True)
    api = w.janitor_api(n1)
    for what, method, path in [
            ("read a Secret", "GET", ns_path("secrets", AGENT_NS)),
            ("update a node", "PUT", "/api/v1/nodes/" + n1),
            ("create a pod", "POST", ns_path("pods", AGENT_NS)),
            ("delete a Deployment", "DELETE", ns_path("deployments", AGENT_NS, "agent-pool")),
            ("update another Lease", "PUT", ns_path("leases", SYS_NS, "someone-else"))]:
        st, body = api.raw(method, path, {} if method in ("POST", "PUT") else None)
        res.check(st == 403, "least privilege: the janitor's token cannot %s (%d)" % (what, st),
                  json.dumps(body)[:200])
    # What the token may delete, narrowed by the shipped ValidatingAdmissionPolicy.
    managed_pod(w, "vap-managed-other-node", n2, "Succeeded", finished_ago=3600)
    create_pod(w, agent_pod("vap-unmanaged", opt_in=False, nodeName=n1))
    w.api.create(ns_path("pods", OTHER_NS), {"apiVersion": "v1", "kind": "Pod",
                                            "metadata": {"name": "vap-other-ns", "labels": {"pipewarden.io/managed": "true"}},
                                            "spec": {"nodeName": n1, "containers": [{"name": "agent", "image": "x"}]}})
    managed_pod(w, "vap-own-node", n1, "Succeeded", finished_ago=3600)
    for what, ns, name in [("a managed pod bound to another node", AGENT_NS, "vap-managed-other-node"),
                           ("an unmanaged pod", AGENT_NS, "vap-unmanaged"),
                           ("a pod in a namespace that did not opt in", OTHER_NS, "vap-other-ns")]:
        st, body = api.raw("DELETE", ns_path("pods", ns, name))
        res.check(st == 403 and w.api.exists(ns_path("pods", ns, name)),
                  "the policy: the %s janitor's token cannot delete %s (%d)" % (n1, what, st),
                  json.dumps(body)[:300])
    st, body = api.raw("DELETE", ns_path("pods", AGENT_NS, "vap-own-node"))
    res.check(st == 200, "the policy: it can delete a managed pod on its own node (%d)" % st, json.dumps(body)[:300])
    # #21: a delete the policy refuses holds back that pod only: the
    # janitor deletes the next one in the same cycle and exits 0.
    w.kubelet.set_status(OTHER_NS, "vap-other-ns", "Succeeded", finished_ago=3600)
    managed_pod(w, "zz-after-refusal", n1, "Succeeded", finished_ago=3600)
    p = w.janitor_once(n1)
    res.check(p.returncode == 0 and w.api.exists(ns_path("pods", OTHER_NS, "vap-other-ns")) and
              wait_gone(w.api, ns_path("pods", AGENT_NS, "zz-after-refusal")) and
              "write refused: held back, the other objects go on" in p.stderr and
              "ValidatingAdmissionPolicy" in p.stderr,
              "a delete kube-apiserver's policy refuses (403) holds back that pod only: the next is "
              "deleted, exit 0", p.stderr[-1200:])
    # The probes go (an admin's delete).
    for ns, name in [(AGENT_NS, "vap-managed-other-node"), (AGENT_NS, "vap-unmanaged"), (OTHER_NS, "vap-other-ns")]:
        w.api.raw("DELETE", ns_path("pods", ns, name))
        wait_gone(w.api, ns_path("pods", ns, name), 30)


# ---- the image and the Helm chart ----------------------------------------------

IMAGE_REF = "ghcr.io/pipewarden/pipewarden:"
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"
RELEASE = "pipewarden"


def image_version():
    with open(os.path.join(lib.ROOT, "charts", "pipewarden", "Chart.yaml")) as f:
        return yaml.safe_load(f)["appVersion"]


class Container:
    """One container of the image, as a runtime would start it: a copy of
    the image's root filesystem (unpacked from its OCI layout), the files its
    pod's volumes mount, and the command run by chroot as the image's user,
    with nothing from this machine but the kernel."""

    def __init__(self, w, rootfs, name):
        self.w = w
        self.root = os.path.join(w.tmp, "container-" + name)
        shutil.copytree(rootfs, self.root, symlinks=True)

    def put(self, path, data):
        full = os.path.join(self.root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        tmp = full + ".new"
        with open(tmp, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.chmod(tmp, 0o644)           # a Secret volume's default mode
        os.replace(tmp, full)          # as the kubelet swaps a volume's files

    def mount(self, pod_spec, container):
        """What the kubelet would mount: ConfigMap and Secret volumes, read
        from the cluster (projected service-account tokens are not needed)."""
        vols = {v["name"]: v for v in pod_spec.get("volumes", [])}
        ns = SYS_NS
        for m in container.get("volumeMounts", []):
            v = vols[m["name"]]
            if "configMap" in v:
                data = {k: t.encode() for k, t in
                        self.w.api.get(ns_path("configmaps", ns, v["configMap"]["name"]))["data"].items()}
                items = v["configMap"].get("items")
            elif "secret" in v:
                data = {k: base64.b64decode(t) for k, t in
                        self.w.api.get(ns_path("secrets", ns, v["secret"]["secretName"]))["data"].items()}
                items = v["secret"].get("items")
            else:
                continue
            for it in items or [{"key": k, "path": k} for k in data]:
                self.put(m["mountPath"] + "/" + it["path"], data[it["key"]])

    def command(self, container, replace=None, extra=()):
        args = list(container.get("args", []))
        for flag, value in (replace or {}).items():
            args = [a for a in args if not a.startswith(flag + "=")] + [flag + "=" + value]
        return [CHROOT, "--userspec=65532:65532", self.root] + container["command"] + args + list(extra)


def documented_helm(verb):
    """`helm VERB ...` as docs/install.md shows it, as arguments after the
    verb: the suite runs the documented command, so the page cannot rot.
    The chart path becomes the tree's, and the user's `-f my-values.yaml`
    is left to the caller (the test's own values)."""
    with open(os.path.join(lib.ROOT, "docs", "install.md")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"(?:^ {4}|`)helm %s ([^`\n]*)" % verb, text, re.M)
    assert m, "docs/install.md shows no `helm %s` command" % verb
    args = shlex.split(m.group(1))
    if "-f" in args:
        i = args.index("-f")
        del args[i:i + 2]
    return [CHART if a == "charts/pipewarden" else a for a in args]


def helm(w, *args, values=None):
    cmd = [cluster.helm_bin()] + list(args) + ["--kubeconfig", w.cp.admin_kubeconfig]
    if values is not None:
        path = os.path.join(w.tmp, "helm-values-%d.yaml" % time.monotonic_ns())
        with open(path, "w") as f:
            yaml.safe_dump(values, f)
        cmd += ["-f", path]
    env = dict(os.environ, HELM_CACHE_HOME=os.path.join(w.tmp, "helm", "cache"),
               HELM_CONFIG_HOME=os.path.join(w.tmp, "helm", "config"),
               HELM_DATA_HOME=os.path.join(w.tmp, "helm", "data"))
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def unpack_image(w):
    """The image's root filesystem, unpacked once from its OCI layout."""
    if getattr(w, "rootfs", None) is None:
        bundle = os.path.join(w.tmp, "image-bundle")
        p = subprocess.run(["umoci", "unpack", "--image", "%s/oci:%s" % (ARGS.image, image_version()), bundle],
                           capture_output=True, text=True)
        w.unpack_error = p.stderr[-400:]
        w.rootfs = os.path.join(bundle, "rootfs") if p.returncode == 0 else ""
    return w.rootfs


def test_image(res, w):
    """#15: the image, unpacked from its OCI layout, runs both programs as
    its user 65532 with only its own files."""
    if not ARGS.image:
        res.skip("the image", "no --image: the image holds the plain build, so the plain round tests it")
        return
    version = image_version()
    if not res.check(unpack_image(w), "umoci unpacks the image's OCI layout", w.unpack_error):
        return
    size = sum(os.lstat(os.path.join(d, f)).st_size for d, _, fs in os.walk(w.rootfs) for f in fs)
    res.check(size < 40 * 2**20, "the image is under 40 MB uncompressed (%.1f MB)" % (size / 1e6))
    w.image_size = size
    cfg = json.loads(subprocess.run(["skopeo", "inspect", "--config", "oci:%s/oci:%s" % (ARGS.image, version)],
                                    capture_output=True, text=True).stdout or "{}").get("config", {})
    res.check(cfg.get("User") == "65532:65532" and cfg.get("Entrypoint") == ["/usr/local/bin/pipewarden-webhook"],
              "the image runs as 65532:65532, the webhook by default", json.dumps(cfg))
    archive = os.path.join(ARGS.image, "pipewarden-%s.docker.tar" % version)

    def config_of(ref):
        p = subprocess.run(["skopeo", "inspect", "--config", ref], capture_output=True, text=True)
        return json.loads(p.stdout or "{}")
    d, o = config_of("docker-archive:" + archive), config_of("oci:%s/oci:%s" % (ARGS.image, version))
    with tarfile.open(archive) as t:
        tags = json.load(t.extractfile("manifest.json"))[0].get("RepoTags")
    # (the archive's layers are stored uncompressed, the layout's gzipped:
    # the same image has the same config, layer diff_ids included)
    res.check(tags == [IMAGE_REF + version] and d.get("rootfs") and d == o,
              "the docker-archive (docker load, podman load, kind load image-archive) is the same image, "
              "tagged " + IMAGE_REF + version, "%s %s %s" % (tags, d.get("rootfs"), o.get("rootfs")))
    res.check(not os.path.lexists(os.path.join(w.rootfs, "usr/bin/sh")) and
              os.stat(os.path.join(w.rootfs, "usr/local/bin/pipewarden-webhook")).st_uid == 0,
              "no shell in the image; its binaries belong to root, not to the user that runs them")
    c = Container(w, w.rootfs, "checks")
    for b in ("pipewarden-webhook", "pipewarden-janitor"):
        p = subprocess.run([CHROOT, "--userspec=65532:65532", c.root, "/usr/local/bin/" + b, "--version"],
                           capture_output=True, text=True)
        res.check(p.returncode == 0 and p.stdout.strip() == "%s %s" % (b, version),
                  "from the image, as 65532: %s --version" % b, p.stdout + p.stderr)
        with open(os.path.join(lib.ROOT, "manifests", "base", "config.json")) as f:
            c.put("/etc/pipewarden/config/config.json", f.read())
        p = subprocess.run([CHROOT, "--userspec=65532:65532", c.root, "/usr/local/bin/" + b, "--check-config",
                            "--config", "/etc/pipewarden/config/config.json"], capture_output=True, text=True)
        res.check(p.returncode == 0 and "configuration OK" in p.stdout + p.stderr,
                  "from the image: %s --check-config accepts the shipped config" % b, p.stdout + p.stderr)
        c.put("/etc/pipewarden/config/bad.json", '{"organizationUrl": "http://dev.azure.com/x"}')
        p = subprocess.run([CHROOT, "--userspec=65532:65532", c.root, "/usr/local/bin/" + b, "--check-config",
                            "--config", "/etc/pipewarden/config/bad.json"], capture_output=True, text=True)
        res.check(p.returncode == 2 and "organizationUrl" in p.stdout + p.stderr,
                  "from the image: %s --check-config names what is wrong" % b, p.stdout + p.stderr)


CHART = os.path.join(lib.ROOT, "charts", "pipewarden")
# Minimal CRDs, so that a server-side dry run can check the optional objects'
# names and kinds (their own controllers would check their specs).
CRDS = [("monitoring.coreos.com", "ServiceMonitor", "servicemonitors"),
        ("monitoring.coreos.com", "PodMonitor", "podmonitors"),
        ("monitoring.coreos.com", "PrometheusRule", "prometheusrules"),
        ("cert-manager.io", "Issuer", "issuers"), ("cert-manager.io", "Certificate", "certificates")]


def install_crds(w):
    for group, kind, plural in CRDS:
        w.api.raw("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", {
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "%s.%s" % (plural, group)},
            "spec": {"group": group, "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": kind + "List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
    lib.wait_until(lambda: all(w.api.raw("GET", "/apis/%s/v1/%s" % (g, p))[0] == 200 for g, _, p in CRDS),
                   30, "the CRDs served")


def uninstall_kustomize(w):
    """The kustomize install and its webhook go: the Helm release replaces them."""
    if getattr(w, "kustomize_gone", False):
        return
    w.kustomize_gone = True
    w.stop_webhook()
    for p in list(w.janitors.values()):
        cluster.kill(p)
    w.janitors = {}
    objs = [o for o in w.installed if o["kind"] != "Namespace"]
    w.cp.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-",
                 input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    lib.wait_until(lambda: not w.api.exists("/apis/apps/v1/namespaces/%s/daemonsets/pipewarden-janitor" % SYS_NS),
                   30, "the kustomize install gone")


def test_chart_dry_run(res, w):
    """#15: every documented values combination, as kube-apiserver itself
    validates it (kubectl apply --dry-run=server)."""
    import test_chart
    if not ARGS.image:
        res.skip("the Helm chart on the real control plane", "no --image: the plain round installs the chart")
        return
    uninstall_kustomize(w)
    install_crds(w)
    for name, sets, _, _ in test_chart.COMBINATIONS:
        args = ["template", RELEASE, CHART, "--namespace", SYS_NS]
        for s_ in sets:
            args += ["--set", s_]
        t = helm(w, *args)
        if not res.check(t.returncode == 0, "helm template: " + name, t.stderr[-300:]):
            continue
        p = w.cp.kubectl("apply", "--dry-run=server", "-f", "-", input=t.stdout)
        res.check(p.returncode == 0, "kube-apiserver accepts the chart (server dry run): " + name,
                  (p.stdout + p.stderr)[-600:])


def chart_values(w, **over):
    with open(w.config) as f:
        config = json.load(f)
    return lib.deep_merge({"config": config, "janitor": {"pat": {"enabled": True}}}, over)


def release_objects(w):
    """(apiVersion, kind, namespace, name) of every object of the release's manifest."""
    p = helm(w, "get", "manifest", RELEASE, "--namespace", SYS_NS)
    return [(o["apiVersion"], o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])
            for o in yaml.safe_load_all(p.stdout) if o]


def object_path(api_version, kind, ns, name):
    plural = {"PodDisruptionBudget": "poddisruptionbudgets", "NetworkPolicy": "networkpolicies",
              "PriorityClass": "priorityclasses"}.get(kind, kind.lower() + "s")
    base = "/api/v1" if api_version == "v1" else "/apis/" + api_version
    return base + ("/namespaces/%s" % ns if ns else "") + "/%s/%s" % (plural, name)


def start_image_webhook(w, c):
    """The chart's webhook Deployment, run from the image with its own args
    on the Service's ClusterIP and the container port; the Service port (443)
    forwarded to it as kube-proxy would.  kube-apiserver then calls it
    through the chart's clientConfig.service, unchanged."""
    dep = w.api.get("/apis/apps/v1/namespaces/%s/deployments/pipewarden-webhook" % SYS_NS)
    spec = dep["spec"]["template"]["spec"]
    container = spec["containers"][0]
    c.mount(spec, container)
    svc = w.api.get(ns_path("services", SYS_NS, "pipewarden-webhook"))
    ip = svc["spec"]["clusterIP"]
    sport = [p for p in svc["spec"]["ports"] if p["name"] == "https"][0]
    cport = [p for p in container["ports"] if p["name"] == sport["targetPort"]][0]["containerPort"]
    w.webhook_metrics = lib.free_port()
    w.webhook_log = os.path.join(w.tmp, "image-webhook.log")
    w.webhook = cluster.spawn(c.command(container, {"--address": ip, "--metrics-port": str(w.webhook_metrics)}),
                              w.webhook_log)
    w.service_port = cluster.ServicePort(ip, sport["port"], cport)
    def healthy():
        try:
            return urllib.request.urlopen("http://%s:%d/healthz" % (ip, w.webhook_metrics), timeout=1).status == 200
        except OSError:
            return False
    lib.wait_until(healthy, 20, "the image's webhook")
    return container, ip


def test_helm_lifecycle(res, w):
    """#15: helm install, the webhook answering kube-apiserver through the
    chart's own Service, the janitor from the image; helm upgrade keeps the
    CA; helm uninstall leaves only what the README says stays."""
    if not ARGS.image:
        res.skip("helm install, upgrade, uninstall", "no --image: the plain round installs the chart")
        return
    if not res.check(unpack_image(w), "umoci unpacks the image's OCI layout", w.unpack_error):
        return
    uninstall_kustomize(w)
    w.api.create(ns_path("secrets", SYS_NS), {"apiVersion": "v1", "kind": "Secret",
                                              "metadata": {"name": "azp-pat"},
                                              "stringData": {"token": PAT}})
    args = documented_helm("install")
    res.check(args[:2] == [RELEASE, CHART] and SYS_NS in args,
              "docs/install.md's helm install names the release, the chart and the namespace", str(args))
    p = helm(w, "install", *args, values=chart_values(w))
    if not res.check(p.returncode == 0, "helm install, as docs/install.md shows it", (p.stdout + p.stderr)[-800:]):
        return
    sec = w.api.get(ns_path("secrets", SYS_NS, "pipewarden-webhook-tls"))["data"]
    mwc = w.api.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pipewarden")
    res.check(mwc["webhooks"][0]["clientConfig"]["caBundle"] == sec["ca.crt"] and
              mwc["webhooks"][0]["clientConfig"]["service"]["namespace"] == SYS_NS,
              "install: the webhook configuration trusts the CA of the Secret the chart made")
    c = Container(w, w.rootfs, "helm-webhook")
    container, ip = start_image_webhook(w, c)
    res.check(ip.startswith("127.96."), "the webhook's Service has a ClusterIP kube-apiserver can dial here (%s)" % ip)
    stored = create_pod(w, agent_pod("helm-agent-1"))
    ann = stored["metadata"].get("annotations", {})
    res.check("pipewarden.io/injected" in ann and env_of(stored).get("AZP_POOL", {}).get("value") == "aks-pool",
              "install: kube-apiserver calls the image's webhook through the chart's Service; the pod is completed",
              json.dumps(stored["metadata"])[:400] + cluster.tail(w.webhook_log, 5))

    # The janitor DaemonSet, from the image, with its in-cluster defaults.
    node = CI_NODES[0]
    pod = lib.wait_until(lambda: w.janitor_pod(node), 60, "the chart's janitor pod on " + node)
    ds = w.api.get("/apis/apps/v1/namespaces/%s/daemonsets/pipewarden-janitor" % SYS_NS)
    jspec = ds["spec"]["template"]["spec"]
    jc = jspec["containers"][0]
    j = Container(w, w.rootfs, "helm-janitor")
    j.mount(jspec, jc)
    token, pod_name = w.janitor_token(node)
    with open(token) as f:
        j.put("/var/run/secrets/kubernetes.io/serviceaccount/token", f.read())
    with open(w.cp.pki + "/ca.crt") as f:
        j.put("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", f.read())
    with open(w.certdir + "/ca.crt") as f:
        j.put("/etc/pipewarden/test/ado-ca.crt", f.read())
    env = {"PATH": "/usr/local/bin:/usr/bin", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": w.cp.url.rsplit(":", 1)[1]}
    for e in jc["env"]:
        ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        env[e["name"]] = {"spec.nodeName": node, "metadata.namespace": SYS_NS,
                          "metadata.name": pod_name}.get(ref, e.get("value", ""))
    managed_pod(w, "helm-finished", node, "Succeeded", finished_ago=3600)
    # The one test-only addition: the simulator's CA, which no trust store has.
    p = subprocess.run(j.command(jc, {"--metrics-port": "0"}, ["--once", "--ado-ca=/etc/pipewarden/test/ado-ca.crt"]),
                       env=env, capture_output=True, text=True, timeout=120)
    res.check(p.returncode == 0 and '"leader":"true"' in p.stderr and
              wait_gone(w.api, ns_path("pods", AGENT_NS, "helm-finished"), 30),
              "the chart's janitor from the image (in-cluster token and CA, PAT from the chart's Secret volume): "
              "leads and deletes its node's finished pod", p.stderr[-800:])

    # helm upgrade with changed values: the CA stays, the new config is served.
    p = helm(w, "upgrade", *documented_helm("upgrade"),
             values=chart_values(w, config={"defaultPool": "linux-large", "pools": ["aks-pool", "linux-large"]},
                                 webhook={"timeoutSeconds": 7, "replicas": 3}))
    if not res.check(p.returncode == 0, "helm upgrade", (p.stdout + p.stderr)[-800:]):
        return
    sec2 = w.api.get(ns_path("secrets", SYS_NS, "pipewarden-webhook-tls"))["data"]
    mwc2 = w.api.get("/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pipewarden")
    res.check(sec2 == sec and mwc2["webhooks"][0]["clientConfig"]["caBundle"] == sec["ca.crt"],
              "upgrade: the CA and serving certificate are kept, not made anew")
    dep = w.api.get("/apis/apps/v1/namespaces/%s/deployments/pipewarden-webhook" % SYS_NS)
    res.check(mwc2["webhooks"][0]["timeoutSeconds"] == 7 and dep["spec"]["replicas"] == 3,
              "upgrade: the changed values are applied")
    c.mount(dep["spec"]["template"]["spec"], container)     # the kubelet updates the ConfigMap volume

    def new_pool():
        name = "helm-agent-%d" % time.monotonic_ns()
        st = create_pod(w, agent_pod(name))
        return env_of(st).get("AZP_POOL", {}).get("value") == "linux-large"
    res.check(lib.eventually(new_pool, 20),
              "upgrade: the same webhook process answers kube-apiserver with the new config (reloaded, no restart)",
              cluster.tail(w.webhook_log, 5))

    # helm uninstall: what the chart made goes; what stays is the README's list.
    made = release_objects(w)
    w.stop_webhook()
    w.service_port.stop()
    p = helm(w, "uninstall", *documented_helm("uninstall"), "--wait", "--timeout", "60s")
    if not res.check(p.returncode == 0, "helm uninstall", (p.stdout + p.stderr)[-800:]):
        return
    left = [o for o in made if w.api.exists(object_path(*o))]
    res.check(made and not left, "uninstall: none of the release's %d objects is left" % len(made), str(left))
    # (a pod bound to a node without a running kubelet, node-parked here,
    # stays Terminating until its node comes back or is deleted, as anywhere)
    def chart_pods():
        return w.api.get(ns_path("pods", SYS_NS), labelSelector="app.kubernetes.io/name in "
                         "(pipewarden-webhook,pipewarden-janitor)")["items"]

    def pods_gone():
        return all(p_["metadata"].get("deletionTimestamp") and p_["spec"].get("nodeName") == PARKED_NODE
                   for p_ in chart_pods())
    res.check(lib.eventually(pods_gone, 60), "uninstall: the webhook's and janitors' pods are gone",
              str([(p_["metadata"]["name"], p_["spec"].get("nodeName")) for p_ in chart_pods()]))
    stays = {("Secret", "azp-pat"), ("Lease", "pipewarden-janitor"), ("ConfigMap", "kube-root-ca.crt"),
             ("ServiceAccount", "default")}
    found = set()
    for kind, path in [("Secret", ns_path("secrets", SYS_NS)), ("ConfigMap", ns_path("configmaps", SYS_NS)),
                       ("ServiceAccount", ns_path("serviceaccounts", SYS_NS)),
                       ("Service", ns_path("services", SYS_NS)),
                       ("Lease", "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % SYS_NS),
                       ("Role", "/apis/rbac.authorization.k8s.io/v1/namespaces/%s/roles" % SYS_NS)]:
        found |= {(kind, o["metadata"]["name"]) for o in w.api.get(path)["items"]}
    res.check(found <= stays and w.api.exists("/api/v1/namespaces/" + SYS_NS),
              "uninstall: what stays is the namespace, the janitor's Lease, the PAT Secret you made, and "
              "what Kubernetes puts in every namespace", str(sorted(found - stays)))


TESTS = [test_install, test_bare_pod, test_job_and_deployment, test_reinvocation, test_dry_run_and_update,
         test_denials, test_team_values, test_janitor_node_work, test_janitor_annotations, test_janitor_gone_pods, test_janitor_lifecycle, test_janitor_jobs, test_janitor_job_without_pod, test_janitor_unscheduled, test_lease,
         test_paging, test_privileges, test_webhook_down, test_image, test_chart_dry_run,
         test_helm_lifecycle]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhook", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--results")
    ap.add_argument("--suite", default="real control plane")
    ap.add_argument("--only", default="")
    ap.add_argument("--image", help="the image's build directory (make image): its OCI layout and docker-archive")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ARGS = ap.parse_args()
    res = lib.Results(ARGS.suite.strip(), ARGS.results)
    tmp = tempfile.mkdtemp(prefix="pipewarden-cluster-")
    w = None
    try:
        t0 = time.monotonic()
        w = World(tmp)
        print("control plane up in %.1f s (Kubernetes %s)" % (
            w.cp.started_in, w.api.get("/version")["gitVersion"]), flush=True)
        for t in TESTS:
            if ARGS.only and t is not test_install and ARGS.only not in t.__name__:
                continue
            t1 = time.monotonic()
            try:
                t(res, w)
            except Exception as e:  # noqa: BLE001 - a scenario that raises is a failure, the rest go on
                import traceback
                traceback.print_exc()
                res.check(False, t.__name__ + " raised", str(e)[:800])
            w.cp.check_alive()
            print("  %s: %.1f s" % (t.__name__, time.monotonic() - t1), flush=True)
        print("suite took %.1f s" % (time.monotonic() - t0), flush=True)
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        res.check(False, "the control plane runs", str(e)[:2000])
    finally:
        if w:
            w.stop()
        cluster.kill_all()
    return lib.finish(res, tmp, ARGS.keep)


if __name__ == "__main__":
    sys.exit(main())
