"""Simulators of the Kubernetes API, Azure DevOps and Entra's token endpoint.

Real HTTPS servers on 127.0.0.1, run in threads of the test process so a
test sets state and faults directly and reads what was asked.  They behave
as ../shared/fixtures/*/README.md documents, never friendlier:

Kubernetes: bearer-token auth (401 Status), pods filtered by label and
field selector, limit/continue paging with real-shaped continue tokens and
410 Expired, resourceVersion=0 served whole from "cache", DELETE with
DeleteOptions UID preconditions (409 on mismatch, 404 when gone; a bound
pod at work stays Terminating, as no kubelet confirms it), Jobs read with
the conditions their controller sets, and deleted with their pods, Events, Leases with resourceVersion conflicts
(409) and AlreadyExists, 429 as plain text with Retry-After.

Azure DevOps: PAT (Basic) or Entra bearer auth, a bad credential answered
with 203 and the HTML sign-in page; pools by name; the agents list whole
(not paged) with include flags applied as the real API does (no
assignedRequest or capabilities unless asked; `demands` ignores them);
members that are null are omitted; DELETE 204 / 404 / 400
TaskAgentJobStillRunningException; 429 with Retry-After, 200 with
Retry-After (slow down), 5xx, hangs, malformed JSON.

Entra: the client-credentials token request with a federated assertion.
"""
import base64
import copy
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIGNIN_HTML = ("<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title>"
               "</head><body>Sign in to your account</body></html>")


def parse_rfc3339(s):
    """Unix seconds (with fractions) of an RFC 3339 UTC time."""
    whole = time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    frac = s[19:].rstrip("Z")
    return whole + (float(frac) if frac.startswith(".") else 0)


def now_rfc3339(t=None, frac=False):
    t = time.time() if t is None else t
    s = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    return s + (".%06dZ" % int((t % 1) * 1e6) if frac else "Z")


def status_body(code, reason, message, details=None):
    b = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
         "message": message, "reason": reason, "code": code}
    if details:
        b["details"] = details
    return b


class Server:
    """A threaded HTTPS server calling handler(method, path, query, headers, body)."""

    def __init__(self, certdir, handler):
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as Go and Kestrel servers do

            def log_message(self, *a):
                pass

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                u = urllib.parse.urlsplit(self.path)
                q = urllib.parse.parse_qs(u.query, keep_blank_values=True)
                q = {k: v[0] for k, v in q.items()}
                with outer.lock:
                    outer.log.append((self.command, u.path, q, dict(self.headers), body))
                res = handler(self.command, u.path, q, self.headers, body)
                with outer.lock:
                    outer.statuses.append((self.command, u.path, q, res[0] if res else None))
                if res is None:       # close without an answer
                    self.close_connection = True
                    return
                status, headers, payload = res
                if isinstance(payload, (dict, list)):
                    payload = json.dumps(payload).encode()
                    headers.setdefault("Content-Type", "application/json; charset=utf-8")
                elif isinstance(payload, str):
                    payload = payload.encode()
                payload = payload or b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _do

        self.lock = threading.Lock()
        self.log = []
        self.statuses = []        # (method, path, query, status or None), once answered
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        # A client that gives up (timeout tests) is expected: no traceback.
        self.httpd.handle_error = lambda request, address: None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certdir, "tls.crt"), os.path.join(certdir, "tls.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def requests(self, method=None, prefix=""):
        with self.lock:
            return [r for r in self.log if (method is None or r[0] == method) and r[1].startswith(prefix)]

    def answered(self):
        with self.lock:
            return list(self.statuses)

    def clear(self):
        with self.lock:
            self.log.clear()
            self.statuses.clear()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class ServicesProxy:
    """An HTTPS proxy on 127.0.0.1 (CONNECT, as a corporate proxy is) that
    takes every tunnel to `target` on 127.0.0.1, whatever host was asked.
    A janitor with HTTPS_PROXY set to it reaches the Azure DevOps simulator
    by Azure DevOps Services' own name (https://dev.azure.com/ORG), which
    workload identity needs; nothing leaves this machine."""

    def __init__(self, target):
        self.target = target
        self.tunnels = []         # the host:port each CONNECT asked for
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.stopping = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.tunnel, args=(c,), daemon=True).start()

    def tunnel(self, c):
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                chunk = c.recv(4096)
                if not chunk:
                    c.close()
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(line) < 2 or line[0] != "CONNECT":
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                c.close()
                return
            self.tunnels.append(line[1])
            try:
                up = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                c.close()
                return
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        except OSError:
            c.close()
            return
        up.settimeout(None)
        lib.relay(c, up)

    def stop(self):
        self.stopping = True
        self.sock.close()


# ---- Kubernetes ---------------------------------------------------------------

