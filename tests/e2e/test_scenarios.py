#!/usr/bin/python3
"""Randomized janitor scenarios: seeded worlds run through the real binary
against the simulators, each checked against the invariants.

Every scenario is one seed.  From it come a random cluster (managed and
unmanaged pods on this node, another node and none; Jobs with one or two
pods, bare pods, ReplicaSet and StatefulSet pods; every phase, young and
old, terminating, sidecars), a random pool (online, offline, busy,
disabled, young, never connected, unmanaged, kept by name, backed by a pod
by UID or by name), a random config (deletion cap, onlyManagedAgents,
keepAgents), a random Lease (free, held, expired, ours), PAT or workload
identity, --dry-run or not, sometimes two janitors on two nodes racing,
and at most one fault: Kubernetes or Azure DevOps down, 5xx, 429 with
Retry-After, 401, a 203 sign-in page, truncated JSON, a missing pool,
Entra down, a Lease written or taken by another replica mid-cycle, an
agent that takes a job or disappears before its delete, a pod or Job
replaced before its delete, a leader whose agent deletes are slowed past
half its Lease.

Then `pipewarden-janitor --once` runs (one process per janitor), and the
requests the simulators received are checked against a model written from
DESIGN.md (not from plan.c):

  never an agent that was online, busy, disabled, young, kept, unmanaged
  or backed by a managed pod; never an agent deleted without holding the
  Lease; never a pod or Job outside the janitor's scope (another node, not
  managed, terminating, young, a Pending pod of another controller, a Job
  with a pod still alive); never more than the cap; a dry run writes
  nothing; pod writes only of pipewarden's annotations, on managed pods
  whose agent runs a job, by a leader; a failed Azure DevOps call or pod list deletes what DESIGN says
  it must not; no secret in any log line.  Where no fault hides the
  outcome, it must also delete exactly what the model says (up to the
  cap), and exit 0.

Ages are drawn well away from every threshold, so seconds spent in retries
never change a verdict.  Scenarios run in parallel worker processes, each
with its own simulators.  A failure prints its seed; `--seed N --count 1`
replays it.

usage: test_scenarios.py --bin BIN [--count N] [--seed S] [--workers W] [--fault NAME] [--results FILE]
"""
import argparse
import calendar
import fnmatch
import json
import math
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import sim  # noqa: E402

NS = "pipewarden-system"
LEASE = "pipewarden-janitor"
GRACE, TTL, STUCK, PENDING = 600, 300, 900, 3600
POOLS = {"aks-pool": 12, "linux-large": 13}
NODES = {"janitor-1": "node-a", "janitor-2": "node-b"}

# Faults and how often (per mille) a scenario gets one.  Those that make the
# janitor wait (backoff, Retry-After) are rare so that 10,000 scenarios fit
# in a few minutes; tests/e2e/test_janitor.py covers each of them in depth.
FAULTS = [("none", 580), ("kube_down", 30), ("kube_401", 30), ("kube_5xx", 50), ("kube_429", 4),
          ("ado_down", 3), ("ado_203", 35), ("ado_malformed", 35), ("ado_5xx_recovered", 5),
          ("ado_5xx", 2), ("ado_429", 4), ("pool_missing", 30), ("entra_down", 1),
          ("lease_conflict", 30), ("lease_stolen", 30), ("agent_busy_race", 40),
          ("agent_gone_race", 30), ("pod_replaced", 40), ("job_pod_appears", 28),
          ("leader_slowed", 2), ("agent_reregistered", 30)]

# A slowed leader: every agent DELETE takes this long, and the janitor runs
# with a 1 s interval, so its Lease is 17 s and half of it 8.5 s.
SLOW_DELETE = 2.0
# The lifecycle's settings in the scenarios that turn it on.
IDLE = 1800
REGISTRATION = 600
HALF_LEASE = (2 * 1 + 15) / 2


