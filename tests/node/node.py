#!/usr/bin/python3
"""A real Kubernetes node on this machine, for the real-node suite.

kubelet (built from the pinned release's module into the control plane's
cache) over Debian's containerd, runc and CNI plugins, started and stopped
by this fixture, every process by its PID.  What it changes on the host is
recorded before and put back when it stops, also after a failure:

  - an interface for the node's IP (kubelet refuses a loopback one: a bridge
    without ports, as this kernel has no dummy driver) and
    the CNI bridge, both created here and deleted;
  - the sysctls kubelet and the bridge set (vm.overcommit_memory,
    kernel.panic, kernel.panic_on_oops, kernel.keys.*, net.ipv4.ip_forward);
  - the iptables chains kubelet adds (KUBE-*), removed when they were not
    there before;
  - the fixed paths kubelet creates (/var/lib/kubelet/device-plugins,
    /var/log/containers, /var/log/pods), removed when they were not there;
  - mounts under its own directories, unmounted.

Fixture facts: ../shared/fixtures/kubernetes/README.md section 11 (cgroup
v1 with cgroupfs, restrict_oom_score_adj, no loopback node IP, images
without a registry, hostNetwork for pods that reach 127.0.0.1).
"""
import json
import os
import shlex
import shutil
import subprocess
import time

import cluster
import lib

NODE_NAME = "node-real"
NODE_IF = "pw-node0"
NODE_IP = "10.251.0.1"
BRIDGE = "pw-cni0"
POD_CIDR = "10.252.0.0/24"
PAUSE_IMAGE = "pipewarden.test/pause:1"
SYSCTLS = ["vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops", "kernel.keys.root_maxkeys",
           "kernel.keys.root_maxbytes", "net.ipv4.ip_forward"]
FIXED_PATHS = ["/var/lib/kubelet", "/var/log/containers", "/var/log/pods"]