class KubeSim:
    def __init__(self, certdir, token="kube-test-token-Zq8"):
        self.token = token
        self.pods = []            # full Pod objects
        self.jobs = {}            # (ns, name) -> uid
        # Jobs that never got a pod (a quota, a denial): (ns, name) -> their
        # JobList item; the Job controller's FailedCreate Events go to events.
        self.podless_jobs = {}
        self.job_backoff = set()  # (ns, name) of Jobs between retries (not finished)
        self.listed = []          # per cluster-wide list: the (uid, name) it served
        self.leases = {}          # (ns, name) -> Lease object
        self.events = []
        self.nodes = set()        # the Node objects that exist (a pod's node is added with it)
        self.node_specs = {}      # name -> Node spec (unschedulable, taints), when not plain
        self.patches = []           # (ns, name, annotations) of each PATCH applied
        self.rv = 7340000
        self.faults = {}          # see handle()
        self.refuse = set()       # names of pods (and Jobs) whose writes the policy refuses
        self.lock = threading.RLock()
        self.server = Server(certdir, self.handle)
        self.url = self.server.url

    def refused(self, kind, ns, name, verb):
        """What kube-apiserver answers when the shipped ValidatingAdmissionPolicy
        (reason: Forbidden) refuses a write: 403 with the policy's message."""
        return 403, {}, status_body(
            403, "Forbidden", '%s "%s" is forbidden: ValidatingAdmissionPolicy '
            "'pipewarden-janitor-scope' with binding 'pipewarden-janitor-scope' denied request: "
            "the janitor may %s only managed pods in namespaces labelled "
            "pipewarden.io/injection=enabled" % (kind, name, verb), {"name": name, "kind": kind})

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def add_pod(self, pod):
        with self.lock:
            pod.setdefault("metadata", {})["resourceVersion"] = self.next_rv()
            self.pods.append(pod)
            if pod.get("spec", {}).get("nodeName"):
                self.nodes.add(pod["spec"]["nodeName"])
            for o in pod["metadata"].get("ownerReferences", []):
                if o.get("kind") == "Job":
                    self.jobs[(pod["metadata"]["namespace"], o["name"])] = o["uid"]

    def pod(self, name):
        for p in self.pods:
            if p["metadata"]["name"] == name:
                return p
        return None

    def handle(self, method, path, q, headers, body):
        f = self.faults
        if f.get("hang"):
            time.sleep(f["hang"])
        if f.get("too_many", 0) > 0:
            f["too_many"] -= 1
            return 429, {"Retry-After": "1", "Content-Type": "text/plain; charset=utf-8"}, \
                "Too many requests, please try again later.\n"
        if f.get("error_5xx", 0) > 0:
            f["error_5xx"] -= 1
            return 503, {}, status_body(503, "ServiceUnavailable", "etcd is unavailable")
        if headers.get("Authorization") != "Bearer " + self.token:
            return 401, {}, status_body(401, "Unauthorized", "Unauthorized")
        with self.lock:
            parts = path.strip("/").split("/")
            if path == "/api/v1/pods" and method == "GET":
                return self.list_pods(q)
            if len(parts) == 5 and parts[:3] == ["api", "v1", "namespaces"] and parts[4] == "pods" \
                    and method == "GET":
                return self.list_pods(q, ns=parts[3])
            if len(parts) == 4 and parts[:3] == ["api", "v1", "nodes"] and method == "GET":
                return self.get_node(parts[3])
            if path == "/api/v1/nodes" and method == "GET":
                return 200, {}, {"kind": "NodeList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": str(self.rv)},
                                 "items": [self.node_object(n) for n in sorted(self.nodes)]}
            if path.startswith("/apis/batch/v1/namespaces/") and len(parts) == 7 and \
                    parts[5] == "jobs" and method == "GET":
                return self.get_job(parts[4], parts[6])
            if path.startswith("/api/v1/namespaces/") and len(parts) == 6 and parts[4] == "pods" \
                    and method == "DELETE":
                if parts[5] in self.refuse:
                    return self.refused("pods", parts[3], parts[5], "delete")
                return self.delete_pod(parts[3], parts[5], body)
            if path.startswith("/apis/batch/v1/namespaces/") and len(parts) == 7 and \
                    parts[5] == "jobs" and method == "DELETE":
                if parts[6] in self.refuse:
                    return self.refused("jobs.batch", parts[4], parts[6], "delete")
                return self.delete_job(parts[4], parts[6], body)
            if path.startswith("/api/v1/namespaces/") and len(parts) == 6 and parts[4] == "pods" \
                    and method == "PATCH":
                if parts[5] in self.refuse:
                    return self.refused("pods", parts[3], parts[5], "patch")
                return self.patch_pod(parts[3], parts[5], headers.get("Content-Type", ""), body)
            if path == "/apis/batch/v1/jobs" and method == "GET":
                return self.list_jobs(q)
            if path.startswith("/api/v1/namespaces/") and path.endswith("/events") and method == "GET":
                return self.list_events(parts[3], q)
            if path.startswith("/api/v1/namespaces/") and path.endswith("/events") and method == "POST":
                ev = json.loads(body)
                ev["metadata"]["name"] = ev["metadata"].get("generateName", "e") + "x%d" % len(self.events)
                self.events.append(ev)
                return 201, {}, ev
            if path.startswith("/apis/coordination.k8s.io/v1/namespaces/"):
                return self.lease(method, parts, body)
        return 404, {}, status_body(404, "NotFound", "the server could not find the requested resource")

    def list_pods(self, q, ns=None):
        f = self.faults
        items = [p for p in self.pods if self.matches(p, q) and ns in (None, p["metadata"]["namespace"])]
        if ns is None and not q.get("fieldSelector"):
            if not q.get("continue") or not self.listed:
                self.listed.append(set())
            self.listed[-1] |= {(p["metadata"]["uid"], p["metadata"]["name"]) for p in items}
        items.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
        meta = {"resourceVersion": str(self.rv)}
        if q.get("resourceVersion") == "0":
            # Served from the watch cache: limit is ignored, one answer.
            return 200, {}, {"kind": "PodList", "apiVersion": "v1", "metadata": meta,
                             "items": [self.strip(p) for p in items]}
        limit = int(q.get("limit") or 0) or len(items) or 1
        start = 0
        page = 1
        if q.get("continue"):
            tok = json.loads(base64.urlsafe_b64decode(q["continue"] + "=="))
            if f.get("expire_continue", 0) > 0:
                f["expire_continue"] -= 1
                return 410, {}, status_body(
                    410, "Expired", "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without the continue "
                    "parameter, or use the continue token in this response to retrieve the "
                    "remainder of the results. Continuing with the provided token results in "
                    "an inconsistent list - objects that were created, modified, or deleted "
                    "between the time the first chunk was returned and now may show up in the list.")
            start = tok["i"]
            page = tok["p"]
        if f.get("fail_page") == page:
            return 500, {}, status_body(500, "InternalError", "Internal error occurred: etcdserver: request timed out")
        chunk = items[start:start + limit]
        if start + limit < len(items):
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                {"v": "meta.k8s.io/v1", "rv": self.rv, "i": start + limit, "p": page + 1}).encode()
            ).decode().rstrip("=")
        return 200, {}, {"kind": "PodList", "apiVersion": "v1", "metadata": meta,
                         "items": [self.strip(p) for p in chunk]}

    @staticmethod
    def strip(p):
        p = copy.deepcopy(p)
        p.pop("kind", None)
        p.pop("apiVersion", None)
        return p

    @staticmethod
    def matches(p, q):
        labels = p["metadata"].get("labels", {})
        for sel in filter(None, (q.get("labelSelector") or "").split(",")):
            k, v = sel.split("=", 1)
            if labels.get(k) != v:
                return False
        for sel in filter(None, (q.get("fieldSelector") or "").split(",")):
            k, v = sel.split("=", 1)
            if k == "spec.nodeName" and p["spec"].get("nodeName", "") != v:
                return False
        return True

    def check_precondition(self, body, uid, kind, name):
        pre = (json.loads(body or b"{}").get("preconditions") or {}).get("uid")
        if pre is not None and pre != uid:
            return 409, {}, status_body(
                409, "Conflict", "Operation cannot be fulfilled on %s \"%s\": the UID in the "
                "precondition (%s) does not match the UID in record (%s). The object might "
                "have been deleted and then recreated" % (kind, name, pre, uid),
                {"name": name, "kind": kind})
        return None

    def remove_pod(self, p):
        """What a delete does to a pod (fixture 3.x, seen on kube-apiserver
        1.37): one that never reached a node, or has ended, goes at once; a
        bound pod still at work stays, Terminating, until its kubelet has
        stopped it (deletionTimestamp now + the 30 s grace period)."""
        m = p["metadata"]
        if m.get("deletionTimestamp"):
            return
        if p["spec"].get("nodeName") and p["status"].get("phase") not in ("Succeeded", "Failed"):
            m["deletionTimestamp"] = now_rfc3339(time.time() + 30)
            m["deletionGracePeriodSeconds"] = 30
            m["resourceVersion"] = self.next_rv()
            return
        self.pods.remove(p)
        m["deletionTimestamp"] = now_rfc3339()
        m["deletionGracePeriodSeconds"] = 0

    def delete_pod(self, ns, name, body):
        for p in self.pods:
            if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == name:
                bad = self.check_precondition(body, p["metadata"]["uid"], "Pod", name)
                if bad:
                    return bad
                self.remove_pod(p)
                return 200, {}, p
        return 404, {}, status_body(404, "NotFound", 'pods "%s" not found' % name,
                                    {"name": name, "kind": "pods"})

    def patch_pod(self, ns, name, ctype, body):
        """A JSON merge patch of a pod's metadata, as kube-apiserver applies
        it: a uid in the patch that is not the pod's is a failed
        precondition (409); null removes a key."""
        if ctype != "application/merge-patch+json":
            return 415, {}, status_body(415, "UnsupportedMediaType",
                                        "the body of the request was in an unknown format")
        patch = json.loads(body)
        for p in self.pods:
            if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == name:
                uid = patch.get("metadata", {}).get("uid")
                if uid is not None and uid != p["metadata"]["uid"]:
                    return 409, {}, status_body(409, "Conflict", "Precondition failed: UID in precondition: "
                                                "%s, UID in object meta: %s" % (uid, p["metadata"]["uid"]))
                ann = p["metadata"].setdefault("annotations", {})
                for k, v in patch.get("metadata", {}).get("annotations", {}).items():
                    if v is None:
                        ann.pop(k, None)
                    else:
                        ann[k] = v
                self.patches.append((ns, name, dict(patch["metadata"].get("annotations", {}))))
                return 200, {}, p
        return 404, {}, status_body(404, "NotFound", 'pods "%s" not found' % name,
                                    {"name": name, "kind": "pods"})

    def node_object(self, name):
        """A Node as kube-apiserver serves it (what a reader needs): `kubectl
        cordon` sets spec.unschedulable; a cluster autoscaler or Karpenter
        about to remove it adds a taint (node_specs)."""
        return {"kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "uid": "node-uid-" + name, "resourceVersion": str(self.rv),
                             "labels": {"kubernetes.io/hostname": name}},
                "spec": copy.deepcopy(self.node_specs.get(name, {})),
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}}

    def get_node(self, name):
        """A Node, or its 404."""
        if name not in self.nodes:
            return 404, {}, status_body(404, "NotFound", 'nodes "%s" not found' % name,
                                        {"name": name, "kind": "nodes"})
        return 200, {}, self.node_object(name)

    def add_podless_job(self, ns, name, created_ago, opted_in=True, failed_create=None):
        """A Job whose controller could not create its pod: no pod, no
        status counts; failed_create, the message of its FailedCreate Event
        (what the Job controller records: type Warning, reason FailedCreate,
        "Error creating: ..."), when it tried."""
        now = time.time()
        uid = "job-uid-" + name
        ann = {"pipewarden.io/inject": "true"} if opted_in else {}
        self.podless_jobs[(ns, name)] = {
            "metadata": {"name": name, "namespace": ns, "uid": uid,
                         "creationTimestamp": now_rfc3339(now - created_ago),
                         "labels": {"scaledjob.keda.sh/name": name.rsplit("-", 1)[0]}},
            "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1,
                     "template": {"metadata": {"annotations": ann, "labels": {}},
                                  "spec": {"containers": [{"name": "agent", "image": "azp-agent"}]}}},
            "status": {"startTime": now_rfc3339(now - created_ago)}}
        if failed_create:
            t = now_rfc3339(now - created_ago + 1)
            self.events.append({"metadata": {"name": name + ".18a1f0c2d3e4f5a6", "namespace": ns,
                                             "creationTimestamp": t},
                                "involvedObject": {"kind": "Job", "namespace": ns, "name": name, "uid": uid,
                                                   "apiVersion": "batch/v1"},
                                "reason": "FailedCreate", "message": failed_create, "type": "Warning",
                                "source": {"component": "job-controller"}, "count": 7,
                                "firstTimestamp": t, "lastTimestamp": now_rfc3339(now - 5)})
        return uid

    def list_jobs(self, q):
        """Every Job, as GET /apis/batch/v1/jobs pages them (limit and
        continue); the only field selector kube-apiserver takes here is
        status.successful (and metadata.name/namespace)."""
        if self.faults.get("jobs_forbidden"):
            return 403, {}, status_body(403, "Forbidden", 'jobs.batch is forbidden: User '
                                        '"system:serviceaccount:pipewarden-system:pipewarden-janitor" cannot '
                                        'list resource "jobs" in API group "batch" at the cluster scope',
                                        {"group": "batch", "kind": "jobs"})
        items = []
        for (ns, name) in sorted(self.jobs):
            job = self.get_job(ns, name)[2]
            uid = self.jobs[(ns, name)]
            pods = [p for p in self.pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))]
            ph = [p["status"].get("phase") for p in pods]
            job["metadata"]["creationTimestamp"] = min((p["metadata"]["creationTimestamp"] for p in pods),
                                                       default=now_rfc3339())
            job["spec"]["template"] = {"metadata": {"annotations": {"pipewarden.io/inject": "true"}}}
            for key, n in (("active", sum(x not in ("Succeeded", "Failed") for x in ph)),
                           ("succeeded", ph.count("Succeeded")), ("failed", ph.count("Failed"))):
                if n:
                    job["status"][key] = n
            items.append(job)
        items += [copy.deepcopy(j) for _, j in sorted(self.podless_jobs.items())]
        sel = q.get("fieldSelector", "")
        if sel not in ("", "status.successful=0"):
            return 400, {}, status_body(400, "BadRequest", 'field label not supported: "%s"' % sel.split("=")[0])
        if sel:
            items = [j for j in items if not j["status"].get("succeeded")]
        start = int(q.get("continue") or 0)
        limit = int(q.get("limit") or 0) or len(items) or 1
        page = items[start:start + limit]
        meta = {"resourceVersion": str(self.rv)}
        if start + limit < len(items):
            meta["continue"] = str(start + limit)
        return 200, {}, {"kind": "JobList", "apiVersion": "batch/v1", "metadata": meta, "items": page}

    def list_events(self, ns, q):
        """Events of a namespace; fieldSelector on involvedObject.uid and
        reason (comma-separated equalities, as kube-apiserver takes them)."""
        want = dict(term.split("=", 1) for term in q.get("fieldSelector", "").split(",") if "=" in term)
        out = []
        for ev in self.events:
            if ev["metadata"].get("namespace", ev["involvedObject"].get("namespace")) != ns:
                continue
            if "involvedObject.uid" in want and ev["involvedObject"].get("uid") != want["involvedObject.uid"]:
                continue
            if "reason" in want and ev.get("reason") != want["reason"]:
                continue
            out.append(copy.deepcopy(ev))
        return 200, {}, {"kind": "EventList", "apiVersion": "v1", "metadata": {"resourceVersion": str(self.rv)},
                         "items": out}

    def get_job(self, ns, name):
        """A Job as its controller keeps it (backoffLimit 0, one completion):
        Complete once a pod succeeded and none runs, Failed once all failed;
        no terminal condition while a pod is alive or it is between retries
        (job_backoff)."""
        uid = self.jobs.get((ns, name))
        if uid is None:
            return 404, {}, status_body(404, "NotFound", 'jobs.batch "%s" not found' % name,
                                        {"name": name, "group": "batch", "kind": "jobs"})
        pods = [p for p in self.pods if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))]
        live = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")]
        conds = []
        if not live and (ns, name) not in self.job_backoff:
            done = any(p["status"].get("phase") == "Succeeded" for p in pods)
            t = now_rfc3339()
            for c in (("SuccessCriteriaMet", "Complete") if done else ("FailureTarget", "Failed")):
                conds.append({"type": c, "status": "True", "lastProbeTime": t, "lastTransitionTime": t})
        return 200, {}, {"kind": "Job", "apiVersion": "batch/v1",
                         "metadata": {"name": name, "namespace": ns, "uid": uid},
                         "spec": {"backoffLimit": 0, "completions": 1, "parallelism": 1},
                         "status": {"conditions": conds} if conds else {}}

    def delete_job(self, ns, name, body):
        uid = self.jobs.get((ns, name))
        if uid is None:
            return 404, {}, status_body(404, "NotFound", 'jobs.batch "%s" not found' % name,
                                        {"name": name, "group": "batch", "kind": "jobs"})
        bad = self.check_precondition(body, uid, "Job", name)
        if bad:
            return bad
        opts = json.loads(body or b"{}")
        self.deleted_job_options = opts
        del self.jobs[(ns, name)]
        # Background propagation: the garbage collector deletes the pods.
        for p in [p for p in self.pods if any(
                o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))]:
            self.remove_pod(p)
        return 200, {}, {"kind": "Job", "apiVersion": "batch/v1",
                         "metadata": {"name": name, "namespace": ns, "uid": uid}}

    def lease(self, method, parts, body):
        ns = parts[4]
        if method == "POST" and len(parts) == 6:
            obj = json.loads(body)
            key = (ns, obj["metadata"]["name"])
            if key in self.leases:
                return 409, {}, status_body(409, "AlreadyExists",
                                            'leases.coordination.k8s.io "%s" already exists' % key[1])
            obj["metadata"]["resourceVersion"] = self.next_rv()
            obj["metadata"]["uid"] = "lease-uid-1"
            self.leases[key] = obj
            return 201, {}, obj
        if len(parts) != 7:
            return 404, {}, status_body(404, "NotFound", "not found")
        key = (ns, parts[6])
        cur = self.leases.get(key)
        if method == "GET":
            if cur is None:
                return 404, {}, status_body(404, "NotFound",
                                            'leases.coordination.k8s.io "%s" not found' % key[1])
            return 200, {}, cur
        if method == "PUT":
            obj = json.loads(body)
            if cur is None:
                return 404, {}, status_body(404, "NotFound", "not found")
            if obj["metadata"].get("resourceVersion") != cur["metadata"]["resourceVersion"]:
                return 409, {}, status_body(
                    409, "Conflict", 'Operation cannot be fulfilled on leases.coordination.k8s.io '
                    '"%s": the object has been modified; please apply your changes to the latest '
                    'version and try again' % key[1])
            for t in ("renewTime", "acquireTime"):
                v = obj["spec"].get(t, "")
                assert len(v) == 27 and v[19] == "." and v.endswith("Z"), "MicroTime: " + v
            obj["metadata"]["resourceVersion"] = self.next_rv()
            obj["metadata"]["uid"] = cur["metadata"]["uid"]
            self.leases[key] = obj
            return 200, {}, obj
        return 405, {}, status_body(405, "MethodNotAllowed", "method not allowed")

    def stop(self):
        self.server.stop()


