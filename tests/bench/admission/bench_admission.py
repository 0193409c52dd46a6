#!/usr/bin/python3
"""make bench-admission: what a pod creation pays for a mutating webhook.

On one real control plane (tests/cluster), the same pod (the one a KEDA
ScaledJob creates for an agent, as in make demo) is created through
kube-apiserver into five namespaces, each reached by one configuration:

  none               no webhook matches the namespace
  no-op              a webhook that allows with no patch (noop.c): the floor
                     of calling any webhook
  same-patch         the same no-op returning pipewarden's patch for this pod:
                     the floor of delivering this mutation
  workload-identity  the Azure workload-identity webhook (a peer that adds a
                     similar token volume and env), registered as its own
                     manifests register it
  pipewarden         pipewarden-webhook, installed as the user installs it

Each round creates CREATES/ROUNDS pods per configuration in blocks, the
order of the blocks rotated from round to round, so drift falls on every
configuration alike.  kube-apiserver's and each webhook's CPU is read from
/proc before and after each block.  Every stored pod is checked: mutated by
the configuration's webhook, or not.  Latency is client-side, POST to 201.

usage: bench_admission.py --build DIR [--creates N] [--rounds R]
The table goes to stdout and is appended to bench/results.md; the last line is
  added latency p50: pipewarden/same-patch R1, pipewarden/workload-identity R2, patch B bytes
"""
import argparse
import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "support"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "cluster"))
import cluster  # noqa: E402
import lib  # noqa: E402
import test_cluster as tc  # noqa: E402
from cluster import ns_path  # noqa: E402

