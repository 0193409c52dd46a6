"""A real Kubernetes control plane on loopback, as a test fixture.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler, built by
tests/cluster/controlplane/build.sh from the pinned release's Go modules, started on
free loopback ports with a PKI made here with OpenSSL.  There is no kubelet
and no container runtime: nodes are Node objects, and `Kubelet` plays the
kubelet through the API (pod status, finishing the deletion of a bound pod).

Every process is started in its own session with PR_SET_PDEATHSIG, and
stopped by ControlPlane.stop(), at exit and on SIGINT/SIGTERM: nothing is
left running after a run, not even after a failure or Ctrl-C.
"""
import atexit
import base64
import ctypes
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402

BUILD = os.path.join(lib.ROOT, "tests", "cluster", "controlplane", "build.sh")
ISSUER = "https://kubernetes.default.svc.cluster.local"
_PROCS = []                 # every child still running, for the exit handlers


def k8s_dir():
    return subprocess.run(["sh", BUILD, "--print-dir", "k8s"], check=True,
                          capture_output=True, text=True).stdout.strip()


def helm_bin():
    d = subprocess.run(["sh", BUILD, "--print-dir", "helm"], check=True,
                       capture_output=True, text=True).stdout.strip()
    return os.path.join(d, "helm")


def _die_with_parent():
    os.setsid()
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def spawn(cmd, log_path, env=None):
    """Start a child that dies with this process; its output goes to log_path."""
    log = open(log_path, "ab")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         env=env, preexec_fn=_die_with_parent)
    log.close()
    p.log_path = log_path
    _PROCS.append(p)
    return p