# ---- Azure DevOps and Entra ---------------------------------------------------------

class AdoSim:
    def __init__(self, certdir, org="contoso", pat="PWTESTPAT-ado-Secret-1234567890abcdef",
                 tenant="aaaaaaaa-0000-4000-8000-000000000001",
                 client_id="11111111-0000-4000-8000-000000000001",
                 assertion="eyJhbGciOiJSUzI1NiJ9.PWTEST-federated-assertion.sig"):
        self.org = org
        self.pat = pat
        self.tenant = tenant
        self.client_id = client_id
        self.assertion = assertion
        self.bearer = "eyJ0eXAiOiJKV1QifQ.PWTEST-entra-access-token.fakesig"
        self.pools = {}           # name (the server's spelling) -> id
        self.agents = {}          # pool id -> [agent objects]
        # The newest api-version served: Services 7.1; Azure DevOps Server
        # 2022 "7.0", 2020 "6.0" (fixture fact 28).
        self.max_api_version = "7.1"
        # Agent names that register again (config.sh --replace) right after
        # an agents list is served, before anything else is answered: same
        # id, back online, a new pod uid (fixture fact 25).
        self.reregister_after_list = set()
        self.reregistered = set()     # (pool id, agent id) already registered again
        # Each pool's job requests (fixture fact 30), oldest first: what
        # GET .../pools/{id}/jobrequests answers (?$top=N: at most N).
        self.job_requests = {}        # pool id -> [TaskAgentJobRequest]
        self.online_log = []          # (agent name, statusChangedOn) each time one came online
        # An agent that stops talking (killed without deregistering) goes
        # offline once its session has not been heard from for
        # session_timeout seconds, and a job it held is abandoned
        # abandon_after seconds later (None: never; the service's real
        # delays are minutes and not published: fixtures README, "Not
        # confirmed").
        self.session_timeout = None
        self.abandon_after = 5.0
        self.sessions = {}            # session id -> [pool id, agent id, last heard (time)]
        self.faults = {}
        self.token_requests = 0
        self.lock = threading.RLock()
        self.server = Server(self.services_certs(certdir), self.handle)
        self.url = self.server.url + "/" + org
        self.authority = self.server.url + "/"
        # Azure DevOps Services by its own name, through ServicesProxy
        # (janitor_environ sets HTTPS_PROXY for workload identity).
        self.services_url = "https://dev.azure.com/" + org
        self.proxy = ServicesProxy(self.server.port)

    @staticmethod
    def services_certs(certdir):
        """A serving certificate under certdir's CA that also names
        dev.azure.com, so a client that asked for Services verifies it."""
        d = certdir.rstrip("/") + "-ado"
        if not os.path.exists(os.path.join(d, "tls.crt")):
            os.makedirs(d, exist_ok=True)
            for f in ("ca.crt", "ca.key"):
                shutil.copy(os.path.join(certdir, f), os.path.join(d, f))
            subprocess.run(["sh", os.path.join(ROOT, "certs", "make-certs.sh"), d,
                            "dev.azure.com", "pipewarden-system"], check=True, capture_output=True)
        return d

    def handle(self, method, path, q, headers, body):
        if path == "/%s/oauth2/v2.0/token" % self.tenant:
            return self.token(body)
        f = self.faults
        if f.get("hang"):
            time.sleep(f["hang"])
        if f.get("throttle", 0) > 0:
            f["throttle"] -= 1
            return 429, {"Retry-After": "1", "X-RateLimit-Resource": "Core",
                         "X-RateLimit-Remaining": "0"}, {
                "$id": "1", "innerException": None,
                "message": "TF400733: The request has been canceled: Request was blocked due to "
                           "exceeding usage of resource 'Core' in namespace 'User'.",
                "typeName": "Microsoft.TeamFoundation.Framework.Server.RequestBlockedException, "
                            "Microsoft.TeamFoundation.Framework.Server",
                "typeKey": "RequestBlockedException", "errorCode": 0, "eventId": 3000}
        if f.get("error_5xx", 0) > 0:
            f["error_5xx"] -= 1
            return 503, {"Content-Type": "text/html"}, "<html>Service Unavailable</html>"
        if f.get("unauthorized", 0) > 0:     # a revoked token (error-401-tf400813.json)
            f["unauthorized"] -= 1
            return 401, {"WWW-Authenticate": 'Basic realm="https://tfsprodweu2.visualstudio.com/"'}, {
                "eventId": 3000, "$id": "1", "errorCode": 0, "innerException": None,
                "typeName": "Microsoft.TeamFoundation.Framework.Server.UnauthorizedRequestException, "
                            "Microsoft.TeamFoundation.Framework.Server",
                "message": "TF400813: The user '' is not authorized to access this resource.",
                "typeKey": "UnauthorizedRequestException"}
        auth = headers.get("Authorization") or ""
        good = {"Basic " + base64.b64encode((":" + self.pat).encode()).decode(),
                "Bearer " + self.bearer}
        if auth not in good:
            return 203, {"Content-Type": "text/html; charset=utf-8"}, SIGNIN_HTML
        if f.get("malformed"):
            return 200, {"Content-Type": "application/json"}, '{"count": 3, "value": [{"id": 1,'
        extra = {}
        if f.get("slow_down"):
            extra = {"Retry-After": "1", "X-RateLimit-Delay": "0.5", "X-RateLimit-Remaining": "0"}
        prefix = "/%s/_apis/distributedtask/pools" % self.org
        refused = self.version_refused(q)
        if refused:
            return refused
        self.expire_sessions()
        agent_side = self.agent_protocol(method, path[len(prefix):].strip("/").split("/"), q, body)
        if agent_side is not None:
            return agent_side
        with self.lock:
            if path == prefix and method == "GET":
                # The server filters poolName in SQL, without regard to case (fact 29).
                name = q.get("poolName")
                value = [{"id": i, "name": n, "isHosted": False, "poolType": "automation", "size": 1}
                         for n, i in self.pools.items() if name is None or n.lower() == name.lower()]
                return 200, extra, {"count": len(value), "value": value}
            parts = path[len(prefix):].strip("/").split("/")
            if len(parts) == 2 and parts[1] == "jobrequests" and method == "GET":
                return self.list_job_requests(int(parts[0]), q, extra)
            if len(parts) >= 2 and parts[1] == "agents":
                pid = int(parts[0])
                if pid not in self.agents:
                    return 404, {}, {"$id": "1", "innerException": None,
                                     "message": "No agent pool found with identifier %d." % pid,
                                     "typeName": "Microsoft.TeamFoundation.DistributedTask.WebApi."
                                                 "TaskAgentPoolNotFoundException",
                                     "typeKey": "TaskAgentPoolNotFoundException",
                                     "errorCode": 0, "eventId": 3000}
                if len(parts) == 2 and method == "GET":
                    body = self.list_agents(pid, q)
                    self.reregister(pid)
                    return 200, extra, body
                if len(parts) == 3 and method == "GET":
                    for a in self.agents[pid]:
                        if a["id"] == int(parts[2]):
                            return 200, extra, self.shown(a, q)
                    return 404, {}, self.agent_not_found(int(parts[2]))
                if len(parts) == 3 and method == "DELETE":
                    return self.delete_agent(pid, int(parts[2]))
        return 404, {}, {"message": "not found", "typeKey": "NotFound"}

    def version_refused(self, q):
        """Azure DevOps Server refuses an api-version above its own with 400
        (fixture fact 28)."""
        asked = q.get("api-version", "")
        num = lambda v: tuple(int(x) for x in v.split("-")[0].split("."))  # noqa: E731
        try:
            over = num(asked) > num(self.max_api_version)
        except ValueError:
            over = False
        if not over:
            return None
        return 400, {}, {
            "$id": "1", "innerException": None,
            "message": "The requested REST API version of %s is out of range for this server. "
                       "The latest REST API version this server supports is %s." % (asked, self.max_api_version),
            "typeName": "Microsoft.VisualStudio.Services.WebApi.VssVersionOutOfRangeException, "
                        "Microsoft.VisualStudio.Services.WebApi",
            "typeKey": "VssVersionOutOfRangeException", "errorCode": 0, "eventId": 3000}

    @staticmethod
    def shown(a, q):
        """An agent as a read with these includes shows it (facts 6, 26)."""
        inc = lambda k: q.get(k, "").lower() == "true" and "demands" not in q  # noqa: E731
        a = copy.deepcopy(a)
        if not inc("includeCapabilities"):
            a.pop("systemCapabilities", None)
            a.pop("userCapabilities", None)
        if not inc("includeAssignedRequest"):
            a.pop("assignedRequest", None)
        if not inc("includeLastCompletedRequest"):
            a.pop("lastCompletedRequest", None)
        return a

    def list_agents(self, pid, q):
        out = [self.shown(a, q) for a in self.agents[pid]]
        return {"count": len(out), "value": out}

    # -- what an agent calls (tests/node/agent.py) ---------------------------
    #
    # The agent's side, simplified where Microsoft's protocol is private
    # (Agent.Listener's sessions and message queue are not a published REST
    # API): register (POST agents, or PUT agents/{id} for --replace: same id,
    # fact 25), a session that makes the agent online (POST sessions) and
    # offline (DELETE sessions/{id}), a message poll that hands the agent the
    # oldest queued request of its pool (GET messages?sessionId=, answered
    # 204 after a few seconds without one), and PATCH jobrequests/{id} for
    # receiving and finishing it.  The fields these set are the ones the
    # published API shows (assignTime, receiveTime, finishTime, result,
    # reservedAgent, the agent's assignedRequest and lastCompletedRequest).

    def agent_protocol(self, method, parts, q, body):
        if len(parts) < 2 or not parts[0].isdigit():
            return None
        pid = int(parts[0])
        what = parts[1]
        if what == "agents" and len(parts) == 2 and method == "POST":
            return self.agent_register(pid, json.loads(body))
        if what == "agents" and len(parts) == 3 and method == "PUT":
            return self.agent_register(pid, json.loads(body), replace=int(parts[2]))
        if what == "agents" and len(parts) == 2 and method == "GET" and "agentName" in q:
            with self.lock:
                out = [self.shown(a, q) for a in self.agents.get(pid, []) if a["name"] == q["agentName"]]
            return 200, {}, {"count": len(out), "value": out}
        if what == "sessions" and len(parts) == 2 and method == "POST":
            return self.session_open(pid, json.loads(body))
        if what == "sessions" and len(parts) == 3 and method == "DELETE":
            return self.session_close(pid, parts[2])
        if what == "messages" and len(parts) == 2 and method == "GET":
            return self.next_message(pid, q.get("sessionId", ""))
        if what == "jobrequests" and len(parts) == 3 and method == "PATCH":
            return self.request_update(pid, int(parts[2]), json.loads(body))
        return None

    def expire_sessions(self):
        """Sessions not heard from for session_timeout: their agents go
        offline; a request such an agent held is abandoned abandon_after
        seconds later."""
        if self.session_timeout is None:
            return
        now = time.time()
        with self.lock:
            for sid, (pid, aid, heard) in list(self.sessions.items()):
                if now - heard < self.session_timeout:
                    continue
                del self.sessions[sid]
                for a in self.agents.get(pid, []):
                    if a["id"] == aid and a["status"] == "online":
                        a["status"] = "offline"
                        a["statusChangedOn"] = now_rfc3339(heard + self.session_timeout, frac=True)
            for pid, reqs in self.job_requests.items():
                for r in reqs:
                    aid = (r.get("reservedAgent") or {}).get("id")
                    if aid is None or "result" in r:
                        continue
                    ag = [a for a in self.agents.get(pid, []) if a["id"] == aid]
                    gone = not ag or ag[0]["status"] == "offline"
                    since = ag[0].get("statusChangedOn") if ag else None
                    if gone and (since is None or now - parse_rfc3339(since) >= self.abandon_after):
                        r["result"] = "abandoned"
                        r["finishTime"] = now_rfc3339(now, frac=True)
                        r.pop("lockedUntil", None)
                        for a in ag:
                            if (a.get("assignedRequest") or {}).get("requestId") == r["requestId"]:
                                a.pop("assignedRequest", None)
                                a["lastCompletedRequest"] = {k: r[k] for k in (
                                    "requestId", "queueTime", "assignTime", "receiveTime", "finishTime",
                                    "result") if k in r}

    def heard_from(self, pid, aid):
        for sid, v in self.sessions.items():
            if v[0] == pid and v[1] == aid:
                v[2] = time.time()

    def agent_register(self, pid, a, replace=None):
        with self.lock:
            if pid not in self.agents:
                return 404, {}, {"message": "No agent pool found with identifier %d." % pid,
                                 "typeKey": "TaskAgentPoolNotFoundException"}
            now = time.time()
            caps = dict(a.get("systemCapabilities") or {})
            for cur in self.agents[pid]:
                if cur["name"] == a["name"]:
                    if replace is None:
                        return 409, {}, {"message": "Agent %s already exists." % a["name"],
                                         "typeKey": "TaskAgentExistsException"}
                    cur["systemCapabilities"] = caps
                    cur.pop("assignedRequest", None)
                    cur["status"] = "offline"
                    cur["statusChangedOn"] = now_rfc3339(now, frac=True)
                    return 200, {}, cur
            new = agent(max([x["id"] for p in self.agents.values() for x in p] + [0]) + 1, a["name"],
                        status="offline", changed_ago=0, created_ago=0, now=now)
            new["systemCapabilities"] = caps
            self.agents[pid].append(new)
            return 200, {}, new

    def session_open(self, pid, body):
        with self.lock:
            aid = body["agent"]["id"]
            for a in self.agents.get(pid, []):
                if a["id"] == aid:
                    a["status"] = "online"
                    a["statusChangedOn"] = now_rfc3339(frac=True)
                    self.online_log.append((a["name"], a["statusChangedOn"]))
                    sid = "session-%d-%d" % (aid, int(time.time() * 1000))
                    self.sessions[sid] = [pid, aid, time.time()]
                    return 200, {}, {"sessionId": sid, "agent": {"id": aid, "name": a["name"]},
                                     "ownerName": body.get("ownerName", "")}
            return 404, {}, self.agent_not_found(aid)

    def session_close(self, pid, sid):
        with self.lock:
            pa = self.sessions.pop(sid, None)
            if pa is None:
                return 404, {}, {"message": "session not found", "typeKey": "TaskAgentSessionExpiredException"}
            for a in self.agents.get(pa[0], []):
                if a["id"] == pa[1]:
                    a["status"] = "offline"
                    a["statusChangedOn"] = now_rfc3339(frac=True)
            return 200, {}, b""

    def next_message(self, pid, sid, wait=5.0):
        """The oldest queued request of the pool, assigned to the session's
        agent; 204 after wait seconds without one (a long poll)."""
        end = time.time() + wait
        while True:
            with self.lock:
                pa = self.sessions.get(sid)
                if pa is None:
                    return 404, {}, {"message": "session not found",
                                     "typeKey": "TaskAgentSessionExpiredException"}
                pa[2] = time.time()
                ag = [a for a in self.agents.get(pid, []) if a["id"] == pa[1]][0]
                for r in self.job_requests.get(pid, []):
                    if "assignTime" not in r and "result" not in r:
                        r["assignTime"] = now_rfc3339(frac=True)
                        r["reservedAgent"] = {"_links": {}, "id": ag["id"], "name": ag["name"],
                                              "version": "4.255.0", "enabled": True, "status": "online"}
                        ag["assignedRequest"] = {k: v for k, v in r.items() if k not in ("matchedAgents",)}
                        return 200, {}, {"messageId": r["requestId"], "messageType": "PipelineAgentJobRequest",
                                         "body": json.dumps({"requestId": r["requestId"],
                                                             "jobDisplayName": r.get("jobName"),
                                                             "variables": r.get("data", {})})}
            if time.time() >= end:
                return 204, {}, b""
            time.sleep(0.2)

    def request_update(self, pid, rid, body):
        with self.lock:
            for r in self.job_requests.get(pid, []):
                if r["requestId"] != rid:
                    continue
                now = now_rfc3339(frac=True)
                self.heard_from(pid, (r.get("reservedAgent") or {}).get("id"))
                if "result" in r:
                    return 400, {}, {"message": "The job request %d has finished (%s)." % (rid, r["result"]),
                                     "typeKey": "TaskAgentJobTokenExpiredException"}
                if "receiveTime" in body and "receiveTime" not in r:
                    r["receiveTime"] = now
                    r["lockedUntil"] = now_rfc3339(time.time() + 300, frac=True)
                if "result" in body:
                    r["result"] = body["result"]
                    r["finishTime"] = now
                    r.pop("lockedUntil", None)
                aid = (r.get("reservedAgent") or {}).get("id")
                for a in self.agents.get(pid, []):
                    if a["id"] == aid:
                        if "result" in r:
                            a.pop("assignedRequest", None)
                            a["lastCompletedRequest"] = {k: r[k] for k in ("requestId", "queueTime", "assignTime",
                                                                           "receiveTime", "finishTime", "result")
                                                         if k in r}
                        else:
                            a["assignedRequest"] = {k: v for k, v in r.items() if k != "matchedAgents"}
                return 200, {}, r
            return 404, {}, {"message": "request %d not found" % rid, "typeKey": "TaskAgentJobNotFoundException"}

    def list_job_requests(self, pid, q, extra):
        """The pool's job requests: unfinished and finished alike (KEDA drops
        those with a result itself), at most $top of them, the newest first
        (the service's order is not documented: a client must not rely on
        it).  An unknown pool is a 404 like the agents list's."""
        if pid not in self.agents:
            return 404, {}, {"$id": "1", "innerException": None,
                             "message": "No agent pool found with identifier %d." % pid,
                             "typeKey": "TaskAgentPoolNotFoundException", "errorCode": 0, "eventId": 3000}
        if self.faults.get("jobrequests_down"):
            return 503, {"Content-Type": "text/html"}, "<html>Service Unavailable</html>"
        top = int(q.get("$top", "250") or 250)
        value = list(reversed(self.job_requests.get(pid, [])))[:top]
        return 200, extra, {"count": len(value), "value": copy.deepcopy(value)}

    def register(self, pid, name, pod_uid, managed=True, now=None):
        """config.sh --replace: an agent of that name keeps its id and comes
        back online with the new pod's capabilities (fact 25); otherwise a
        new agent with the next id."""
        now = time.time() if now is None else now
        for a in self.agents[pid]:
            if a["name"] == name:
                return self.replaced(a, pod_uid, now)
        aid = max([a["id"] for p in self.agents.values() for a in p] + [0]) + 1
        a = agent(aid, name, status="online", changed_ago=0, created_ago=0, managed=managed,
                  pod_uid=pod_uid, now=now)
        self.agents[pid].append(a)
        return a

    @staticmethod
    def replaced(a, pod_uid, now):
        """What ReplaceAgentAsync leaves: the same id, online, the new pod's
        capabilities."""
        a["status"] = "online"
        a["statusChangedOn"] = now_rfc3339(now)
        a["systemCapabilities"]["PIPEWARDEN_POD_UID"] = pod_uid
        a.pop("assignedRequest", None)
        return a

    def reregister(self, pid):
        """After a list of pool pid: its agents named in reregister_after_list
        register again, once each (a name may stand in several pools)."""
        for a in self.agents[pid]:
            if a["name"] in self.reregister_after_list and (pid, a["id"]) not in self.reregistered:
                self.reregistered.add((pid, a["id"]))
                self.replaced(a, "uid-" + a["name"] + "-again", time.time())

    @staticmethod
    def agent_not_found(aid):
        return {"$id": "1", "innerException": None, "message": "Agent %d was not found." % aid,
                "typeName": "Microsoft.TeamFoundation.DistributedTask.WebApi."
                            "TaskAgentNotFoundException",
                "typeKey": "TaskAgentNotFoundException", "errorCode": 0, "eventId": 3000}

    def delete_agent(self, pid, aid):
        if self.faults.get("slow_delete"):
            time.sleep(self.faults["slow_delete"])
        for a in self.agents[pid]:
            if a["id"] == aid:
                if a.get("assignedRequest"):
                    return 400, {}, {
                        "$id": "1", "innerException": None,
                        "message": "The agent %s is running a job and cannot be deleted." % a["name"],
                        "typeName": "Microsoft.TeamFoundation.DistributedTask.WebApi."
                                    "TaskAgentJobStillRunningException, Microsoft.TeamFoundation."
                                    "DistributedTask.WebApi",
                        "typeKey": "TaskAgentJobStillRunningException", "errorCode": 0,
                        "eventId": 3000}
                self.agents[pid].remove(a)
                return 204, {}, b""
        return 404, {}, self.agent_not_found(aid)

    def token(self, body):
        self.token_requests += 1
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        if self.faults.get("entra_down"):
            return None
        ok = (form.get("grant_type") == "client_credentials" and
              form.get("client_id") == self.client_id and
              form.get("scope") == "499b84ac-1321-427f-aa17-267ca6975798/.default" and
              form.get("client_assertion_type") ==
              "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        if not ok:
            return 400, {}, {"error": "invalid_request", "error_description":
                             "AADSTS90014: The required field is missing.", "error_codes": [90014]}
        if form.get("client_assertion") != self.assertion:
            return 401, {}, {"error": "invalid_client", "error_description":
                             "AADSTS700024: Client assertion is not within its valid time range.",
                             "error_codes": [700024]}
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                         "access_token": self.bearer}

    def stop(self):
        self.proxy.stop()
        self.server.stop()


