#!/usr/bin/python3
"""An agent that behaves like the Azure Pipelines agent, for the real-node suite.

Runs in tests/node's agent image (Debian's python3, nothing else) as the
docs' start.sh runs Microsoft's agent:

  - reads AZP_URL, AZP_POOL, AZP_AGENT_NAME (else the hostname) and
    AZP_TOKEN_FILE (a PAT: Basic auth with an empty user), or workload
    identity: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_AUTHORITY_HOST and
    AZURE_FEDERATED_TOKEN_FILE, exchanged at Entra for a bearer token;
  - registers with --replace semantics: an agent of that name keeps its id
    (PUT agents/{id}); else a new one (POST agents), reporting its
    environment as system capabilities, minus the names in VSO_AGENT_IGNORE
    and minus AZP_TOKEN and AZP_TOKEN_FILE (as start.sh sets it);
  - goes online (a session), takes one job (--once), runs what the job says
    (pipewarden.test/run: succeed:SECONDS, fail:SECONDS, oom: allocate until
    the kernel kills it, hang), reports its result, goes offline, exits 0;
  - with AZP_PLACEHOLDER=1 registers and exits (the placeholder agent
    KEDA's docs ask for: it stays offline in the pool);
  - on SIGTERM does what start.sh's `trap "cleanup; exit 143" TERM` does:
    the signal reaches the script (the container's first process), not the
    listener, so the job goes on running while the cleanup tries `config
    remove` (DELETE its registration), refused while the agent holds a job,
    again every 30 s; once it succeeds it exits 143.  The kubelet's SIGKILL
    at the end of the grace period ends whatever is left.  (start.sh's EXIT
    trap also removes the agent after a normal end; this agent does not, as
    many agent images do not: the janitor's dead-agent cleanup is what is
    under test.)

Its protocol with the Azure DevOps simulator is the simulator's simplified
one for what is private in Microsoft's (see AdoSim.agent_protocol).
"""
import base64
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

API = "api-version=7.1"
STATE = {"agent": None, "pool": None}


def log(msg, **kv):
    sys.stderr.write(json.dumps(dict(msg=msg, **kv)) + "\n")
    sys.stderr.flush()


def auth_header():
    if os.environ.get("AZP_TOKEN_FILE"):
        with open(os.environ["AZP_TOKEN_FILE"]) as f:
            pat = f.read().strip()
        return "Basic " + base64.b64encode((":" + pat).encode()).decode()
    with open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]) as f:
        assertion = f.read().strip()
    form = urllib.parse.urlencode({
        "grant_type": "client_credentials", "client_id": os.environ["AZURE_CLIENT_ID"],
        "scope": "499b84ac-1321-427f-aa17-267ca6975798/.default",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}).encode()
    url = os.environ["AZURE_AUTHORITY_HOST"].rstrip("/") + "/%s/oauth2/v2.0/token" % os.environ["AZURE_TENANT_ID"]
    with urllib.request.urlopen(url, data=form, timeout=30, context=ssl.create_default_context()) as r:
        return "Bearer " + json.load(r)["access_token"]


def call(method, path, body=None, ok=(200, 201, 204)):
    base = os.environ["AZP_URL"].rstrip("/") + "/_apis/distributedtask/pools"
    url = base + path + ("&" if "?" in path else "?") + API
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": auth_header(), "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60, context=ssl.create_default_context()) as r:
            text = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read()
    if status not in ok:
        raise RuntimeError("%s %s: HTTP %d %s" % (method, path, status, text[:300]))
    return status, (json.loads(text) if text else None)


def capabilities():
    ignore = {"AZP_TOKEN", "AZP_TOKEN_FILE"} | set(filter(None, os.environ.get("VSO_AGENT_IGNORE", "").split(",")))
    caps = {k: v for k, v in os.environ.items() if k not in ignore and len(v) < 1024}
    caps.update({"Agent.Name": STATE["name"], "Agent.OS": "Linux", "Agent.Version": "4.255.0"})
    return caps