CONFIGS = ["none", "no-op", "same-patch", "workload-identity", "pipewarden"]
HOOK_LABEL = "bench.pipewarden.io/hook"
WI_PORT = 9443            # controller-runtime's webhook port; cmd/webhook has no flag for it
WI_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
WARMUP = 20


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def cpu_seconds(pid):
    """utime + stime of a process, from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def demo_pod():
    """The pod of make demo (tests/cases/job-pod-keda.json) as the Job
    controller sends it: without what admission adds (the token volume) and
    without the owner (a Job that does not exist here would be collected)."""
    with open(os.path.join(lib.ROOT, "tests", "cases", "job-pod-keda.json")) as f:
        obj = json.load(f)["review"]["request"]["object"]
    meta = obj["metadata"]
    labels = dict(meta["labels"])
    # The peer's objectSelector: a pod that uses workload identity says so.
    labels["azure.workload.identity/use"] = "true"
    agent = {k: v for k, v in obj["spec"]["containers"][0].items() if k != "volumeMounts"}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": meta["generateName"], "labels": labels,
                         "annotations": dict(meta["annotations"])},
            "spec": {"containers": [agent], "restartPolicy": "Never",
                     "serviceAccountName": obj["spec"]["serviceAccountName"],
                     "nodeName": tc.PARKED_NODE}}       # no scheduler work in the figure


def hook_config(name, like, url, ca_bundle, hook):
    """A registration for HOOK: like LIKE (a webhook entry), its own url and
    namespace."""
    w = copy.deepcopy(like)
    w.update(name="%s.bench.pipewarden.io" % hook, clientConfig={"url": url, "caBundle": ca_bundle},
             namespaceSelector={"matchLabels": {HOOK_LABEL: hook}})
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name}, "webhooks": [w]}


# The peer's registration, as its manifests (deploy/azure-wi-webhook.yaml) have it.
PEER_HOOK = {"admissionReviewVersions": ["v1", "v1beta1"], "failurePolicy": "Fail",
             "matchPolicy": "Equivalent", "objectSelector": {"matchLabels": {"azure.workload.identity/use": "true"}},
             "reinvocationPolicy": "IfNeeded", "sideEffects": "None",
             "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]}


class Bench:
    def __init__(self, w, args):
        self.w, self.args = w, args
        self.tmp = w.tmp
        self.procs = {}           # config -> subprocess (the webhook serving it)
        self.ns = {c: "bench-" + c for c in CONFIGS}

    # -- setup -----------------------------------------------------------------

    def namespaces(self):
        api = self.w.api
        for c in CONFIGS:
            labels = {}
            if c == "pipewarden":
                labels["pipewarden.io/injection"] = "enabled"
            elif c != "none":
                labels[HOOK_LABEL] = c
            api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": self.ns[c], "labels": labels}})
            ann = {"azure.workload.identity/client-id": WI_CLIENT_ID} if c == "workload-identity" else {}
            api.create(ns_path("serviceaccounts", self.ns[c]), {
                "apiVersion": "v1", "kind": "ServiceAccount",
                "metadata": {"name": "ci-agent", "annotations": ann}})

    def pipewarden_patch(self, pod):
        """pipewarden's patch for the pod exactly as kube-apiserver sends it
        (after defaulting and its built-in admission: a dry-run create where
        no webhook runs), from the same policy and config as the webhook."""
        seen = self.w.api.create(ns_path("pods", self.ns["none"]), pod, dryRun="All")
        seen["metadata"]["namespace"] = self.ns["same-patch"]
        review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                  "request": {"uid": "00000000-0000-4000-8000-000000000001",
                              "kind": {"group": "", "version": "v1", "kind": "Pod"},
                              "resource": {"group": "", "version": "v1", "resource": "pods"},
                              "namespace": self.ns["same-patch"], "operation": "CREATE",
                              "userInfo": {"username": "system:serviceaccount:kube-system:job-controller"},
                              "object": seen, "dryRun": False}}
        return run_policy(self.args.build, self.w.config, review)

    def start_noops(self, patch):
        noop = os.path.join(self.args.build, "bench", "noop")
        patch_file = os.path.join(self.tmp, "same-patch.json")
        with open(patch_file, "wb") as f:
            f.write(patch)
        for c, extra in (("no-op", []), ("same-patch", [patch_file])):
            port = lib.free_port()
            self.procs[c] = cluster.spawn([noop, str(port), self.w.certdir + "/tls.crt",
                                           self.w.certdir + "/tls.key"] + extra,
                                          os.path.join(self.tmp, c + ".log"))
            lib.wait_until(lambda port=port: lib.port_open(port), 20, "the %s webhook's port" % c)
            # registered exactly as pipewarden is, so only the server differs
            self.w.apply([hook_config("bench-" + c, self.pipewarden_hook(),
                                      "https://localhost:%d/mutate" % port, self.ca_bundle(), c)])

    def start_peer(self):
        if lib.port_open(WI_PORT):
            raise RuntimeError("port %d is taken: the workload-identity webhook listens there "
                               "(controller-runtime's default; cmd/webhook has no flag for it)" % WI_PORT)
        health, metrics = cluster.free_ports(2)
        env = dict(os.environ, KUBECONFIG=self.w.cp.admin_kubeconfig, AZURE_TENANT_ID=
                   "66666666-7777-8888-9999-000000000000", POD_NAMESPACE=tc.SYS_NS)
        self.procs["workload-identity"] = cluster.spawn(
            [self.args.peer, "--webhook-cert-dir", self.w.certdir, "--disable-cert-rotation",
             "--health-addr", "127.0.0.1:%d" % health, "--metrics-addr", "127.0.0.1:%d" % metrics,
             "--log-level", "info"], os.path.join(self.tmp, "workload-identity.log"), env=env)
        lib.wait_until(lambda: lib.port_open(WI_PORT), 60, "the workload-identity webhook's port")
        self.w.apply([hook_config("bench-workload-identity", PEER_HOOK,
                                  "https://localhost:%d/mutate-v1-pod" % WI_PORT, self.ca_bundle(),
                                  "workload-identity")])

    def pipewarden_hook(self):
        for o in self.w.installed:
            if o["kind"] == "MutatingWebhookConfiguration":
                return o["webhooks"][0]
        raise RuntimeError("pipewarden's MutatingWebhookConfiguration is not in what was installed")

    def ca_bundle(self):
        with open(self.w.certdir + "/ca.crt", "rb") as f:
            return base64.b64encode(f.read()).decode()

    # -- measuring -------------------------------------------------------------

    def mutated(self, c, stored):
        ann = stored["metadata"].get("annotations") or {}
        env = {e["name"] for e in stored["spec"]["containers"][0].get("env") or []}
        if c in ("none", "no-op"):
            return "pipewarden.io/injected" not in ann and not env
        if c in ("same-patch", "pipewarden"):
            return "pipewarden.io/injected" in ann and "PIPEWARDEN_POD_UID" in env
        return "AZURE_FEDERATED_TOKEN_FILE" in env and "pipewarden.io/injected" not in ann

    def create(self, c, pod):
        t0 = time.perf_counter()
        stored = self.w.api.create(ns_path("pods", self.ns[c]), pod)
        took = time.perf_counter() - t0
        if not self.mutated(c, stored):
            raise RuntimeError("%s: pod %s was %smutated as expected:\n%s" % (
                c, stored["metadata"]["name"], "not ", json.dumps(stored)[:2000]))
        return took, stored

    def run(self, pod):
        apiserver = self.w.cp.procs["kube-apiserver"].pid
        per_block = max(1, self.args.creates // self.args.rounds)
        res = {c: {"lat": [], "api_cpu": 0.0, "hook_cpu": 0.0, "n": 0, "stored": 0} for c in CONFIGS}
        for c in CONFIGS:                   # connections up, caches filled
            for _ in range(WARMUP):
                self.create(c, pod)
        t0 = time.monotonic()
        for r in range(self.args.rounds):
            order = CONFIGS[r % len(CONFIGS):] + CONFIGS[:r % len(CONFIGS)]
            for c in order:
                hook = self.procs.get(c) or (self.w.webhook if c == "pipewarden" else None)
                a0 = cpu_seconds(apiserver)
                h0 = cpu_seconds(hook.pid) if hook else 0.0
                for _ in range(per_block):
                    took, stored = self.create(c, pod)
                    res[c]["lat"].append(took)
                res[c]["api_cpu"] += cpu_seconds(apiserver) - a0
                res[c]["hook_cpu"] += (cpu_seconds(hook.pid) - h0) if hook else 0.0
                res[c]["n"] += per_block
                res[c]["stored"] = len(json.dumps(stored, separators=(",", ":")))
            print("bench-admission: round %d of %d done (%.0f s)" % (r + 1, self.args.rounds,
                                                                      time.monotonic() - t0), flush=True)
        return res

    def stop(self):
        for p in self.procs.values():
            cluster.kill(p)


def run_policy(build, config, review):
    """The JSON Patch (bytes, as the webhook sends it) for one AdmissionReview."""
    p = subprocess.run([os.path.join(build, "tools", "policy-run"), config], input=json.dumps(review),
                       capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError("policy-run failed (%d): %s" % (p.returncode, p.stderr))
    return base64.b64decode(json.loads(p.stdout)["response"]["patch"])


def demo_patch_bytes(build):
    """The patch of make demo: its ScaledJob pod, tests/config.json."""
    with open(os.path.join(lib.ROOT, "tests", "cases", "job-pod-keda.json")) as f:
        review = json.load(f)["review"]
    return len(run_policy(build, os.path.join(lib.ROOT, "tests", "config.json"), review))


def report(res, args, patch, took, version):
    none50 = pct(res["none"]["lat"], 50)
    added = {c: pct(res[c]["lat"], 50) - none50 for c in CONFIGS}
    lines = ["", "## Admission latency (%s, %s)" % (version, time.strftime("%Y-%m-%d %H:%M")), "",
             "The make demo ScaledJob pod, %d creates per configuration in %d rounds (order rotated), "
             "%.0f s; pipewarden's patch for it %d bytes in %d operations." % (
                 res["none"]["n"], args.rounds, took, len(patch), len(json.loads(patch))), "",
             "| configuration | p50 ms | p90 ms | p99 ms | added p50 ms | kube-apiserver CPU ms/pod "
             "| webhook CPU ms/pod | stored pod bytes | mutated as expected |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in CONFIGS:
        r = res[c]
        lines.append("| %s | %.2f | %.2f | %.2f | %s | %.2f | %s | %d | %d of %d |" % (
            c, pct(r["lat"], 50) * 1e3, pct(r["lat"], 90) * 1e3, pct(r["lat"], 99) * 1e3,
            "-" if c == "none" else "%.2f" % (added[c] * 1e3), r["api_cpu"] / r["n"] * 1e3,
            "-" if c == "none" else "%.2f" % (r["hook_cpu"] / r["n"] * 1e3), r["stored"], r["n"], r["n"]))
    ratio = lambda a, b: added[a] / added[b] if added[b] > 0 else float("inf")  # noqa: E731
    lines += ["", "added latency p50: pipewarden/same-patch %.2f, pipewarden/workload-identity %.2f, "
              "patch %d bytes" % (ratio("pipewarden", "same-patch"), ratio("pipewarden", "workload-identity"),
                                  demo_patch_bytes(args.build))]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--creates", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--peer", default=None, help="the workload-identity webhook binary")
    args = ap.parse_args()
    if args.peer is None:
        args.peer = subprocess.run(["sh", os.path.join(HERE, "peer", "build.sh"), "--print-path"],
                                   capture_output=True, text=True, check=True).stdout.strip()
    tc.ARGS = argparse.Namespace(webhook=os.path.join(args.build, "bin", "pipewarden-webhook"),
                                 janitor=os.path.join(args.build, "bin", "pipewarden-janitor"))
    tmp = tempfile.mkdtemp(prefix="pipewarden-bench-admission-")
    w = b = None
    try:
        w = tc.World(tmp)
        w.kubelet.stop()                # nothing runs here: no background API traffic
        w.install()
        w.start_webhook()
        b = Bench(w, args)
        b.namespaces()
        pod = demo_pod()
        patch = b.pipewarden_patch(pod)
        b.start_noops(patch)
        b.start_peer()
        t0 = time.monotonic()
        res = b.run(pod)
        text = report(res, args, patch, time.monotonic() - t0, w.api.get("/version")["gitVersion"])
        print(text)
        with open(os.path.join(lib.ROOT, "bench", "results.md"), "a") as f:
            f.write(text)
        return 0
    finally:
        if b:
            b.stop()
        if w:
            w.stop()
        cluster.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