def janitor_environ(ado, identity, namespace, wi, pat_file, assertion_file):
    """The environment of a janitor run as the DaemonSet gives it: downward
    API names, and a PAT file or workload identity against `ado`.  Workload
    identity is an Azure DevOps Services feature: its janitor calls
    ado.services_url through ado.proxy (HTTPS_PROXY; the Kubernetes API and
    Entra's simulator on 127.0.0.1 are reached directly)."""
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("AZURE_", "AZP_", "PIPEWARDEN_")) and
         k.lower() not in ("https_proxy", "http_proxy", "all_proxy", "no_proxy")}
    e.update({"POD_NAME": identity, "POD_NAMESPACE": namespace})
    if wi:
        e.update({"AZURE_CLIENT_ID": ado.client_id, "AZURE_TENANT_ID": ado.tenant,
                  "AZURE_AUTHORITY_HOST": ado.authority, "AZURE_FEDERATED_TOKEN_FILE": assertion_file,
                  "HTTPS_PROXY": ado.proxy.url, "NO_PROXY": "127.0.0.1,localhost"})
    else:
        e["AZP_TOKEN_FILE"] = pat_file
    return e


# ---- building state in the fixtures' shapes -------------------------------------------

def assigned_request(aid, now=None, pipeline="payments-api - CI", run=None):
    """An agent's assignedRequest, shaped as agents-page-1.json's (fixture
    fact 8: TaskAgentJobRequest; definition and owner are {_links, id,
    name}, owner being the run: its number as name, its page as web link)."""
    now = time.time() if now is None else now
    build = 88000 + aid
    project = "https://dev.azure.com/contoso/8a428564-bc22-474e-9694-fcbc5b5c8672"
    return {"requestId": 1400000 + aid, "queueTime": now_rfc3339(now - 600),
            "assignTime": now_rfc3339(now - 590), "receiveTime": now_rfc3339(now - 589),
            "lockedUntil": now_rfc3339(now + 300), "planType": "Build",
            "planId": "ddab3939-70de-4c34-8596-%012d" % aid, "jobName": "Build", "poolId": 12,
            "definition": {"_links": {"web": {"href": project + "/_build/definition?definitionId=41"},
                                      "self": {"href": project + "/_apis/build/Definitions/41"}},
                           "id": 41, "name": pipeline},
            "owner": {"_links": {"web": {"href": project + "/_build/results?buildId=%d" % build},
                                 "self": {"href": project + "/_apis/build/Builds/%d" % build}},
                      "id": build, "name": run or "20260901.%d" % aid},
            "data": {"ParallelismTag": "Private", "IsScheduledKey": "False"}, "priority": 0}