def kill(p, sig=signal.SIGTERM, timeout=10):
    """Stop a child (and its session); SIGKILL after timeout seconds."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in _PROCS:
        _PROCS.remove(p)
    return p.returncode


def kill_all():
    for p in list(_PROCS):
        kill(p, signal.SIGKILL)


atexit.register(kill_all)


def _on_signal(signum, frame):
    kill_all()
    sys.exit(128 + signum)


for _s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_s, _on_signal)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# ---- PKI -------------------------------------------------------------------

def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def make_pki(d):
    """A cluster CA, the API server's serving pair, client certificates for
    the admin (system:masters), the controller manager and the scheduler, and
    the service-account signing key."""
    os.makedirs(d, exist_ok=True)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    _openssl("genpkey", *ec, "-out", d + "/ca.key")
    _openssl("req", "-x509", "-new", "-key", d + "/ca.key", "-sha256", "-days", "30",
             "-subj", "/CN=pipewarden-test-cluster-ca", "-out", d + "/ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    certs = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth",
                      "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,"
                      "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:127.96.0.1"),
        "admin": ("/O=system:masters/CN=pipewarden-test-admin", "clientAuth", None),
        "controller-manager": ("/CN=system:kube-controller-manager", "clientAuth", None),
        "scheduler": ("/CN=system:kube-scheduler", "clientAuth", None),
    }
    for name, (subj, usage, san) in certs.items():
        _openssl("genpkey", *ec, "-out", "%s/%s.key" % (d, name))
        _openssl("req", "-new", "-key", "%s/%s.key" % (d, name), "-subj", subj,
                 "-out", "%s/%s.csr" % (d, name))
        with open("%s/%s.ext" % (d, name), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=%s\n" % usage)
            if san:
                f.write("subjectAltName=%s\n" % san)
        _openssl("x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.crt",
                 "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "30", "-sha256",
                 "-extfile", "%s/%s.ext" % (d, name), "-out", "%s/%s.crt" % (d, name))
    _openssl("genpkey", *ec, "-out", d + "/sa.key")
    _openssl("pkey", "-in", d + "/sa.key", "-pubout", "-out", d + "/sa.pub")


def write_kubeconfig(path, server, ca, cert, key):
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "test",
           "clusters": [{"name": "test", "cluster": {"server": server, "certificate-authority": ca}}],
           "users": [{"name": "test", "user": {"client-certificate": cert, "client-key": key}}],
           "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}]}
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


# ---- the API ---------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, body):
        self.status = status
        self.body = body
        msg = body.get("message", "") if isinstance(body, dict) else str(body)[:300]
        super().__init__("HTTP %d: %s" % (status, msg))


class Api:
    """A small client of kube-apiserver: a client certificate or a bearer token."""

    def __init__(self, url, ca, cert=None, key=None, token=None):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        if cert:
            self.ctx.load_cert_chain(cert, key)
        self.token = token
        self.local = threading.local()

    def _conn(self):
        c = getattr(self.local, "conn", None)
        if c is None:
            c = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=60)
            self.local.conn = c
        return c

    def raw(self, method, path, body=None, query=None, ctype="application/json"):
        """(status, parsed body) of one call; never raises for an HTTP status."""
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if body is not None:
            body = body if isinstance(body, (bytes, str)) else json.dumps(body)
            headers["Content-Type"] = ctype
        for attempt in range(2):
            c = self._conn()
            try:
                c.request(method, path, body=body, headers=headers)
                r = c.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt == 1:
                    raise
        try:
            obj = json.loads(data) if data else {}
        except ValueError:
            obj = data.decode(errors="replace")
        return r.status, obj

    def call(self, method, path, body=None, query=None, ctype="application/json", ok=(200, 201, 202)):
        status, obj = self.raw(method, path, body, query, ctype)
        if status not in ok:
            raise ApiError(status, obj)
        return obj

    def get(self, path, **q):
        return self.call("GET", path, query=q or None)

    def exists(self, path):
        return self.raw("GET", path)[0] == 200

    def create(self, path, obj, **q):
        return self.call("POST", path, obj, query=q or None)

    def merge_patch(self, path, patch):
        return self.call("PATCH", path, patch, ctype="application/merge-patch+json")

    def delete(self, path, body=None, **q):
        return self.call("DELETE", path, body, query=q or None, ok=(200, 202, 404))


def ns_path(kind, ns, name=None):
    """The REST path of a namespaced object: kind is 'pods', 'jobs', ..."""
    group = {"jobs": "/apis/batch/v1", "deployments": "/apis/apps/v1", "replicasets": "/apis/apps/v1",
             "daemonsets": "/apis/apps/v1", "leases": "/apis/coordination.k8s.io/v1"}.get(kind, "/api/v1")
    p = "%s/namespaces/%s/%s" % (group, ns, kind)
    return p + "/" + name if name else p


# ---- the control plane -----------------------------------------------------

class ControlPlane:
    CONTROLLERS = ["job-controller", "garbage-collector-controller", "pod-garbage-collector-controller",
                   "replicaset-controller",
                   "deployment-controller", "daemonset-controller", "serviceaccount-controller",
                   "serviceaccount-token-controller", "namespace-controller",
                   "root-ca-certificate-publisher-controller", "resourcequota-controller"]
    APISERVER_FLAGS = []

    def __init__(self, workdir, bindir=None):
        self.dir = workdir
        self.bin = bindir or k8s_dir()
        self.pki = os.path.join(workdir, "pki")
        self.procs = {}
        self.api = None

    def binary(self, name):
        path = os.path.join(self.bin, name)
        if not os.access(path, os.X_OK):
            raise RuntimeError("%s is not built: run `make controlplane` (tests/cluster/controlplane/build.sh)" % path)
        return path

    def log(self, name):
        return os.path.join(self.dir, name + ".log")

    def start(self):
        t0 = time.monotonic()
        make_pki(self.pki)
        p = self.pki
        etcd_port, peer_port, api_port, kcm_port, sched_port = free_ports(5)
        self.etcd_url = "http://127.0.0.1:%d" % etcd_port
        self.procs["etcd"] = spawn([
            self.binary("etcd"), "--name", "test", "--data-dir", os.path.join(self.dir, "etcd"),
            "--listen-client-urls", self.etcd_url, "--advertise-client-urls", self.etcd_url,
            "--listen-peer-urls", "http://127.0.0.1:%d" % peer_port,
            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % peer_port,
            "--initial-cluster", "test=http://127.0.0.1:%d" % peer_port,
            "--unsafe-no-fsync", "--log-level", "warn"], self.log("etcd"))
        self.url = "https://127.0.0.1:%d" % api_port
        self.procs["kube-apiserver"] = spawn([
            self.binary("kube-apiserver"), "--etcd-servers", self.etcd_url,
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port), "--cert-dir", os.path.join(self.dir, "apiserver-certs"),
            "--tls-cert-file", p + "/apiserver.crt", "--tls-private-key-file", p + "/apiserver.key",
            "--client-ca-file", p + "/ca.crt",
            "--service-account-issuer", ISSUER, "--api-audiences", ISSUER,
            "--service-account-key-file", p + "/sa.pub",
            "--service-account-signing-key-file", p + "/sa.key",
            # Services get loopback ClusterIPs.  With no kube-proxy, nothing
            # routes a ClusterIP; but kube-apiserver calls a webhook Service
            # at its ClusterIP and port (its default ClusterIP resolver), so a
            # test that serves the webhook on that address exercises the real
            # Service path: a chart's clientConfig.service, unchanged.
            # (Endpoints can never be loopback: validation refuses them.)
            "--service-cluster-ip-range", "127.96.0.0/16",
            "--authorization-mode", "Node,RBAC",
            "--enable-admission-plugins", "NodeRestriction",
            # No Service traffic here (no kube-proxy): the kubernetes Service
            # gets no endpoints, so a loopback advertise address is allowed.
            "--endpoint-reconciler-type", "none",
            "--allow-privileged=true", "--profiling=false", "--v=1"] + self.APISERVER_FLAGS,
            self.log("kube-apiserver"))
        self.admin_kubeconfig = write_kubeconfig(os.path.join(self.dir, "admin.kubeconfig"), self.url,
                                                 p + "/ca.crt", p + "/admin.crt", p + "/admin.key")
        self.api = Api(self.url, p + "/ca.crt", p + "/admin.crt", p + "/admin.key")
        self.wait_ready("/readyz", "kube-apiserver", 120)
        kcm_cfg = write_kubeconfig(os.path.join(self.dir, "kcm.kubeconfig"), self.url, p + "/ca.crt",
                                   p + "/controller-manager.crt", p + "/controller-manager.key")
        self.procs["kube-controller-manager"] = spawn([
            self.binary("kube-controller-manager"), "--kubeconfig", kcm_cfg,
            "--authentication-kubeconfig", kcm_cfg, "--authorization-kubeconfig", kcm_cfg,
            "--bind-address", "127.0.0.1", "--secure-port", str(kcm_port), "--leader-elect=false",
            "--controllers", ",".join(self.CONTROLLERS),
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", p + "/sa.key", "--root-ca-file", p + "/ca.crt",
            "--v=1"], self.log("kube-controller-manager"))
        sched_cfg = write_kubeconfig(os.path.join(self.dir, "scheduler.kubeconfig"), self.url, p + "/ca.crt",
                                     p + "/scheduler.crt", p + "/scheduler.key")
        self.procs["kube-scheduler"] = spawn([
            self.binary("kube-scheduler"), "--kubeconfig", sched_cfg,
            "--authentication-kubeconfig", sched_cfg, "--authorization-kubeconfig", sched_cfg,
            "--bind-address", "127.0.0.1", "--secure-port", str(sched_port), "--leader-elect=false",
            "--v=1"], self.log("kube-scheduler"))
        # Ready: the default ServiceAccount exists (the controllers run).
        lib.wait_until(lambda: self.api.exists("/api/v1/namespaces/default/serviceaccounts/default"),
                       120, "kube-controller-manager to create the default ServiceAccount")
        self.started_in = time.monotonic() - t0
        return self

    def wait_ready(self, path, what, timeout):
        def ready():
            for name, pr in self.procs.items():
                if pr.poll() is not None:
                    raise RuntimeError("%s exited %s; its log:\n%s" % (name, pr.returncode, tail(pr.log_path)))
            try:
                return self.api.raw("GET", path)[0] == 200
            except OSError:
                return False
        lib.wait_until(ready, timeout, what + " " + path)

    def check_alive(self):
        for name, pr in self.procs.items():
            if pr.poll() is not None:
                raise RuntimeError("%s exited %s; its log:\n%s" % (name, pr.returncode, tail(pr.log_path)))

    def kubectl(self, *args, input=None, kubeconfig=None, check=False):
        """Run the pinned kubectl; returns the CompletedProcess."""
        p = subprocess.run([self.binary("kubectl"), "--kubeconfig", kubeconfig or self.admin_kubeconfig]
                           + list(args), input=input, capture_output=True, text=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError("kubectl %s: %s" % (" ".join(args), p.stderr.strip()))
        return p

    def etcd(self, path, body):
        """One call of etcd's JSON gateway (/v3/kv/...)."""
        c = http.client.HTTPConnection("127.0.0.1", urllib.parse.urlsplit(self.etcd_url).port, timeout=10)
        try:
            c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def etcd_compact(self):
        """Compact etcd to its current revision as kube-apiserver's compactor
        does (every 5 minutes): record the revision under compact_rev_key,
        which every API server watches (its watch cache drops older
        snapshots within 15 s), then compact.  Returns the revision."""
        key = base64.b64encode(b"compact_rev_key").decode()
        rev = int(self.etcd("/v3/kv/range", {"key": key})["header"]["revision"])
        self.etcd("/v3/kv/put", {"key": key, "value": base64.b64encode(str(rev).encode()).decode()})
        self.etcd("/v3/kv/compaction", {"revision": str(rev), "physical": True})
        return rev

    def metrics(self):
        """kube-apiserver's own /metrics text."""
        status, text = self.api.raw("GET", "/metrics")
        return text if status == 200 else ""

    def stop(self):
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if name in self.procs:
                kill(self.procs.pop(name))


def tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


# ---- nodes and the test kubelet --------------------------------------------

def now_rfc3339(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def add_node(api, name, labels=None, taints=None):
    """A Ready Node with capacity.  The TaintNodesByCondition admission plugin
    adds node.kubernetes.io/not-ready at creation; with no node-lifecycle
    controller here, the test takes it off once the node reports Ready, as
    that controller would."""
    lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    lab.update(labels or {})
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": name, "labels": lab},
                                 "spec": {"taints": taints or []}})
    cap = {"cpu": "16", "memory": "64Gi", "pods": "2000", "ephemeral-storage": "200Gi"}
    t = now_rfc3339()
    api.call("PATCH", "/api/v1/nodes/%s/status" % name, {"status": {
        "capacity": cap, "allocatable": cap,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "kubelet is posting ready status", "lastHeartbeatTime": t,
                        "lastTransitionTime": t}],
        "nodeInfo": {"kubeletVersion": "v1.37.2", "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "containerd://2.1.0", "kernelVersion": "6.1.0",
                     "osImage": "Debian GNU/Linux 12", "machineID": "", "systemUUID": "", "bootID": "",
                     "kubeProxyVersion": ""},
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}]}},
        ctype="application/merge-patch+json")
    node = api.get("/api/v1/nodes/" + name)
    keep = [x for x in node["spec"].get("taints", []) if x["key"] != "node.kubernetes.io/not-ready"]
    api.call("PATCH", "/api/v1/nodes/" + name, {"spec": {"taints": keep or None}},
             ctype="application/merge-patch+json")


