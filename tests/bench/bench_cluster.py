#!/usr/bin/python3
"""make bench, on the real control plane: what pipewarden costs kube-apiserver.

1. Pod creation latency through kube-apiserver (client-side, POST to 201),
   1,000 creates into an opted-in namespace (the webhook is called) against
   1,000 into one that did not opt in (it is not), interleaved one by one in
   the same run so drift falls on both alike.  p50, p99 and the ratio.
2. One janitor cycle at 1,000 managed pods, as leader and as a plain node
   replica: the API requests it made and their bytes (recorded by the test's
   proxy), and kube-apiserver's own CPU seconds for it (its
   process_cpu_seconds_total, read before and after).

usage: bench_cluster.py --webhook BIN --janitor BIN [--creates N]
Figures go to stdout and are appended to bench/results.md.
"""
import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cluster"))
import cluster  # noqa: E402
import lib  # noqa: E402
import sim  # noqa: E402
import test_cluster as tc  # noqa: E402
from cluster import ns_path  # noqa: E402


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def apiserver_cpu(w):
    for line in w.cp.metrics().splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    raise RuntimeError("kube-apiserver /metrics has no process_cpu_seconds_total")


def creation_latency(w, n):
    tc.namespace(w.api, "bench-in", True)
    tc.namespace(w.api, "bench-out", False)
    lat = {"bench-in": [], "bench-out": []}
    for i in range(n):
        for ns in ("bench-in", "bench-out") if i % 2 == 0 else ("bench-out", "bench-in"):
            pod = tc.agent_pod("c-%05d" % i, ns=ns)
            pod["spec"]["nodeName"] = tc.PARKED_NODE      # no scheduler work in the figure
            t0 = time.perf_counter()
            stored = w.api.create(ns_path("pods", ns), pod)
            lat[ns].append(time.perf_counter() - t0)
            injected = "pipewarden.io/injected" in (stored["metadata"].get("annotations") or {})
            if injected != (ns == "bench-in"):
                raise RuntimeError("pod %s/%s: webhook %s" % (ns, pod["metadata"]["name"],
                                                              "missing" if injected is False else "ran"))
    return lat


def janitor_cycle(w, node):
    w.proxy.take()
    c0 = apiserver_cpu(w)
    p = w.janitor_once(node)
    c1 = apiserver_cpu(w)
    calls = w.all_janitor_calls
    w.all_janitor_calls = []
    if p.returncode != 0:
        raise RuntimeError("janitor cycle failed: " + p.stderr[-600:])
    kinds = {}
    for c in calls:
        parts = c["path"].strip("/").split("/")
        resource = parts[-1] if parts[-1] in ("pods", "leases", "events", "jobs") else parts[-2]
        key = "%s %s" % (c["method"], resource)
        kinds[key] = kinds.get(key, 0) + 1
    return {"requests": len(calls), "bytes_in": sum(c["bytes_in"] for c in calls),
            "bytes_out": sum(c["bytes_out"] for c in calls), "cpu": c1 - c0, "kinds": kinds}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhook", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--creates", type=int, default=1000)
    tc.ARGS = args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pipewarden-bench-cluster-")
    w = None
    try:
        w = tc.World(tmp)
        w.install()
        w.start_webhook()
        for n in tc.CI_NODES + [tc.PLAIN_NODE]:
            lib.wait_until(lambda n=n: w.janitor_pod(n), 60, "janitor pod on " + n)
        t0 = time.monotonic()
        lat = creation_latency(w, args.creates)
        took = time.monotonic() - t0
        # 1,000 managed pods for the janitor: the webhook's own (bench-in),
        # on a node no janitor runs for, and an agent for each of them.
        now = time.time()
        pods = w.api.get(ns_path("pods", "bench-in"))["items"]
        w.ado.agents[12] = [sim.agent(10 + i, p["metadata"]["name"], changed_ago=7200,
                                      pod_uid=p["metadata"]["uid"], now=now) for i, p in enumerate(pods)]
        leader = janitor_cycle(w, tc.PLAIN_NODE)
        # Another replica holds the Lease: this one does its node's work only.
        lease = w.api.get(ns_path("leases", tc.SYS_NS, "pipewarden-janitor"))
        lease["spec"].update(holderIdentity="another-replica", leaseDurationSeconds=600,
                             renewTime=time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()))
        w.api.call("PUT", ns_path("leases", tc.SYS_NS, "pipewarden-janitor"), lease)
        follower = janitor_cycle(w, tc.PLAIN_NODE)
        lines = ["", "## Real control plane (%s, %s)" % (w.api.get("/version")["gitVersion"],
                                                          time.strftime("%Y-%m-%d %H:%M")), "",
                 "Pod creation through kube-apiserver, %d creates each, interleaved (%.0f s):" % (
                     args.creates, took), "",
                 "| namespace | p50 | p99 |", "|---|---|---|"]
        for ns, what in (("bench-in", "opted in (webhook called)"), ("bench-out", "not opted in")):
            lines.append("| %s | %.2f ms | %.2f ms |" % (what, pct(lat[ns], 50) * 1e3, pct(lat[ns], 99) * 1e3))
        lines += ["", "Ratio with/without the webhook: p50 %.2f, p99 %.2f" % (
            pct(lat["bench-in"], 50) / pct(lat["bench-out"], 50),
            pct(lat["bench-in"], 99) / pct(lat["bench-out"], 99)), "",
            "One janitor cycle at %d managed pods (and as many agents, all backed):" % len(pods), "",
            "| replica | requests | bytes received | bytes sent | kube-apiserver CPU |", "|---|---|---|---|---|"]
        for name, c in (("leader", leader), ("node replica (not leader)", follower)):
            lines.append("| %s | %d (%s) | %d | %d | %.3f s |" % (
                name, c["requests"], ", ".join("%s %d" % kv for kv in sorted(c["kinds"].items())),
                c["bytes_in"], c["bytes_out"], c["cpu"]))
        text = "\n".join(lines) + "\n"
        print(text)
        with open(os.path.join(lib.ROOT, "bench", "results.md"), "a") as f:
            f.write(text)
        print("(appended to bench/results.md)")
        return 0
    finally:
        if w:
            w.stop()
        cluster.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