def job_request(rid, queued, assigned=None, received=None, finished=None, result=None,
                agent=None, pipeline="payments-api - CI", pool_id=12, matched=(), run=None):
    """A TaskAgentJobRequest as GET .../jobrequests lists it (fixture fact 30;
    assigned_request's shape): times are Unix seconds (None: absent, as the
    service omits nulls); agent is (id, name) of the reserved agent;
    matched the names of the agents that match its demands."""
    project = "https://dev.azure.com/contoso/8a428564-bc22-474e-9694-fcbc5b5c8672"
    r = {"requestId": rid, "queueTime": now_rfc3339(queued, frac=True), "serviceOwner": "00025394-6065-48ca-87d9-7f5672854ef7",
         "hostId": "f5b3f5b1-0000-4000-8000-00000000aa01", "scopeId": "8a428564-bc22-474e-9694-fcbc5b5c8672",
         "planType": "Build", "planId": "ddab3939-70de-4c34-8596-%012d" % rid, "jobId": "job-%d" % rid,
         "jobName": "Build", "poolId": pool_id, "demands": ["Agent.Version -gtVersion 2.182.1"],
         "matchedAgents": [{"_links": {}, "id": i + 1, "name": n, "version": "4.255.0", "enabled": True,
                            "status": "online"} for i, n in enumerate(matched)],
         "definition": {"_links": {"web": {"href": project + "/_build/definition?definitionId=41"}},
                        "id": 41, "name": pipeline},
         "owner": {"_links": {"web": {"href": project + "/_build/results?buildId=%d" % (90000 + rid)}},
                   "id": 90000 + rid, "name": "20261206.%d" % rid},
         "data": {"ParallelismTag": "Private", "IsScheduledKey": "False"}, "priority": 0}
    for key, t in (("assignTime", assigned), ("receiveTime", received), ("finishTime", finished)):
        if t is not None:
            r[key] = now_rfc3339(t, frac=True)
    if received is not None and finished is None:
        r["lockedUntil"] = now_rfc3339(received + 300, frac=True)
    if result is not None:
        r["result"] = result
    if run is not None:       # what tests/node/agent.py does with it: succeed:S, fail:S, oom, hang
        r["data"]["pipewarden.test/run"] = run
    if agent is not None:
        r["reservedAgent"] = {"_links": {}, "id": agent[0], "name": agent[1], "version": "4.255.0",
                              "enabled": True, "status": "online"}
    return r