def sh(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


def sysctl_get(key):
    with open("/proc/sys/" + key.replace(".", "/")) as f:
        return f.read().strip()


def sysctl_set(key, value):
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(value)


class HostState:
    """What the node may change on the host, read before it starts."""

    def __init__(self):
        self.sysctls = {k: sysctl_get(k) for k in SYSCTLS if os.path.exists("/proc/sys/" + k.replace(".", "/"))}
        self.paths = {p: os.path.exists(p) for p in FIXED_PATHS}
        self.chains = self.iptables_chains()

    @staticmethod
    def iptables_chains():
        out = set()
        for table in ("filter", "nat", "mangle"):
            p = sh("iptables-save", "-t", table, check=False)
            out |= {(table, l[1:].split()[0]) for l in p.stdout.splitlines() if l.startswith(":")}
        return out

    def restore(self, mounts_under):
        """Put everything back; never raises (it runs on the way out)."""
        problems = []
        for m in reversed(self.mounts(mounts_under)):
            if sh("umount", "-l", m, check=False).returncode != 0:
                problems.append("umount " + m)
        new = self.iptables_chains() - self.chains
        for table in sorted({t for t, _ in new}):
            names = {c for t, c in new if t == table}
            # First the jumps to them from chains that were there before.
            for line in sh("iptables-save", "-t", table, check=False).stdout.splitlines():
                parts = shlex.split(line)
                if parts[:1] == ["-A"] and parts[1] not in names and "-j" in parts and \
                        parts[parts.index("-j") + 1] in names:
                    sh("iptables", "-t", table, "-D", *parts[1:], check=False)
            for chain in names:
                sh("iptables", "-t", table, "-F", chain, check=False)
            for chain in names:
                if sh("iptables", "-t", table, "-X", chain, check=False).returncode != 0:
                    problems.append("iptables -X %s %s" % (table, chain))
        for k, v in self.sysctls.items():
            try:
                if sysctl_get(k) != v:
                    sysctl_set(k, v)
            except OSError as e:
                problems.append("sysctl %s: %s" % (k, e))
        for p, existed in self.paths.items():
            if not existed and os.path.exists(p):
                shutil.rmtree(p, ignore_errors=True)
        for link in (BRIDGE, NODE_IF):
            sh("ip", "link", "del", link, check=False)
        return problems

    @staticmethod
    def mounts(under):
        with open("/proc/self/mounts") as f:
            return [l.split()[1] for l in f if l.split()[1].startswith(under)]


class Node:
    """containerd and kubelet for one Node registered with the control plane."""

    def __init__(self, cp, workdir, images=()):
        self.cp = cp
        self.dir = workdir
        self.images = images          # docker-archive tars to import
        self.procs = {}
        self.host = None

    def start(self):
        t0 = time.monotonic()
        self.host = HostState()
        os.makedirs(self.dir, exist_ok=True)
        # (a bridge without ports: this kernel has no dummy driver)
        sh("ip", "link", "add", NODE_IF, "type", "bridge")
        sh("ip", "addr", "add", NODE_IP + "/32", "dev", NODE_IF)
        sh("ip", "link", "set", NODE_IF, "up")
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.start_containerd()
        for tar in self.images:
            self.ctr("images", "import", "--all-platforms", tar)
        self.start_kubelet()
        lib.wait_until(self.ready, 90, "node %s Ready" % NODE_NAME)
        self.started_in = time.monotonic() - t0
        return self

    def ctr(self, *args):
        return sh("ctr", "--address", self.sock, "--namespace", "k8s.io", *args)

    def start_containerd(self):
        cni = os.path.join(self.dir, "cni")
        os.makedirs(cni, exist_ok=True)
        with open(os.path.join(cni, "10-pipewarden.conflist"), "w") as f:
            json.dump({"cniVersion": "1.0.0", "name": "pipewarden-test", "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                          "dataDir": os.path.join(self.dir, "cni-ipam")}},
                {"type": "loopback"}]}, f)
        cfg = os.path.join(self.dir, "containerd.toml")
        with open(cfg, "w") as f:
            f.write('''version = 2
root = "%(d)s/containerd/root"
state = "%(d)s/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "%(sock)s"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%(pause)s"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "%(cni)s"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
''' % {"d": self.dir, "sock": self.sock, "pause": PAUSE_IMAGE, "cni": cni})
        self.procs["containerd"] = cluster.spawn(["containerd", "--config", cfg],
                                                 os.path.join(self.dir, "containerd.log"))
        lib.wait_until(lambda: os.path.exists(self.sock) and
                       sh("ctr", "--address", self.sock, "version", check=False).returncode == 0,
                       30, "containerd")

    def start_kubelet(self):
        pki = self.cp.pki
        name = "kubelet"
        cluster._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                         "-out", "%s/%s.key" % (self.dir, name))
        cluster._openssl("req", "-new", "-key", "%s/%s.key" % (self.dir, name),
                         "-subj", "/O=system:nodes/CN=system:node:" + NODE_NAME,
                         "-out", "%s/%s.csr" % (self.dir, name))
        with open("%s/%s.ext" % (self.dir, name), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:%s\n" % NODE_IP)
        cluster._openssl("x509", "-req", "-in", "%s/%s.csr" % (self.dir, name), "-CA", pki + "/ca.crt",
                         "-CAkey", pki + "/ca.key", "-CAcreateserial", "-days", "30", "-sha256",
                         "-extfile", "%s/%s.ext" % (self.dir, name), "-out", "%s/%s.crt" % (self.dir, name))
        kc = cluster.write_kubeconfig(os.path.join(self.dir, "kubelet.kubeconfig"), self.cp.url,
                                      pki + "/ca.crt", self.dir + "/kubelet.crt", self.dir + "/kubelet.key")
        port, healthz = cluster.free_ports(2)
        cfg = {"apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
               "address": NODE_IP, "port": port, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1",
               "healthzPort": healthz, "cgroupDriver": "cgroupfs", "failCgroupV1": False,
               "cgroupsPerQOS": False, "enforceNodeAllocatable": [], "failSwapOn": False,
               "containerRuntimeEndpoint": "unix://" + self.sock, "resolvConf": "",
               "podLogsDir": os.path.join(self.dir, "pod-logs"),
               "tlsCertFile": self.dir + "/kubelet.crt", "tlsPrivateKeyFile": self.dir + "/kubelet.key",
               "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                                  "x509": {"clientCAFile": pki + "/ca.crt"}},
               "authorization": {"mode": "AlwaysAllow"},
               "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
               "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
               "serializeImagePulls": False, "registerNode": True,
               "nodeStatusUpdateFrequency": "2s", "syncFrequency": "5s",
               "fileCheckFrequency": "5s", "shutdownGracePeriod": "0s"}
        path = os.path.join(self.dir, "kubelet.yaml")
        with open(path, "w") as f:
            json.dump(cfg, f)
        self.procs["kubelet"] = cluster.spawn([
            self.cp.binary("kubelet"), "--config", path, "--kubeconfig", kc,
            "--root-dir", os.path.join(self.dir, "kubelet"), "--hostname-override", NODE_NAME,
            "--node-ip", NODE_IP, "--node-labels", "workload=ci", "--v=1"],
            os.path.join(self.dir, "kubelet.log"))

    def ready(self):
        try:
            n = self.cp.api.get("/api/v1/nodes/" + NODE_NAME)
        except cluster.ApiError:
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))

    def stop(self):
        """Stop kubelet, every container, containerd; put the host back."""
        problems = []
        if "kubelet" in self.procs:
            cluster.kill(self.procs.pop("kubelet"))
        if "containerd" in self.procs:
            # Every pod sandbox and container it runs goes with its task.
            p = sh("ctr", "--address", self.sock, "--namespace", "k8s.io", "tasks", "ls", "-q", check=False)
            for cid in p.stdout.split():
                sh("ctr", "--address", self.sock, "--namespace", "k8s.io", "tasks", "kill", "-s",
                   "SIGKILL", cid, check=False)
            time.sleep(1)
            cluster.kill(self.procs.pop("containerd"))
            # The runc shims are containerd's children in their own sessions.
            sh("pkill", "-f", "containerd-shim-runc-v2 -namespace k8s.io -id .* -address " + self.sock,
               check=False)
        if self.host is not None:
            problems = self.host.restore(self.dir)
        return problems