def container_names(pod):
    return ([("init", c) for c in pod["spec"].get("initContainers", [])] +
            [("main", c) for c in pod["spec"]["containers"]])


class Kubelet:
    """Plays the kubelet of the fake nodes through the API: writes pod status,
    and finishes the deletion of a bound pod (a kubelet deletes it with grace 0
    once its containers stopped; without one it stays Terminating)."""

    def __init__(self, api, nodes):
        self.api = api
        self.nodes = set(nodes)
        self.stopping = threading.Event()
        self.finished = []        # (ns, name) of pods whose deletion it finished
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping.wait(0.25):
            try:
                self.finish_deletions()
            except Exception:  # noqa: BLE001 - the API is restarting or gone; try again
                pass

    def finish_deletions(self):
        pods = self.api.get("/api/v1/pods", fieldSelector="spec.nodeName!=")["items"]
        for p in pods:
            m = p["metadata"]
            if m.get("deletionTimestamp") and p["spec"].get("nodeName") in self.nodes:
                self.api.delete(ns_path("pods", m["namespace"], m["name"]),
                                {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                 "preconditions": {"uid": m["uid"]}})
                self.finished.append((m["namespace"], m["name"]))

    def stop(self):
        self.stopping.set()
        self.thread.join(5)

    def set_status(self, ns, name, phase, started_ago=600, finished_ago=None, exit_code=0,
                   reason=None, waiting=None, terminated=None, running=None, last_oom_ago=None):
        """Give a pod the status a kubelet would write.

        phase Running: every container running, except those in `terminated`
        (names, finished `finished_ago` seconds ago) and `waiting` ({name: reason});
        with last_oom_ago, the agent container restarted after an OOM kill that
        long ago (its lastState, restartCount 1).
        phase Succeeded/Failed: every container terminated `finished_ago` ago
        with exit_code (a Failed pod: 1 unless given) and `reason`.
        phase Pending: containers waiting with the reasons in `waiting`.
        """
        pod = self.api.get(ns_path("pods", ns, name))
        now = time.time()
        start = now_rfc3339(now - started_ago)
        fin = now_rfc3339(now - (finished_ago or 0))
        waiting = waiting or {}
        terminated = set(terminated or [])
        init_st, main_st = [], []
        for kind, c in container_names(pod):
            st = {"name": c["name"], "image": c["image"], "imageID": "", "restartCount": 0,
                  "ready": False, "started": False}
            if c["name"] in waiting:
                st["state"] = {"waiting": {"reason": waiting[c["name"]],
                                           "message": "Back-off pulling image \"%s\"" % c["image"]}}
            elif kind == "init" and phase != "Pending":
                st["state"] = {"terminated": {"exitCode": 0, "reason": "Completed",
                                              "startedAt": start, "finishedAt": start,
                                              "containerID": "containerd://%032x" % abs(hash(c["name"]))}}
            elif phase in ("Succeeded", "Failed") or c["name"] in terminated:
                code = exit_code if phase != "Failed" or exit_code else 1
                st["state"] = {"terminated": {"exitCode": code,
                                              "reason": reason or ("Completed" if code == 0 else "Error"),
                                              "startedAt": start, "finishedAt": fin,
                                              "containerID": "containerd://%032x" % abs(hash(c["name"]))}}
            elif phase == "Running":
                st.update({"ready": True, "started": True,
                           "state": {"running": {"startedAt": start}},
                           "containerID": "containerd://%032x" % abs(hash(c["name"]))})
                if last_oom_ago is not None and c["name"] == "agent":
                    st["state"]["running"]["startedAt"] = now_rfc3339(now - last_oom_ago + 1)
                    st["lastState"] = {"terminated": {
                        "exitCode": 137, "reason": "OOMKilled", "startedAt": start,
                        "finishedAt": now_rfc3339(now - last_oom_ago),
                        "containerID": "containerd://%032x" % abs(hash(c["name"] + "-0"))}}
                    st["restartCount"] = 1
            else:
                st["state"] = {"waiting": {"reason": "ContainerCreating"}}
            (init_st if kind == "init" else main_st).append(st)
        ready = "True" if phase == "Running" and not terminated and not waiting else "False"
        conds = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": start},
                 {"type": "Initialized", "status": "True" if phase != "Pending" else "False",
                  "lastTransitionTime": start},
                 {"type": "ContainersReady", "status": ready, "lastTransitionTime": start},
                 {"type": "Ready", "status": ready, "lastTransitionTime": start}]
        status = {"phase": phase, "conditions": conds, "hostIP": "127.0.0.1", "podIP": "10.244.0.%d" % (hash(name) % 250 + 2),
                  "startTime": start, "containerStatuses": main_st}
        if init_st:
            status["initContainerStatuses"] = init_st
        if reason and phase == "Failed" and reason in ("Evicted", "DeadlineExceeded"):
            status["reason"] = reason
        return self.api.call("PUT", ns_path("pods", ns, name) + "/status",
                             dict(pod, status=status))


