#!/usr/bin/python3
"""The Grafana dashboard and the alerts on a real Prometheus.

Debian's prometheus scrapes the real webhook and a real long-running
janitor (against the simulators) every second while a scenario runs:
admissions patched, unchanged, denied and malformed; a pool with agents of
every kind, one pool that does not exist, a pipeline job interrupted by an
OOMKilled pod.  Then every query of every panel of
manifests/monitoring/grafana-dashboard.json must return series through
Prometheus' HTTP API (no panel is empty because of a typo in a metric or
label name), and the alerts of manifests/monitoring/prometheusrule.yaml
must load and evaluate without error in that same Prometheus.

usage: test_monitoring.py --webhook BIN --janitor BIN [--results FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import sim  # noqa: E402
import test_janitor  # noqa: E402
import test_webhook  # noqa: E402

MONITORING = os.path.join(lib.ROOT, "manifests", "monitoring")


def query(port, path, **q):
    url = "http://127.0.0.1:%d%s?%s" % (port, path, urllib.parse.urlencode(q))
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def traffic(hook):
    """One of each answer: patched, unchanged, denied, error."""
    review = test_webhook.valid_review()
    hook.post(json.dumps(review).encode())
    plain = json.loads(json.dumps(review))
    plain["request"]["object"]["metadata"]["annotations"] = {}
    plain["request"]["object"]["metadata"]["labels"] = {}
    hook.post(json.dumps(plain).encode())
    denied = json.loads(json.dumps(review))
    denied["request"]["object"]["metadata"].setdefault("annotations", {})["pipewarden.io/profile"] = "huge"
    hook.post(json.dumps(denied).encode())
    hook.post(b"not an AdmissionReview")


def scenario(tmp):
    """The webhook, and a janitor whose cycles touch every metric."""
    hook = test_webhook.Webhook(tmp)
    env = test_janitor.Env(tmp, cfg={"pools": ["aks-pool", "ghost-pool"],
                                     "janitor": {"intervalSeconds": 1, "idleAgentSeconds": 1800}})
    test_janitor.standard_state(env)
    oom = sim.pod("oom-agent", phase="Failed", finished_ago=30)
    for cs in oom["status"]["containerStatuses"]:
        cs["state"]["terminated"]["reason"] = "OOMKilled"
    env.kube.add_pod(oom)
    env.ado.agents[12].append(sim.agent(61, "oom-agent", busy=True, changed_ago=20, pod_uid="uid-oom-agent"))
    # Why jobs wait: requests and a pod's startup, a Job a quota keeps
    # without a pod, an idle agent pod to retire, and a job that has
    # waited 15 minutes while no pod of the pool starts.
    test_janitor.waiting_state(env, time.time())
    env.ado.job_requests[12].append(sim.job_request(5006, int(time.time()) - 900))
    env.kube.add_podless_job("ci-agents", "quota-m1", 1000, failed_create=test_janitor.QUOTA_MSG)
    env.kube.add_pod(test_janitor.agent_running(sim.pod("idle-m1"), 5000))
    env.ado.agents[12].append(sim.agent(62, "idle-m1", status="online", changed_ago=4000, pod_uid="uid-idle-m1"))
    loop = test_janitor.Loop(env)
    return hook, env, loop


def alert_pools(port, rules, name):
    """The pools the alert's expression selects now (its 'for' aside)."""
    expr = [r["expr"] for g in rules["groups"] for r in g["rules"] if r.get("alert") == name][0]
    r = query(port, "/api/v1/query", query=expr)
    return sorted(x["metric"].get("pool", "") for x in r["data"]["result"])


def start_prometheus(tmp, targets):
    port = lib.free_port()
    with open(os.path.join(MONITORING, "prometheusrule.yaml")) as f:
        rules = yaml.safe_load(f)["spec"]
    with open(os.path.join(tmp, "rules.yaml"), "w") as f:
        yaml.safe_dump(rules, f)
    cfg = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
           "rule_files": [os.path.join(tmp, "rules.yaml")],
           "scrape_configs": [{"job_name": job, "static_configs": [{"targets": ["127.0.0.1:%d" % p]}]}
                              for job, p in targets]}
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        yaml.safe_dump(cfg, f)
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", "--config.file", os.path.join(tmp, "prometheus.yml"),
                             "--storage.tsdb.path", os.path.join(tmp, "tsdb"),
                             "--web.listen-address", "127.0.0.1:%d" % port, "--log.level", "warn"],
                            stdout=log, stderr=log)
    lib.wait_until(lambda: lib.port_open(port), 30, "prometheus")
    return proc, port, rules


