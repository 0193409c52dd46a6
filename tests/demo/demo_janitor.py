#!/usr/bin/python3
"""make demo, janitor part: the simulators with a realistic node and pool,
a dry run printed as a plan table, the real run, then what is left."""
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import sim  # noqa: E402

BIN = os.path.join(lib.ROOT, "bin", "pipewarden-janitor")


def step(text):
    print("\n\033[1m== %s\033[0m" % text, flush=True)


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    fmt = "   " + "  ".join("%%-%ds" % w for w in widths)
    print(fmt % tuple(header))
    for r in rows:
        print(fmt % tuple(r))


def main():
    tmp = tempfile.mkdtemp()
    certs = os.path.join(tmp, "certs")
    lib.make_certs(certs)
    kube, ado = sim.KubeSim(certs), sim.AdoSim(certs)
    ado.pools["aks-pool"] = 12
    if lib.HAVE_SHARED:
        ado.agents[12] = sim.fixture_agents(lib.SHARED)
        src = "../shared/fixtures/azure-devops/agents-page-1.json (times moved to today)"
    else:
        ado.agents[12] = [sim.agent(24588, "aks-pool-agents-j5s8n-y6ghp", changed_ago=9 * 86400, pod_uid="u1"),
                          sim.agent(18422, "build-vm-03", changed_ago=17 * 86400, managed=False),
                          sim.agent(22971, "keda-placeholder-aks-pool", created_ago=91 * 86400, pod_uid="u2"),
                          sim.agent(25103, "aks-pool-agents-z1m5q-t7bpy", changed_ago=1860, busy=True, pod_uid="u3"),
                          sim.agent(25114, "aks-pool-agents-p8w3z-h2lcd", status="online", busy=True, pod_uid="u4")]
        src = "a generated pool (../shared not found)"
    for p in (sim.pod("azdo-agent-2bq8n-lw6kd", phase="Succeeded", finished_ago=6300),
              sim.pod("azdo-agent-4kx7t-n2vcb", phase="Failed", finished_ago=720),
              sim.pod("azdo-agent-7mvzp-s4xgh", phase="Running"),
              sim.pod("azdo-agent-9dz2c-fk7rm", phase="Succeeded", finished_ago=120),
              sim.pod("azdo-agent-c6wjr-p8bzq", phase="Pending", created_ago=1500),
              sim.pod("azdo-agent-hx4lq-d9mtw", phase="Pending", created_ago=120),
              sim.pod("azdo-agent-pool-6b7d9f8c5d-x2x9q", phase="Pending", created_ago=3000,
                      owner="ReplicaSet", owner_name="azdo-agent-pool-6b7d9f8c5d"),
              sim.pod("azdo-agent-other-node", node="aks-node-b", phase="Succeeded", finished_ago=9000)):
        kube.add_pod(p)
    cfg = json.load(open(lib.DEFAULT_CONFIG))
    cfg["organizationUrl"] = ado.url
    cfg["pools"] = ["aks-pool"]
    cfgpath = os.path.join(tmp, "config.json")
    json.dump(cfg, open(cfgpath, "w"))
    for name, text in (("token", kube.token), ("pat", ado.pat)):
        open(os.path.join(tmp, name), "w").write(text)
    env = dict(os.environ, POD_NAME="pipewarden-janitor-7xk2q", POD_NAMESPACE="pipewarden-system",
               AZP_TOKEN_FILE=os.path.join(tmp, "pat"))
    cmd = [BIN, "--config", cfgpath, "--node", "node-a", "--kube-api", kube.url,
           "--kube-token-file", os.path.join(tmp, "token"), "--kube-ca", os.path.join(certs, "ca.crt"),
           "--ado-ca", os.path.join(certs, "ca.crt"), "--once"]

    step("10. The janitor's world: node 'node-a' and pool 'aks-pool' (%s), simulated over HTTPS" % src)
    table([(p["metadata"]["name"], p["spec"].get("nodeName", ""), p["status"]["phase"],
            p["metadata"]["ownerReferences"][0]["kind"]) for p in kube.pods],
          ("POD", "NODE", "PHASE", "OWNER"))
    print()
    table([(a["id"], a["name"], a["status"], "yes" if a.get("enabled") else "no",
            "busy" if a.get("assignedRequest") else "", a["systemCapabilities"].get("PIPEWARDEN_MANAGED", "-"))
           for a in ado.agents[12]], ("AGENT", "NAME", "STATUS", "ENABLED", "JOB", "MANAGED"))

    step("11. pipewarden-janitor report: each agent, the pod behind it, what the next cycle would do")
    rep = [BIN, "report"] + [a for a in cmd[1:] if a != "--once"]
    p = subprocess.run(rep, env=env, capture_output=True, text=True)
    for line in p.stdout.splitlines():
        print("   " + line)
    writes = [r for r in kube.server.requests() + ado.server.requests() if r[0] != "GET"]
    print("   exit %d; writes to the APIs: %d" % (p.returncode, len(writes)))

    step("11b. pipewarden-janitor --once --dry-run: the plan, and nothing written")
    p = subprocess.run(cmd + ["--dry-run"], env=env, capture_output=True, text=True)
    rows = []
    for line in p.stderr.splitlines():
        e = json.loads(line)
        if e["msg"] in ("would delete", "keep"):
            subject = "%s %s" % (e["kind"], e.get("agent") or e.get("pod"))
            if e.get("job"):
                subject += " (Job %s)" % e["job"]
            rows.append((subject, "DELETE" if e["msg"] == "would delete" else "keep", e["reason"]))
    table(rows, ("WHAT", "ACTION", "WHY"))
    writes = [r for r in kube.server.requests() + ado.server.requests() if r[0] != "GET"]
    print("   exit %d; writes to the APIs: %d" % (p.returncode, len(writes)))

    step("12. pipewarden-janitor --once: the real run (log lines of the deletions)")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in p.stderr.splitlines():
        e = json.loads(line)
        if e["msg"] in ("deleted", "cycle done", "became the leader: pool work is mine", "released the lease"):
            print("   " + line[:200])
    print("   exit %d" % p.returncode)

    step("13. Afterwards: what is left, and the Events a user sees")
    table([(p["metadata"]["name"], p["spec"].get("nodeName", ""), p["status"]["phase"]) for p in kube.pods],
          ("POD", "NODE", "PHASE"))
    print()
    table([(a["id"], a["name"], a["status"]) for a in ado.agents[12]], ("AGENT", "NAME", "STATUS"))
    print()
    for ev in kube.events:
        print("   Normal  %s  pod/%s  %s" % (ev["reason"], ev["involvedObject"]["name"], ev["message"]))
    kube.stop()
    ado.stop()


if __name__ == "__main__":
    main()