def oci_image(rootfs, ref, out_tar, entrypoint, env=(), workdir="/"):
    """A one-layer image of rootfs (umoci, skopeo: no engine, no registry),
    written as a docker-archive tagged ref for `ctr images import`."""
    d = out_tar + ".oci"
    shutil.rmtree(d, ignore_errors=True)
    tag = ref.rsplit(":", 1)[1]
    sh("umoci", "init", "--layout", d)
    sh("umoci", "new", "--image", "%s:%s" % (d, tag))
    bundle = out_tar + ".bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    sh("umoci", "unpack", "--image", "%s:%s" % (d, tag), bundle)
    os.rmdir(os.path.join(bundle, "rootfs"))
    shutil.copytree(rootfs, os.path.join(bundle, "rootfs"), symlinks=True)
    sh("umoci", "repack", "--image", "%s:%s" % (d, tag), bundle)
    cfg = ["umoci", "config", "--image", "%s:%s" % (d, tag), "--architecture", "amd64", "--os", "linux",
           "--config.workingdir", workdir]
    for e in entrypoint:
        cfg += ["--config.entrypoint", e]
    for e in env:
        cfg += ["--config.env", e]
    sh(*cfg)
    if os.path.exists(out_tar):
        os.unlink(out_tar)
    sh("skopeo", "copy", "--quiet", "oci:%s:%s" % (d, tag), "docker-archive:%s:%s" % (out_tar, ref))
    shutil.rmtree(bundle, ignore_errors=True)
    shutil.rmtree(d, ignore_errors=True)
    return out_tar


def pause_image(workdir):
    """The sandbox image: tests/node/pause.c, static."""
    root = os.path.join(workdir, "pause-rootfs")
    os.makedirs(root, exist_ok=True)
    sh("gcc", "-static", "-O2", "-o", os.path.join(root, "pause"),
       os.path.join(os.path.dirname(os.path.abspath(__file__)), "pause.c"))
    return oci_image(root, PAUSE_IMAGE, os.path.join(workdir, "pause.tar"), ["/pause"])


class ControlPlane(cluster.ControlPlane):
    """The cluster suite's control plane, with the controllers a real node
    needs: the node lifecycle controller removes the not-ready taint a new
    node registers with (and taints a node whose kubelet stops); the
    EndpointSlice controller and kube-apiserver's endpoint routing let it
    call the chart's webhook Service at its pod (a hostNetwork pod on the
    node's address): with no kube-proxy here, nothing forwards the
    Service's port on its ClusterIP to the pod."""
    CONTROLLERS = cluster.ControlPlane.CONTROLLERS + ["node-lifecycle-controller", "taint-eviction-controller",
                                                      "endpointslice-controller"]
    APISERVER_FLAGS = ["--enable-aggregator-routing=true"]


AGENT_IMAGE = "pipewarden.test/azp-agent:1"