def panel_queries():
    with open(os.path.join(MONITORING, "grafana-dashboard.json")) as f:
        dash = json.load(f)
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--webhook", required=True)
    ap.add_argument("--janitor", required=True)
    ap.add_argument("--results")
    ap.add_argument("--suite", default="dashboard and alerts on Prometheus")
    args = ap.parse_args()
    res = lib.Results(args.suite, args.results)
    test_webhook.ARGS = argparse.Namespace(bin=args.webhook, wrapper="", quick=False)
    test_janitor.ARGS = argparse.Namespace(bin=args.janitor, wrapper="")
    tmp = tempfile.mkdtemp(prefix="pipewarden-monitoring-")
    hook = env = loop = prom = None
    try:
        hook, env, loop = scenario(tmp)
        prom, port, rules = start_prometheus(tmp, [("pipewarden-webhook", hook.metrics_port),
                                                   ("pipewarden-janitor", loop.port)])
        # A few scrapes while the scenario runs: rate() needs two samples.
        for _ in range(6):
            traffic(hook)
            time.sleep(1)
        loop.wait_cycles(3)

        def scraped():
            r = query(port, "/api/v1/query", query="count_over_time(up[1m])")["data"]["result"]
            return len(r) == 2 and all(float(x["value"][1]) >= 4 for x in r)
        res.check(lib.eventually(scraped, 30), "Prometheus scraped the webhook and the janitor")
        up = query(port, "/api/v1/query", query="up")["data"]["result"]
        res.check(sorted(x["metric"]["job"] for x in up if x["value"][1] == "1") ==
                  ["pipewarden-janitor", "pipewarden-webhook"], "both targets up", json.dumps(up))
        for title, expr in panel_queries():
            r = query(port, "/api/v1/query", query=expr)
            series = r.get("data", {}).get("result", [])
            res.check(r.get("status") == "success" and series,
                      "panel %r returns series: %s" % (title, expr), json.dumps(r)[:300])
        # PipewardenJobsWaiting on what the real janitor exports: a job has
        # waited 15 minutes and no pod of the pool has started since
        # Prometheus began; then a pod of the pool is scheduled.
        res.check(alert_pools(port, rules, "PipewardenJobsWaiting") == ["aks-pool"],
                  "PipewardenJobsWaiting's condition holds while jobs wait and no pod of the pool starts")
        starting = sim.pod("w-new", node="node-a", phase="Pending", created_ago=10)
        starting["status"]["conditions"] = [{"type": "PodScheduled", "status": "True",
                                             "lastTransitionTime": sim.now_rfc3339(time.time() - 5)}]
        env.kube.add_pod(starting)
        res.check(lib.eventually(lambda: alert_pools(port, rules, "PipewardenJobsWaiting") == [], 60),
                  "and clears once a pod of the pool is scheduled (its startup observed)")
        groups = query(port, "/api/v1/rules")["data"]["groups"]
        loaded = {g["name"]: g for g in groups}
        res.check(sorted(loaded) == sorted(g["name"] for g in rules["groups"]),
                  "the PrometheusRule's groups load in Prometheus", str(sorted(loaded)))
        bad = [(r_["name"], r_.get("lastError")) for g in groups for r_ in g["rules"]
               if r_.get("health") != "ok"]
        res.check(groups and not bad, "every alert evaluates without error (%d rules)" %
                  sum(len(g["rules"]) for g in groups), str(bad))
    finally:
        if prom:
            prom.terminate()
            prom.wait()
        if loop:
            loop.stop()
        if env:
            env.stop()
        if hook:
            hook.stop()
    return lib.finish(res, tmp)


if __name__ == "__main__":
    sys.exit(main())