def register():
    _, pools = call("GET", "?poolName=" + urllib.parse.quote(os.environ["AZP_POOL"]))
    if pools["count"] != 1:
        raise RuntimeError("pool %s not found" % os.environ["AZP_POOL"])
    STATE["pool"] = pid = pools["value"][0]["id"]
    _, found = call("GET", "/%d/agents?agentName=%s" % (pid, urllib.parse.quote(STATE["name"])))
    body = {"name": STATE["name"], "version": "4.255.0", "maxParallelism": 1, "systemCapabilities": capabilities()}
    if found["count"]:
        _, a = call("PUT", "/%d/agents/%d" % (pid, found["value"][0]["id"]), body)
    else:
        _, a = call("POST", "/%d/agents" % pid, body)
    STATE["agent"] = a["id"]
    log("registered", agent=a["id"], replaced=bool(found["count"]))


def run(what):
    kind, _, arg = (what or "succeed:1").partition(":")
    if kind == "oom":
        hog = []
        while True:                      # until the kernel kills the container
            hog.append(bytearray(16 << 20))
            for i in range(0, len(hog[-1]), 4096):
                hog[-1][i] = 1
    if kind == "hang":
        while True:
            time.sleep(3600)
    time.sleep(float(arg or 1))
    return "succeeded" if kind == "succeed" else "failed"


def cleanup():
    """start.sh's cleanup: `config remove` until it succeeds, every 30 s."""
    while STATE["agent"] is not None:
        try:
            call("DELETE", "/%d/agents/%d" % (STATE["pool"], STATE["agent"]), ok=(200, 204, 404))
            log("config remove", agent=STATE["agent"])
            return
        except Exception as e:  # noqa: BLE001 - refused while a job runs: retry, as start.sh does
            log("config remove failed; retrying in 30 seconds", error=str(e))
        time.sleep(30)


def main():
    """start.sh: the listener (`run.sh --once`) in the background, waited for;
    SIGTERM runs the cleanup while the listener goes on."""
    term = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: term.set())
    done = {}

    def run_listener():
        try:
            done["rc"] = listener()
        except Exception as e:  # noqa: BLE001 - the listener's failure is the container's exit code
            log("agent failed", error=str(e))
            done["rc"] = 1
    t = threading.Thread(target=run_listener, daemon=True)
    t.start()
    while t.is_alive() and not term.is_set():
        term.wait(0.2)
    if term.is_set():
        cleanup()
        return 143
    return done.get("rc", 1)


def listener():
    STATE["name"] = os.environ.get("AZP_AGENT_NAME") or socket.gethostname()
    register()
    if os.environ.get("AZP_PLACEHOLDER") == "1":
        # The Container Apps sample's placeholder: registered, never online.
        log("placeholder registered; not running")
        return 0
    pid = STATE["pool"]
    _, session = call("POST", "/%d/sessions" % pid, {"agent": {"id": STATE["agent"]}, "ownerName": STATE["name"]})
    sid = session["sessionId"]
    log("online", session=sid)
    while True:
        status, msg = call("GET", "/%d/messages?sessionId=%s" % (pid, sid))
        if status == 200 and msg:
            break
    job = json.loads(msg["body"])
    rid = job["requestId"]
    call("PATCH", "/%d/jobrequests/%d" % (pid, rid), {"requestId": rid, "receiveTime": True})
    log("running job", request=rid, run=job["variables"].get("pipewarden.test/run"))
    # While the job runs, the agent renews its lock on the request (the
    # server's sign of life, as Agent.Listener's JobDispatcher does).
    def renew():
        while True:
            time.sleep(1)
            try:
                call("PATCH", "/%d/jobrequests/%d" % (pid, rid), {"requestId": rid, "renew": True})
            except Exception:  # noqa: BLE001 - the next renewal tries again
                pass
    threading.Thread(target=renew, daemon=True).start()
    result = run(job["variables"].get("pipewarden.test/run"))
    call("PATCH", "/%d/jobrequests/%d" % (pid, rid), {"requestId": rid, "result": result})
    log("job finished", request=rid, result=result)
    call("DELETE", "/%d/sessions/%s" % (pid, sid))
    log("offline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