def agent(aid, name, status="offline", enabled=True, busy=False, changed_ago=None,
          created_ago=86400, managed=True, pod_uid=None, now=None):
    """An agent as the agents list returns it (agents-page-1.json's shape);
    null members are omitted, as the service does."""
    now = time.time() if now is None else now
    a = {"_links": {"self": {"href": "https://dev.azure.com/contoso/_apis/distributedtask/pools/12/agents/%d" % aid}},
         "maxParallelism": 1, "createdOn": now_rfc3339(now - created_ago),
         "authorization": {"clientId": "c-%d" % aid}, "id": aid, "name": name,
         "version": "4.255.0", "osDescription": "Linux 5.15.0-1079-azure #88-Ubuntu SMP",
         "status": status, "provisioningState": "Provisioned", "accessPoint": "CodexAccessMapping"}
    if enabled:
        a["enabled"] = True
    if changed_ago is not None:
        a["statusChangedOn"] = now_rfc3339(now - changed_ago)
    caps = {"Agent.Name": name, "Agent.OS": "Linux", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    if managed:
        caps["PIPEWARDEN_MANAGED"] = "true"
    if pod_uid:
        caps["PIPEWARDEN_POD_UID"] = pod_uid
    a["systemCapabilities"] = caps
    if busy:
        a["assignedRequest"] = assigned_request(aid, now)
    return a


def pod(name, ns="ci-agents", node="node-a", phase="Running", created_ago=3600,
        finished_ago=None, owner="Job", owner_name=None, uid=None, deleting=False,
        unschedulable=False, agent_finished_ago=None, sidecar=False, waiting=None):
    """A managed pod as the API server persists it (podlist fixtures' shape)."""
    now = time.time()
    uid = uid or "uid-" + name
    meta = {"name": name, "namespace": ns, "uid": uid,
            "creationTimestamp": now_rfc3339(now - created_ago),
            "labels": {"pipewarden.io/managed": "true", "pipewarden.io/pool": "aks-pool"},
            "annotations": {"pipewarden.io/inject": "true", "pipewarden.io/injected": "0.1.0"}}
    if deleting:
        meta["deletionTimestamp"] = now_rfc3339(now + 30)
    if owner:
        oname = owner_name or name.rsplit("-", 1)[0]
        if owner == "Job":    # what the Job controller's template adds
            meta["labels"].update({"batch.kubernetes.io/controller-uid": "owner-" + oname,
                                   "batch.kubernetes.io/job-name": oname,
                                   "controller-uid": "owner-" + oname, "job-name": oname})
        meta["ownerReferences"] = [{"apiVersion": "batch/v1" if owner == "Job" else "apps/v1",
                                    "kind": owner, "name": oname, "uid": "owner-" + oname,
                                    "controller": True, "blockOwnerDeletion": True}]
    containers = [{"name": "agent", "image": "azp-agent"}]
    if sidecar:
        containers.append({"name": "log-forwarder", "image": "fluent-bit"})
    spec = {"containers": containers, "restartPolicy": "Never"}
    if node:
        spec["nodeName"] = node
    status = {"phase": phase}
    if finished_ago is not None:
        status["containerStatuses"] = [{"name": "agent", "state": {"terminated": {
            "exitCode": 0, "reason": "Completed", "startedAt": now_rfc3339(now - created_ago),
            "finishedAt": now_rfc3339(now - finished_ago)}}}]
    elif agent_finished_ago is not None:
        status["containerStatuses"] = [
            {"name": "agent", "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                                       "finishedAt": now_rfc3339(now - agent_finished_ago)}}},
            {"name": "log-forwarder", "state": {"running": {"startedAt": now_rfc3339(now - created_ago)}}}]
    if waiting:      # a container that cannot start, as a kubelet reports it
        status["containerStatuses"] = [{"name": "agent", "image": "azp-agent", "ready": False,
                                        "restartCount": 0, "started": False,
                                        "state": {"waiting": {"reason": waiting,
                                                              "message": 'Back-off pulling image "azp-agent"'}}}]
    if unschedulable:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/3 nodes are available"}]
    return {"metadata": meta, "spec": spec, "status": status}


def fixture_agents(shared_dir, shift_to_now=True):
    """The 12 agents of ../shared/fixtures/azure-devops/agents-page-1.json,
    with every time moved by (now - the fixture's now) so ages stay as the
    README describes them."""
    path = os.path.join(shared_dir, "fixtures", "azure-devops", "agents-page-1.json")
    with open(path) as f:
        data = json.load(f)
    delta = time.time() - 1788264000 if shift_to_now else 0

    def shift(o):
        if isinstance(o, dict):
            return {k: shift(v) for k, v in o.items()}
        if isinstance(o, list):
            return [shift(v) for v in o]
        if isinstance(o, str) and len(o) >= 20 and o[4:5] == "-" and o[10:11] == "T" and o.endswith("Z"):
            t = time.mktime(time.strptime(o[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            return now_rfc3339(t + delta)
        return o
    return shift(data["value"])