def agent_image(workdir, ca_file):
    """The agent image: Debian's python3 (the interpreter, its standard
    library and the shared libraries they load) and tests/node/agent.py as
    the entrypoint; the test's CA is the image's trust store."""
    root = os.path.join(workdir, "agent-rootfs")
    shutil.rmtree(root, ignore_errors=True)
    here = os.path.dirname(os.path.abspath(__file__))
    py = os.path.realpath("/usr/bin/python3")
    ver = os.path.basename(py)                        # python3.11
    stdlib = "/usr/lib/" + ver
    skip = shutil.ignore_patterns("test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip",
                                  "__pycache__", "lib2to3", "pydoc_data", "site-packages", "dist-packages")
    shutil.copytree(stdlib, root + stdlib, ignore=skip, symlinks=True)
    os.makedirs(root + "/usr/bin")
    shutil.copy(py, root + "/usr/bin/python3")
    objs = [py] + [os.path.join(dp, f) for dp, _, fs in os.walk(root + stdlib + "/lib-dynload") for f in fs
                   if f.endswith(".so")]
    # libgcc_s is not linked but loaded by glibc when a thread exits
    # (pthread_exit's unwinder): without it python aborts at exit.
    libs = {l for l in ("/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",) if os.path.exists(l)}
    for o in objs:
        for line in sh("ldd", o, check=False).stdout.splitlines():
            parts = line.split()
            if "=>" in parts and len(parts) > 2 and parts[2].startswith("/"):
                libs.add(parts[2])
            elif parts and parts[0].startswith("/"):
                libs.add(parts[0])
    for lib_ in libs:
        dest = root + ("/usr" + lib_ if not lib_.startswith("/usr/") else lib_)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy(os.path.realpath(lib_), dest)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64")):
        os.makedirs(os.path.join(root, target), exist_ok=True)
        os.symlink(target, os.path.join(root, link))
    for d in ("etc/ssl/certs", "usr/lib/ssl", "tmp"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy(ca_file, os.path.join(root, "etc/ssl/certs/ca-certificates.crt"))
    shutil.copy(ca_file, os.path.join(root, "usr/lib/ssl/cert.pem"))
    shutil.copy(os.path.join(here, "agent.py"), os.path.join(root, "agent.py"))
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/false\n")
    return oci_image(root, AGENT_IMAGE, os.path.join(workdir, "agent.tar"),
                     ["/usr/bin/python3", "-u", "/agent.py"], env=["PATH=/usr/bin"])


def keda_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    return subprocess.run(["sh", os.path.join(here, "keda", "build.sh"), "--print-dir"], capture_output=True,
                          text=True, check=True).stdout.strip()


class Keda:
    """The real KEDA operator, out of cluster (fixture fact 11.10): its CRDs
    from the module, --kubeconfig, no leader election or certificate
    rotation, its ports on loopback, the scalers' CA (the simulator's) in
    --ca-dir."""

    def __init__(self, cp, workdir, certdir, ca_file):
        self.cp, self.dir = cp, workdir
        self.bin = os.path.join(keda_dir(), "keda-operator")
        if not os.access(self.bin, os.X_OK):
            raise RuntimeError("%s is not built: run tests/node/keda/build.sh" % self.bin)
        os.makedirs(workdir, exist_ok=True)
        self.certdir = certdir
        self.ca_dir = os.path.join(workdir, "ca")
        os.makedirs(self.ca_dir, exist_ok=True)
        shutil.copy(ca_file, os.path.join(self.ca_dir, "ca.crt"))
        self.proc = None

    def start(self):
        crd = os.path.join(keda_dir(), "crd")
        p = self.cp.kubectl("apply", "--server-side", "-f", crd)
        if p.returncode != 0:
            raise RuntimeError("KEDA's CRDs: " + p.stderr[-600:])
        self.cp.api.call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": "keda"}}, ok=(201, 409))
        for plural in ("scaledjobs", "triggerauthentications"):     # established and served
            lib.wait_until(lambda plural=plural: self.cp.api.exists("/apis/keda.sh/v1alpha1/" + plural),
                           30, "KEDA's %s served" % plural)
        metrics, probe, service = cluster.free_ports(3)
        env = dict(os.environ, WATCH_NAMESPACE="", KEDA_CLUSTER_OBJECT_NAMESPACE="keda", POD_NAMESPACE="keda",
                   KUBECONFIG=self.cp.admin_kubeconfig)
        self.proc = cluster.spawn([
            self.bin, "--kubeconfig", self.cp.admin_kubeconfig, "--leader-elect=false",
            "--enable-cert-rotation=false", "--cert-dir", self.certdir, "--ca-dir", self.ca_dir,
            "--metrics-bind-address", "127.0.0.1:%d" % metrics,
            "--health-probe-bind-address", "127.0.0.1:%d" % probe,
            "--metrics-service-bind-address", "127.0.0.1:%d" % service,
            "--enable-webhook-patching=false", "--enable-apiservice-patching=false", "--zap-log-level=info"],
            os.path.join(self.dir, "keda.log"), env=env)
        lib.wait_until(lambda: lib.port_open(probe) or self.proc.poll() is not None, 60, "KEDA's probe port")
        if self.proc.poll() is not None:
            raise RuntimeError("KEDA exited: " + cluster.tail(os.path.join(self.dir, "keda.log")))
        return self

    def log(self):
        with open(os.path.join(self.dir, "keda.log")) as f:
            return f.read()

    def stop(self):
        if self.proc is not None:
            cluster.kill(self.proc)
            self.proc = None