def young(rng, limit):
    return rng.randint(0, limit * 2 // 3)


def old(rng, limit):
    return rng.randint(limit * 3 // 2, limit * 400)


# ---- the world ----------------------------------------------------------------

def gen_pods(rng, seed):
    """Pods as (spec dict, Pod object).  The spec keeps what the model needs."""
    out = []
    jobs = []
    backoff = set()
    for i in range(rng.randint(0, 8)):
        name = "s%d-p%d" % (seed, i)
        ns = rng.choice(("ci-agents", "ci-agents", "team-b"))
        node = rng.choices(("node-a", "node-b", None), (60, 25, 15))[0]
        owner = rng.choices(("Job", None, "ReplicaSet", "StatefulSet"), (60, 20, 14, 6))[0]
        owner_name = None
        if owner == "Job":
            same = [j for j in jobs if j[0] == ns]
            if same and rng.random() < 0.3:
                owner_name = rng.choice(same)[1]       # a second pod of a Job (a retry)
            else:
                owner_name = "job-s%d-%d" % (seed, i)
                jobs.append((ns, owner_name))
                if rng.random() < 0.2:      # between retries: no terminal condition
                    backoff.add((ns, owner_name))
        elif owner:
            owner_name = "%s-s%d-%d" % (owner.lower(), seed, i)
        phase = "Pending" if node is None else rng.choice(("Succeeded", "Failed", "Running", "Pending"))
        s = {"name": name, "ns": ns, "node": node, "phase": phase, "owner": owner,
             "owner_name": owner_name, "uid": "uid-s%d-%d" % (seed, i),
             "managed": rng.random() < 0.9, "deleting": rng.random() < 0.08,
             "created_ago": None, "finished_ago": None, "agent_finished_ago": None,
             "unschedulable": False, "waiting": False}
        if phase in ("Succeeded", "Failed"):
            if rng.random() < 0.85:
                s["finished_ago"] = rng.choice((young, old))(rng, TTL)
                s["created_ago"] = s["finished_ago"] + rng.randint(0, 3600)
            else:   # evicted before any container ran: counted from creation
                s["created_ago"] = rng.choice((young, old))(rng, TTL)
        elif phase == "Running":
            s["created_ago"] = rng.randint(0, 100000)
            if rng.random() < 0.3:
                s["agent_finished_ago"] = rng.choice((young, old))(rng, TTL)
                s["created_ago"] = s["agent_finished_ago"] + rng.randint(0, 3600)
        else:
            # A container that cannot start (ImagePullBackOff ...) goes after
            # stuckPendingSeconds; any other Pending pod after pendingTimeoutSeconds.
            s["waiting"] = node is not None and rng.random() < 0.6
            s["created_ago"] = rng.choice((young, old))(rng, STUCK if s["waiting"] else PENDING)
            s["unschedulable"] = node is None and rng.random() < 0.7
        p = sim.pod(name, ns=ns, node=node, phase=phase, created_ago=s["created_ago"],
                    finished_ago=s["finished_ago"], owner=owner, owner_name=owner_name, uid=s["uid"],
                    deleting=s["deleting"], unschedulable=s["unschedulable"],
                    agent_finished_ago=s["agent_finished_ago"],
                    sidecar=s["agent_finished_ago"] is not None,
                    waiting="ImagePullBackOff" if s["waiting"] else None)
        if not s["managed"]:
            del p["metadata"]["labels"]["pipewarden.io/managed"]
        out.append((s, p))
    for s, _ in out:
        s["backoff"] = (s["ns"], s["owner_name"]) in backoff
    return out


def gen_agents(rng, seed, pool, pods, first_id):
    out = []
    for i in range(rng.randint(0, 9)):
        aid = first_id + i
        r = rng.random()
        if r < 0.12 and pods:
            name = rng.choice(pods)[0]["name"]          # registered under its pod's name
        elif r < 0.20:
            name = "keda-placeholder-%s" % pool
        elif r < 0.27:
            name = "keep-s%d-%d" % (seed, aid)
        else:
            name = "agent-s%d-%d" % (seed, aid)
        r = rng.random()
        if r < 0.35 and pods:
            pod_uid = rng.choice(pods)[0]["uid"]        # its pod may still be there
        elif r < 0.75:
            pod_uid = "uid-gone-s%d-%d" % (seed, aid)
        else:
            pod_uid = None
        changed = rng.choices(("young", "old", "never"), (30, 55, 15))[0]
        s = {"id": aid, "name": name, "pool": pool, "online": rng.random() < 0.2,
             "enabled": rng.random() < 0.85, "busy": rng.random() < 0.15,
             "managed": rng.random() < 0.8}
        if changed == "never":      # never connected: counted from createdOn
            s["changed_ago"], s["created_ago"] = None, rng.choice((young, old))(rng, GRACE)
        else:
            s["changed_ago"] = young(rng, GRACE) if changed == "young" else old(rng, GRACE)
            s["created_ago"] = s["changed_ago"] + rng.randint(0, 100000)
        a = sim.agent(aid, name, status="online" if s["online"] else "offline", enabled=s["enabled"],
                      busy=s["busy"], changed_ago=s["changed_ago"], created_ago=s["created_ago"],
                      managed=s["managed"], pod_uid=pod_uid if s["managed"] or rng.random() < 0.5 else None)
        s["pod_uid"] = a["systemCapabilities"].get("PIPEWARDEN_POD_UID")
        out.append((s, a))
    return out


def lease_object(holder, renew_ago):
    now = time.time()
    return {"kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": LEASE, "namespace": NS, "resourceVersion": "100", "uid": "lease-uid-1"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 60,
                     "acquireTime": sim.now_rfc3339(now - renew_ago - 100, True),
                     "renewTime": sim.now_rfc3339(now - renew_ago, True), "leaseTransitions": 3}}


# --fault NAME: every scenario gets that fault (to replay one or test its checks).
FORCED_FAULT = None


class Scenario:
    def __init__(self, seed):
        rng = random.Random(seed)
        self.seed = seed
        self.fault = rng.choices([f for f, _ in FAULTS], [w for _, w in FAULTS])[0]
        self.fault = FORCED_FAULT or self.fault
        self.dry_run = rng.random() < 0.1
        self.racing = rng.random() < 0.08 and not self.dry_run
        self.wi = (rng.random() < 0.15 and self.fault != "ado_203") or self.fault == "entra_down"
        self.cap = rng.choice((0, 1, 2, 3, 50, 50, 50))
        self.only_managed = rng.random() < 0.8
        self.keep = ["keda-placeholder*"] + (["keep-*"] if rng.random() < 0.6 else [])
        self.pools = ["aks-pool"] + (["linux-large"] if rng.random() < 0.25 else [])
        self.lease = rng.choices(("free", "other", "expired", "ours", "released"), (55, 15, 15, 10, 5))[0]
        self.pods = gen_pods(rng, seed)
        self.agents = []
        for pool in self.pools:
            self.agents += gen_agents(rng, seed, pool, [p for p in self.pods if p[0]["managed"]],
                                      1 + len(self.agents))
        if self.fault == "leader_slowed":
            # More dead agents than half the Lease has room to delete.
            for i in range(8):
                aid = 1 + len(self.agents)
                s = {"id": aid, "name": "dead-s%d-%d" % (seed, aid), "pool": "aks-pool", "online": False,
                     "enabled": True, "busy": False, "managed": True, "changed_ago": old(rng, GRACE),
                     "pod_uid": "uid-gone-s%d-%d" % (seed, aid)}
                s["created_ago"] = s["changed_ago"] + 100
                self.agents.append((s, sim.agent(aid, s["name"], changed_ago=s["changed_ago"],
                                                 created_ago=s["created_ago"], pod_uid=s["pod_uid"])))
        # Agent lifecycle (#24): on in half the scenarios, with pods whose
        # agent is idle, busy, young or missing, and sometimes node-b cordoned.
        self.lifecycle = rng.random() < 0.5
        self.idle = IDLE if self.lifecycle else 0
        self.registration = REGISTRATION if self.lifecycle else 0
        self.draining = {"node-b"} if rng.random() < 0.3 else set()
        if self.lifecycle:
            self.add_lifecycle(rng, seed)
        self.rng = rng

    def add_lifecycle(self, rng, seed):
        """Running Job pods on node-a or node-b, each with an agent that is
        idle long or not, busy or not, or none at all."""
        for i in range(rng.randint(1, 4)):
            name = "s%d-l%d" % (seed, i)
            node = rng.choice(("node-a", "node-b"))
            started = rng.choice((young, old))(rng, REGISTRATION)
            s = {"name": name, "ns": "ci-agents", "node": node, "phase": "Running", "owner": "Job",
                 "owner_name": "job-" + name, "uid": "uid-" + name, "managed": True, "deleting": False,
                 "created_ago": started + 5, "finished_ago": None, "agent_finished_ago": None,
                 "unschedulable": False, "waiting": False, "backoff": False, "agent_started_ago": started}
            p = sim.pod(name, node=node, created_ago=s["created_ago"], owner="Job",
                        owner_name=s["owner_name"], uid=s["uid"])
            p["status"]["containerStatuses"] = [{"name": "agent", "ready": True, "started": True,
                                                 "restartCount": 0, "state": {"running": {
                                                     "startedAt": sim.now_rfc3339(time.time() - started)}}}]
            self.pods.append((s, p))
            if rng.random() < 0.25:
                continue        # never registered
            aid = 1 + len(self.agents)
            a = {"id": aid, "name": name, "pool": "aks-pool", "online": rng.random() < 0.8,
                 "enabled": rng.random() < 0.9, "busy": rng.random() < 0.35, "managed": True,
                 "changed_ago": rng.choice((young, old))(rng, IDLE), "pod_uid": s["uid"]}
            a["created_ago"] = a["changed_ago"] + 100
            self.agents.append((a, sim.agent(aid, name, status="online" if a["online"] else "offline",
                                             enabled=a["enabled"], busy=a["busy"],
                                             changed_ago=a["changed_ago"], created_ago=a["created_ago"],
                                             pod_uid=s["uid"])))

    def describe(self):
        return "seed %d: fault %s, dry-run %s, racing %s, cap %d, onlyManaged %s, lease %s, %d pods, %d agents" % (
            self.seed, self.fault, self.dry_run, self.racing, self.cap, self.only_managed, self.lease,
            len(self.pods), len(self.agents))


# ---- the model (DESIGN.md) --------------------------------------------------------

def pod_due(s):
    """Why DESIGN says this pod should go, or None."""
    if s["deleting"]:
        return None
    if s["phase"] in ("Succeeded", "Failed"):
        since = s["finished_ago"] if s["finished_ago"] is not None else s["created_ago"]
        return "finished" if since > TTL else None
    if s["phase"] == "Running":
        return "agent-finished" if s["agent_finished_ago"] is not None and s["agent_finished_ago"] > TTL else None
    if s["phase"] == "Pending":
        return "stuck" if s["created_ago"] > (STUCK if s["waiting"] else PENDING) else None
    return None


def pod_in_scope(s, node, leader):
    if not s["managed"]:
        return False
    if s["node"] == node:
        return True
    return leader and s["node"] is None and s["phase"] == "Pending"


def alive(s):
    """A pod that still works: its Job must not be deleted under it."""
    return s["phase"] in ("Pending", "Running") and not s["deleting"] and pod_due(s) is None


def pod_targets(sc, node, leader, busy_jobs=None):
    """What a janitor on `node` deletes: {("pod"|"job", ns, name)}.  A Job
    with a pod still at work (a retry, a parallel pod), or between retries,
    is kept whole; those Jobs go to busy_jobs (each takes a place under the
    cap before the janitor finds out)."""
    allowed = set()
    for s, _ in sc.pods:
        if not pod_in_scope(s, node, leader) or pod_due(s) is None:
            continue
        if s["owner"] in ("ReplicaSet", "StatefulSet") and s["phase"] == "Pending":
            continue
        if s["owner"] == "Job":
            siblings = [t for t, _ in sc.pods if t["owner"] == "Job" and t["ns"] == s["ns"] and
                        t["owner_name"] == s["owner_name"] and t["uid"] != s["uid"]]
            if any(alive(t) for t in siblings):
                if busy_jobs is not None:
                    busy_jobs.add(("job", s["ns"], s["owner_name"]))
                continue
            # An ended pod's Job goes once the Job finished (not between
            # retries), or when another of its pods is stuck.
            stuck = any(t["phase"] in ("Pending", "Running") and not t["deleting"] for t in siblings)
            if s["phase"] in ("Succeeded", "Failed") and s["backoff"] and not stuck:
                if busy_jobs is not None:
                    busy_jobs.add(("job", s["ns"], s["owner_name"]))
                continue
            allowed.add(("job", s["ns"], s["owner_name"]))
        else:
            allowed.add(("pod", s["ns"], s["name"]))
    return allowed


def agent_deletable(sc, s, listed=None):
    """DESIGN's rule, every condition.  listed: the (uid, name) of the pods
    the leader's list served (it lists after its node work, so a pod that
    work or a racing janitor removed, or one replaced, is not in it); None:
    the scenario's pods as they were."""
    if s["online"] or s["busy"] or not s["enabled"]:
        return False
    if sc.only_managed and not s["managed"]:
        return False
    if any(fnmatch.fnmatchcase(s["name"], g) for g in sc.keep):
        return False
    since = s["changed_ago"] if s["changed_ago"] is not None else s["created_ago"]
    if since <= GRACE:
        return False
    if listed is None:
        listed = {(p["uid"], p["name"]) for p, _ in sc.pods if p["managed"]}
    # The list always carries capabilities: by PIPEWARDEN_POD_UID where the
    # agent has one, else by name.
    if s["pod_uid"] is not None:
        return not any(uid == s["pod_uid"] for uid, _ in listed)
    return not any(name == s["name"] for _, name in listed)


def backing_pod(sc, s):
    """The managed pod an agent names (its pod uid, else its name), or None."""
    for p, _ in sc.pods:
        if p["managed"] and (p["uid"] == s["pod_uid"] if s["pod_uid"] else p["name"] == s["name"]):
            return p
    return None


def pod_retirable(p):
    return (p["phase"] == "Running" and p["node"] is not None and not p["deleting"] and
            p["owner"] in ("Job", None))


def agent_retirable(sc, s):
    """DESIGN's agent lifecycle for a registered agent: its pod may be
    retired (idle, or idle on a draining node), every condition."""
    if s["busy"] or not s["enabled"] or (sc.only_managed and not s["managed"]):
        return False
    if any(fnmatch.fnmatchcase(s["name"].lower(), g.lower()) for g in sc.keep):
        return False
    p = backing_pod(sc, s)
    # (every scenario pod is labelled pipewarden.io/pool: aks-pool)
    if p is None or not pod_retirable(p) or s["pool"] != "aks-pool":
        return False
    if p["node"] in sc.draining:
        return True
    since = s["changed_ago"] if s["changed_ago"] is not None else None
    return sc.idle > 0 and s["online"] and since is not None and since > sc.idle


# ---- one worker: its own simulators, many scenarios ---------------------------------

class Worker:
    def __init__(self, binary, tmp):
        self.bin = binary
        self.dir = tempfile.mkdtemp(dir=tmp)
        certdir = os.path.join(self.dir, "certs")
        lib.make_certs(certdir)
        self.ca = os.path.join(certdir, "ca.crt")
        self.kube = sim.KubeSim(certdir)
        self.ado = sim.AdoSim(certdir)
        self.real = {"delete_agent": self.ado.delete_agent, "list_agents": self.ado.list_agents,
                     "delete_pod": self.kube.delete_pod, "delete_job": self.kube.delete_job,
                     "lease": self.kube.lease, "list_pods": self.kube.list_pods}
        self.ado.delete_agent = self.delete_agent
        self.secrets = [self.kube.token, self.ado.pat, self.ado.bearer, self.ado.assertion]
        self.closed = "https://127.0.0.1:%d" % lib.free_port()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def delete_agent(self, pid, aid):
        """Record who held the Lease when an agent was deleted."""
        lease = self.kube.leases.get((NS, LEASE))
        holder, fresh, age, duration = None, False, None, 0
        if lease is not None:
            holder = lease["spec"].get("holderIdentity")
            renew = lease["spec"].get("renewTime", "")
            t = calendar.timegm(time.strptime(renew[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + renew[19:-1]) \
                if renew else 0
            duration = lease["spec"].get("leaseDurationSeconds", 0)
            age = time.time() - t
            fresh = age < duration
        self.lease_at_delete.append((aid, holder, fresh))
        self.renewal_age_at_delete.append((aid, age, duration))
        hook = self.hooks.get("delete_agent")
        if hook:
            hook(pid, aid)
        return self.real["delete_agent"](pid, aid)

    def reset(self, sc):
        k, a = self.kube, self.ado
        with k.lock:
            k.pods, k.jobs, k.leases, k.events, k.faults, k.job_backoff = [], {}, {}, [], {}, set()
            k.node_specs = {n: {"unschedulable": True} for n in sc.draining}
            k.patches = []
            k.listed = []
            k.server.clear()
        with a.lock:
            a.pools = {"aks-pool": 12, "linux-large": 13}
            a.agents = {12: [], 13: []}
            a.faults = {}
            a.max_api_version = "7.1"
            a.reregister_after_list = set()
            a.reregistered = set()
            a.proxy.target = a.server.port
            a.server.clear()
        k.delete_pod, k.delete_job = self.real["delete_pod"], self.real["delete_job"]
        k.lease, k.list_pods = self.real["lease"], self.real["list_pods"]
        a.list_agents = self.real["list_agents"]
        self.hooks = {}
        self.lease_at_delete = []
        self.renewal_age_at_delete = []
        for _, p in sc.pods:
            k.add_pod(p)
        k.job_backoff = {(s["ns"], s["owner_name"]) for s, _ in sc.pods if s["backoff"]}
        for s, ag in sc.agents:
            a.agents[POOLS[s["pool"]]].append(ag)
        if sc.lease == "other":
            k.leases[(NS, LEASE)] = lease_object("janitor-other", 5)
        elif sc.lease == "expired":
            k.leases[(NS, LEASE)] = lease_object("janitor-other", 500)
        elif sc.lease == "ours":
            k.leases[(NS, LEASE)] = lease_object("janitor-1", 5)
        elif sc.lease == "released":
            k.leases[(NS, LEASE)] = lease_object("", 500)

    def inject(self, sc):
        """Set the scenario's fault; return (kube url, org url, extra config)."""
        k, a, f, rng = self.kube, self.ado, sc.fault, sc.rng
        # Workload identity works with Azure DevOps Services only.
        kube_url, org = k.url, a.services_url if sc.wi else a.url
        if f == "kube_down":
            kube_url = self.closed
        elif f == "kube_401":
            self.write("kube-token", "wrong-token\n")
        elif f == "kube_5xx":
            k.faults["error_5xx"] = rng.randint(1, 4)
        elif f == "kube_429":
            k.faults["too_many"] = 1
        elif f == "ado_down":
            if sc.wi:
                a.proxy.target = int(self.closed.rsplit(":", 1)[1])
            else:
                org = self.closed + "/contoso"
        elif f == "ado_203":
            self.write("pat", "PWTESTPAT-expired-0000000000\n")
        elif f == "ado_malformed":
            a.faults["malformed"] = True
        elif f == "ado_5xx_recovered":
            a.faults["error_5xx"] = 1
        elif f == "ado_5xx":
            a.faults["error_5xx"] = 100
        elif f == "ado_429":
            a.faults["throttle"] = 1
        elif f == "entra_down":
            a.faults["entra_down"] = True
        elif f == "leader_slowed":
            a.faults["slow_delete"] = SLOW_DELETE
        elif f == "lease_conflict":
            real = self.real["lease"]

            def conflict(method, parts, body):
                # Another replica writes the Lease between our GET and our write.
                if method in ("PUT", "POST"):
                    k.leases[(NS, LEASE)] = lease_object("janitor-other", 0)
                    k.leases[(NS, LEASE)]["metadata"]["resourceVersion"] = k.next_rv()
                    k.lease = real
                return real(method, parts, body)
            k.lease = conflict
        elif f == "lease_stolen":
            real = self.real["list_agents"]

            def stolen(pid, q):
                lease = lease_object("janitor-thief", 0)
                lease["metadata"]["resourceVersion"] = k.next_rv()
                k.leases[(NS, LEASE)] = lease
                return real(pid, q)
            a.list_agents = stolen
        elif f == "agent_busy_race":
            def busy(pid, aid):
                for ag in a.agents[pid]:
                    if ag["id"] == aid:
                        ag["assignedRequest"] = {"requestId": 1, "planType": "Build"}
            self.hooks["delete_agent"] = busy
        elif f == "agent_reregistered":
            # Every offline agent registers again under its name (and id)
            # right after the list: a DELETE decided from it meets a live agent.
            a.reregister_after_list = {ag["name"] for p in a.agents.values() for ag in p
                                       if ag["status"] == "offline"}
        elif f == "agent_gone_race":
            def gone(pid, aid):
                a.agents[pid] = [ag for ag in a.agents[pid] if ag["id"] != aid]
            self.hooks["delete_agent"] = gone
        elif f == "pod_replaced":
            rp, rj = self.real["delete_pod"], self.real["delete_job"]

            def pod_replaced(ns, name, body):
                for p in k.pods:
                    if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == name:
                        p["metadata"]["uid"] += "-new"
                return rp(ns, name, body)

            def job_replaced(ns, name, body):
                if (ns, name) in k.jobs:
                    k.jobs[(ns, name)] += "-new"
                return rj(ns, name, body)
            k.delete_pod, k.delete_job = pod_replaced, job_replaced
        elif f == "job_pod_appears":
            # The Job controller starts a retry pod after the node's list:
            # a Job deleted now would take it along.  Appears on node-b.
            real = self.real["list_pods"]
            jobs = [s for s, _ in sc.pods if s["owner"] == "Job"]
            if jobs:
                j = rng.choice(jobs)
                retry = sim.pod(j["name"] + "-retry", ns=j["ns"], node="node-b", phase="Running",
                                created_ago=1, owner="Job", owner_name=j["owner_name"],
                                uid=j["uid"] + "-retry")
                state = {"n": 0}

                def appears(q, ns=None):
                    state["n"] += 1
                    if state["n"] == 1:
                        res = real(q, ns)
                        k.add_pod(retry)
                        sc.appeared = retry
                        sc.appeared_spec = {"name": retry["metadata"]["name"], "ns": j["ns"], "node": "node-b",
                                            "phase": "Running", "owner": "Job", "owner_name": j["owner_name"],
                                            "uid": j["uid"] + "-retry", "managed": True, "deleting": False,
                                            "created_ago": 1, "finished_ago": None,
                                            "agent_finished_ago": None, "unschedulable": False,
                                            "waiting": False,
                                            "backoff": j["backoff"]}
                        return res
                    return real(q, ns)
                k.list_pods = appears
        return kube_url, org

    def command(self, sc, identity, kube_url):
        cmd = [self.bin, "--once", "--config", self.config, "--node", NODES[identity],
               "--kube-api", kube_url, "--kube-token-file", self.token_file,
               "--kube-ca", self.ca, "--ado-ca", self.ca]
        return cmd + (["--dry-run"] if sc.dry_run else [])

    def environ(self, sc, identity):
        return sim.janitor_environ(self.ado, identity, NS, sc.wi, self.pat_file, self.assertion_file)

    def run(self, seed):
        sc = Scenario(seed)
        sc.appeared = None
        self.reset(sc)
        self.token_file = self.write("kube-token", self.kube.token + "\n")
        self.pat_file = self.write("pat", self.ado.pat + "\n")
        self.assertion_file = self.write("federated-token", self.ado.assertion)
        kube_url, org = self.inject(sc)
        cfg = json.load(open(lib.DEFAULT_CONFIG))
        cfg["organizationUrl"] = org
        cfg["pools"] = sc.pools + (["ghost-pool"] if sc.fault == "pool_missing" else [])
        cfg["janitor"].update({"idleAgentSeconds": sc.idle, "registrationTimeoutSeconds": sc.registration})
        cfg["janitor"].update({"intervalSeconds": 1 if sc.fault == "leader_slowed" else 10, "offlineGraceSeconds": GRACE,
                               "finishedPodTtlSeconds": TTL, "stuckPendingSeconds": STUCK,
                               "pendingTimeoutSeconds": PENDING,
                               "maxDeletionsPerCycle": sc.cap, "onlyManagedAgents": sc.only_managed,
                               "keepAgents": sc.keep, "leaseName": LEASE})
        self.config = self.write("config.json", json.dumps(cfg))
        ids = ["janitor-1", "janitor-2"] if sc.racing else ["janitor-1"]
        procs = [subprocess.Popen(self.command(sc, i, kube_url), env=self.environ(sc, i),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for i in ids]
        outs = []
        for p in procs:
            try:
                outs.append((p.communicate(timeout=120)[1], p.returncode))
            except subprocess.TimeoutExpired:
                p.kill()
                outs.append((p.communicate()[1], -1))
        return sc, ids, outs, check(self, sc, ids, outs)


def cycle_done(log):
    for line in log.splitlines():
        if '"cycle done"' in line:
            return json.loads(line)
    return None


def check(w, sc, ids, outs):
    """The invariants for one scenario: a list of (invariant, ok, detail)."""
    results = []

    def inv(name, ok, detail=""):
        results.append((name, bool(ok), detail))

    kreq = w.kube.server.requests()
    areq = w.ado.server.requests()
    writes = [(r[0], r[1]) for r in kreq if r[0] in ("POST", "PUT", "DELETE", "PATCH")] + \
             [(r[0], r[1]) for r in areq if r[0] in ("POST", "PUT", "DELETE", "PATCH") and "/oauth2/" not in r[1]]
    done = [cycle_done(log) for log, _ in outs]
    leaders = [i for i, d in zip(ids, done) if d and d.get("leader") == "true"]
    f = sc.fault

    inv("exits 0 or 1, with a cycle done line", all(rc in (0, 1) and d for (_, rc), d in zip(outs, done)),
        str([rc for _, rc in outs]))
    inv("no secret in any log line", not any(s in log for log, _ in outs for s in w.secrets))
    inv("no sanitizer report (ASan, UBSan, LeakSanitizer)",
        not any("Sanitizer" in log or "runtime error:" in log for log, _ in outs),
        " | ".join(log for log, _ in outs)[-800:])
    # Two racers may both lead, one after the other (--once releases the
    # Lease when it exits); what matters is who held it at each deletion.
    if sc.dry_run:
        inv("a dry run writes nothing", writes == [], str(writes[:4]))

    # Agents.
    by_key = {(POOLS[s["pool"]], s["id"]): s for s, _ in sc.agents}
    agent_deletes = []
    for r in areq:
        parts = r[1].split("/")
        if r[0] == "DELETE" and "agents" in parts:
            agent_deletes.append((int(parts[-3]), int(parts[-1])))
    # Racing, the other janitor may delete a pod before the leader lists
    # them: its agent is then no longer backed.
    # What a leader's list of managed pods served is what backs an agent.
    lists = [set(x) for x in w.kube.listed]
    listed = lists[-1] if lists else None
    bad = [k for k in agent_deletes if k not in by_key or not (
        agent_deletable(sc, by_key[k]) or any(agent_deletable(sc, by_key[k], x) for x in lists) or
        agent_retirable(sc, by_key[k]))]
    inv("never an online, busy, disabled, young, kept, unmanaged or backed agent", not bad,
        str([(k, by_key.get(k)) for k in bad[:2]]))
    inv("agents deleted only by the Lease holder", all(
        holder in ids and fresh for _, holder, fresh in w.lease_at_delete), str(w.lease_at_delete[:3]))
    inv("never more agent deletions than the cap", len(set(agent_deletes)) <= sc.cap * len(leaders),
        "%d > %d" % (len(set(agent_deletes)), sc.cap))
    inv("no agent is deleted twice", len(set(agent_deletes)) == len(agent_deletes), str(agent_deletes))
    ado_failure = f in ("ado_down", "ado_203", "ado_malformed", "ado_5xx", "entra_down")
    if ado_failure and leaders and not sc.racing:
        inv("an Azure DevOps failure: the leader deletes no agent", not agent_deletes,
            str(agent_deletes[:4]))
    if f == "lease_stolen":
        inv("a Lease taken mid-cycle: no agent is deleted", not agent_deletes, str(agent_deletes))
    if f == "agent_reregistered":
        # (an idle agent's pod may still be retired: no job runs there)
        inv("agents registered again under their ids after the list: none is deleted",
            not [k for k in agent_deletes if k not in by_key or not agent_retirable(sc, by_key[k])],
            str(agent_deletes))
    if f == "leader_slowed":
        # DESIGN "Leader safety": no leader-only deletion starts more than
        # half the Lease after the last successful renewal.
        late = [(aid, age, d) for aid, age, d in w.renewal_age_at_delete if age is None or age > d / 2]
        inv("a slowed leader: every agent delete starts within half the Lease of a renewal",
            not late, str(late[:3]))
        fit = math.ceil(HALF_LEASE / SLOW_DELETE)     # deletes that can start before the deadline
        if leaders:
            inv("a slowed leader: no agent delete starts past half the Lease (at most %d)" % fit,
                len(agent_deletes) <= fit, str(agent_deletes))
        if leaders and not sc.dry_run and not sc.racing:
            # More to delete than half the Lease allows: the rest waits, exit 1.
            want_a = {k for k, s in by_key.items() if agent_deletable(sc, s, listed)}
            if min(len(want_a), sc.cap) > fit:
                # (with two pools the first has half the time: its delete is
                # then cut by its share, logged as that pool's timeout)
                inv("a slowed leader: what did not fit in half the Lease is left for the next cycle, exit 1",
                    outs[0][1] == 1 and len(agent_deletes) < min(len(want_a), sc.cap), outs[0][0][-400:])
    # What the Kubernetes API answered: a failed pod list stops what it must.
    # (a 429 is retried and a 410 restarts the list: what counts is the last answer.)
    answered = w.kube.server.answered()
    all_lists = [a[3] for a in answered if a[0] == "GET" and a[1] == "/api/v1/pods" and "fieldSelector" not in a[2]
                 and "controller-uid" not in a[2].get("labelSelector", "")]
    node_lists = [a[3] for a in answered if a[0] == "GET" and a[1] == "/api/v1/pods" and "fieldSelector" in a[2]]
    failed_all = all_lists and all_lists[-1] != 200
    failed_node = node_lists and node_lists[-1] != 200
    if failed_all:
        inv("a failed list of managed pods: no agent is deleted", not agent_deletes, str(agent_deletes))
    if failed_node and not sc.racing:
        # (a Job with a pod that never reached a node is also the leader's)
        mine = {("pod", s["ns"], s["name"]) for s, _ in sc.pods if s["node"] == "node-a"} | \
               {("job", s["ns"], s["owner_name"]) for s, _ in sc.pods if s["node"] == "node-a" and s["owner"] == "Job"}
        mine -= pod_targets(sc, "(no node)", bool(leaders))
        inv("a failed list of this node's pods: none of them is deleted",
            not (pod_deletes_of(kreq) & mine), str(sorted(pod_deletes_of(kreq) & mine)))

    # The leader's writes on pods (#16): only annotations of a managed pod
    # whose agent runs a job, with the pod's uid as precondition (the pod as
    # listed: pod_replaced gives it a new uid), only by a leader, at most
    # maxPatchesPerCycle (200) each.
    ours = {"pipewarden.io/job-request-id", "pipewarden.io/pipeline", "pipewarden.io/run",
            "pipewarden.io/run-url", "pipewarden.io/interruption"}
    # #24: a pod is retired only when its agent runs no job, now or at its
    # DELETE (the 400 "running a job" keeps it), and only as the model says.
    # (the pods' own pool, aks-pool: a random world may have another pool's
    # agent name the same pod, which no real pod does)
    busy_now = {(a.get("systemCapabilities", {}).get("PIPEWARDEN_POD_UID") or a["name"])
                for a in w.ado.agents.get(POOLS["aks-pool"], []) if a.get("assignedRequest")}
    retired, bad_retired = [], []
    for r in kreq:
        if r[0] != "PATCH":
            continue
        ann = json.loads(r[4]).get("metadata", {}).get("annotations", {})
        if "pipewarden.io/retired" not in ann:
            continue
        name = r[1].strip("/").split("/")[5]
        spec = [s for s, _ in sc.pods if s["name"] == name][0]
        agents = [s for s, _ in sc.agents if backing_pod(sc, s) is spec]
        ok = pod_retirable(spec) and set(ann) == {"pipewarden.io/retired"} and not (
            spec["uid"] in busy_now or name in busy_now)
        if ann["pipewarden.io/retired"] == "never-registered":
            # (by the agents as they are now: one registered again for
            # another pod, agent_reregistered, no longer names this one)
            named = {(a.get("systemCapabilities", {}).get("PIPEWARDEN_POD_UID") or a["name"])
                     for a in w.ado.agents.get(POOLS["aks-pool"], [])}
            ok = ok and spec["uid"] not in named and spec["name"] not in named and \
                sc.registration > 0 and spec.get("agent_started_ago", 0) > sc.registration
        else:
            ok = ok and any(agent_retirable(sc, s) for s in agents)
        retired.append(name)
        if not ok:
            bad_retired.append((name, ann))
    inv("a pod is retired only as the lifecycle says, never while its agent holds a job",
        not bad_retired, str(bad_retired[:3]))
    if sc.dry_run or not leaders:
        inv("only a leader, not in a dry run, retires", not retired, str(retired))
    specs = {(s["ns"], s["name"]): s for s, _ in sc.pods}
    # (the list always carries capabilities: by pod uid where there is one;
    # with onlyManagedAgents an unmanaged agent is nobody's pod's)
    busy_keys = {s["pod_uid"] or s["name"] for s, _ in sc.agents
                 if s["busy"] and (s["managed"] or not sc.only_managed)}
    # (an agent that took a job during the run, agent_busy_race, runs one
    # for a racing janitor that lists it after)
    busy_keys |= busy_now
    patches, bad = [r for r in kreq if r[0] == "PATCH"], []
    for r in patches:
        parts = r[1].strip("/").split("/")
        meta = json.loads(r[4]).get("metadata", {})
        spec = specs.get((parts[3], parts[5]))
        if set(meta.get("annotations", {})) == {"pipewarden.io/retired"}:
            continue        # checked above
        if not (spec and spec["managed"] and (spec["uid"] in busy_keys or spec["name"] in busy_keys)
                and set(meta.get("annotations", {})) <= ours
                and meta.get("uid") in (spec["uid"], spec["uid"] + "-new")   # (pod_replaced)
                and set(meta) == {"uid", "annotations"}):
            bad.append((parts[5], sorted(meta.get("annotations", {}))))
    inv("pod writes: only pipewarden's annotations of a managed pod whose agent runs a job", not bad,
        str(bad[:2]))
    if patches:
        inv("pod writes: only by a leader, at most maxPatchesPerCycle", leaders and len(patches) <= 200 * len(leaders),
            "%d patches, leaders %s" % (len(patches), leaders))

    # Pods and Jobs.
    allowed = set()
    for i in ids:
        allowed |= pod_targets(sc, NODES[i], i in leaders)
    if sc.appeared is not None:
        # The retry pod is alive: its Job may not go any more, only its finished pods.
        sc.pods.append((sc.appeared_spec, sc.appeared))
        allowed = set()
        for i in ids:
            allowed |= pod_targets(sc, NODES[i], i in leaders)
    # A pod retired by a racing leader is its node's replica's to remove.
    for spec, _ in sc.pods:
        if spec["name"] in retired and spec["node"] in NODES.values():
            allowed.add(("job", spec["ns"], spec["owner_name"]) if spec["owner"] == "Job"
                        else ("pod", spec["ns"], spec["name"]))
    pod_deletes = pod_deletes_of(kreq)
    bad = sorted(pod_deletes - allowed)
    inv("never a pod or Job out of scope, young, terminating, another controller's Pending pod, "
        "or a Job with a live pod", not bad, str(bad[:3]))
    inv("never more pod deletions than the cap (per janitor)", len(pod_deletes) <= sc.cap * len(ids),
        "%d > %d" % (len(pod_deletes), sc.cap))

    # Where nothing hides the outcome: exactly the model's deletions.  An
    # Azure DevOps failure hides no pod deletion, and a missing pool none of
    # the other pools' agents (DESIGN "What a failure holds back").
    healthy = f in ("none", "agent_gone_race", "pod_replaced", "ado_5xx_recovered", "ado_429",
                    "kube_429", "agent_busy_race")
    clean = (healthy or ado_failure or f == "pool_missing") and not sc.racing and not sc.dry_run
    if clean:
        expect_leader = sc.lease != "other"
        if healthy or not expect_leader:
            inv("a healthy cycle exits 0", outs[0][1] == 0, outs[0][0][-400:])
        else:
            inv("a failed pool or Azure DevOps outage: exit 1", outs[0][1] == 1, outs[0][0][-400:])
        inv("the leader is who the Lease says", bool(leaders) == expect_leader, "%s %s" % (leaders, sc.lease))
        busy = set()
        want = pod_targets(sc, "node-a", expect_leader, busy)
        got = pod_deletes
        if len(want) + len(busy) <= sc.cap:
            ok = got == want
        else:   # the cap cut the plan; busy Jobs may have taken places in it
            ok = got <= want and sc.cap - len(busy) <= len(got) <= sc.cap
        inv("deletes every pod the model says (up to the cap)", ok,
            "want %s got %s busy %s" % (sorted(want), sorted(got), sorted(busy)))
        if expect_leader and not ado_failure:
            want_a = {k for k, s in by_key.items() if agent_deletable(sc, s, listed)}
            retire_a = {k for k, s in by_key.items() if agent_retirable(sc, s)}
            got_a = set(agent_deletes)
            # (retirements come after the offline deletions, in the same cap)
            if len(want_a) + len(retire_a) <= sc.cap:
                ok = got_a - retire_a == want_a
            elif retire_a:  # (one pool's retirements may take another's places in the cap)
                ok = got_a - retire_a <= want_a and len(got_a) <= sc.cap
            else:
                ok = len(got_a) == sc.cap and got_a <= want_a
            inv("deletes every agent the model says (up to the cap)", ok,
                "want %s (+ retirable %s) got %s" % (sorted(want_a), sorted(retire_a), sorted(got_a)))
        elif not expect_leader:
            inv("not the leader: no Azure DevOps call", not [r for r in areq if "/oauth2/" not in r[1]])
    return results


def pod_deletes_of(kreq):
    out = set()
    for r in kreq:
        parts = r[1].strip("/").split("/")
        if r[0] == "DELETE" and parts[:2] == ["api", "v1"]:
            out.add(("pod", parts[3], parts[5]))
        elif r[0] == "DELETE" and parts[:3] == ["apis", "batch", "v1"]:
            out.add(("job", parts[4], parts[6]))
    return out


def work(args):
    binary, tmp, seeds = args
    w = Worker(binary, tmp)
    tally, failures, faults = {}, [], {}
    t0 = time.time()
    for seed in seeds:
        t1 = time.time()
        sc, ids, outs, results = w.run(seed)
        fa = faults.setdefault(sc.fault, [0, 0.0])
        fa[0] += 1
        fa[1] += time.time() - t1
        for name, ok, detail in results:
            t = tally.setdefault(name, [0, 0])
            t[0 if ok else 1] += 1
            if not ok and len(failures) < 20:
                failures.append("%s\n    %s: %s\n    log: %s" % (sc.describe(), name, detail,
                                                                 " | ".join(outs[0][0].splitlines()[-3:])[:600]))
    w.kube.stop()
    w.ado.stop()
    return tally, failures, faults, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1, help="the first seed")
    ap.add_argument("--workers", type=int, default=max(4, 4 * (os.cpu_count() or 1)))
    ap.add_argument("--results")
    ap.add_argument("--suite", default="janitor randomized scenarios")
    ap.add_argument("--fault", choices=[f for f, _ in FAULTS], help="give every scenario this fault")
    args = ap.parse_args()
    global FORCED_FAULT
    FORCED_FAULT = args.fault
    res = lib.Results(args.suite, args.results)
    seeds = list(range(args.seed, args.seed + args.count))
    n = min(args.workers, len(seeds))
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            parts = pool.map(work, [(args.bin, tmp, seeds[i::n]) for i in range(n)])
    tally, failures, faults = {}, [], {}
    for t, fl, fa, _ in parts:
        for k, v in t.items():
            tt = tally.setdefault(k, [0, 0])
            tt[0] += v[0]
            tt[1] += v[1]
        failures += fl
        for k, v in fa.items():
            ff = faults.setdefault(k, [0, 0.0])
            ff[0] += v[0]
            ff[1] += v[1]
    print("%d scenarios (seeds %d..%d) in %.0f s with %d workers; by fault: scenarios, mean seconds:" % (
        len(seeds), seeds[0], seeds[-1], time.time() - t0, n))
    print("  " + ", ".join("%s %d %.2f" % (k, v[0], v[1] / v[0]) for k, v in sorted(faults.items())))
    for f in failures[:10]:
        print("FAIL " + f)
    for name in sorted(tally):
        ok, bad = tally[name]
        print("  %6d / %6d  %s" % (ok, ok + bad, name))
        res.check(bad == 0, "%s (held in %d of %d scenarios where it applies)" % (name, ok, ok + bad))
    ran = sum(v[0] for v in faults.values())
    res.check(ran == len(seeds), "every scenario ran", str(ran))
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