# ---- a recording proxy -----------------------------------------------------

class ServicePort:
    """Plays kube-proxy for one Service port: connections to the ClusterIP's
    port are forwarded to the same address's targetPort, where a test runs
    the Service's backend (as its container would, unprivileged, on the
    container port)."""

    def __init__(self, ip, port, target_port):
        self.target = (ip, target_port)
        self.listener = socket.create_server((ip, port), reuse_port=False)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client):
        try:
            backend = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()
            return
        backend.settimeout(None)
        lib.relay(client, backend)

    def stop(self):
        self.stopping = True
        self.listener.close()


class Proxy:
    """A TLS proxy between a janitor and kube-apiserver: records every call
    (method, path, query, status, bytes) so tests can check what the real API
    server allowed; on_request and on_response let a test act between a
    paged list's pages (an etcd compaction: the real 410 Expired)."""

    def __init__(self, certdir, upstream_url, upstream_ca, on_request=None, on_response=None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        outer = self
        self.calls = []
        self.lock = threading.Lock()
        self.on_request = on_request
        self.on_response = on_response
        up = urllib.parse.urlsplit(upstream_url)
        up_ctx = ssl.create_default_context(cafile=upstream_ca)

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else None
                u = urllib.parse.urlsplit(self.path)
                q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query, keep_blank_values=True).items()}
                if outer.on_request:
                    outer.on_request(self.command, u.path, q)
                c = http.client.HTTPSConnection(up.hostname, up.port, context=up_ctx, timeout=60)
                hdrs = {k: v for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection", "content-length", "accept-encoding")}
                c.request(self.command, self.path, body=body, headers=hdrs)
                r = c.getresponse()
                data = r.read()
                c.close()
                with outer.lock:
                    outer.calls.append({"method": self.command, "path": u.path, "query": q,
                                        "status": r.status, "bytes_in": len(data),
                                        "bytes_out": len(body or b""), "body": data[:2000]})
                if outer.on_response:
                    outer.on_response(self.command, u.path, q, r.status, data)
                self.send_response(r.status)
                for k, v in r.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _do

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(certdir, "tls.crt"), os.path.join(certdir, "tls.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def take(self):
        with self.lock:
            out = list(self.calls)
            self.calls.clear()
        return out

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)
