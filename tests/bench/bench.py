#!/usr/bin/python3
"""make bench: the webhook against its TLS ceiling, and the janitor at scale.

The server runs on CPU 1 and the load generator on CPU 0 (taskset); every
figure of the webhook is also given as a ratio to the ceiling measured in
the same run, on the same machine.  The ceiling is a minimal libmicrohttpd
HTTPS server (same GnuTLS, certificate and single polling thread) that reads
the body and answers a fixed, real AdmissionReview response.

Every response is checked: keep-alive runs require as many 2xx as requests
and the webhook's pipewarden_webhook_requests_total{result="patched"} to
grow by exactly that many; the new-connection client checks each answer
for "allowed":true and a patch.  Figures go to stdout and bench/results.md.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import sim  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
ARGS = None


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Peak(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)


def patched(metrics_port):
    if metrics_port is None:
        return None
    text = lib.http_get(metrics_port, "/metrics")[1]
    m = re.search(r'pipewarden_webhook_requests_total\{result="patched"\} (\d+)', text)
    return int(m.group(1))


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else 0


def h2load(port, body, conns, n, tmp):
    log = os.path.join(tmp, "h2load.log")
    # h2load appends to --log-file: without this, every run's latencies
    # would include all the runs before it (the ceiling's c=64 run among them).
    if os.path.exists(log):
        os.unlink(log)
    cmd = ["taskset", "-c", "0", "timeout", "120", "h2load", "--h1", "-n", str(n), "-c", str(conns),
           "-m", "1", "-t", "1", "-d", body, "-H", "Content-Type: application/json",
           "--log-file", log, "https://127.0.0.1:%d/mutate?timeout=10s" % port]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = p.stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    ok = int(re.search(r"status codes: (\d+) 2xx", out).group(1))
    with open(log) as f:
        lat = [int(l.split("\t")[2]) / 1000.0 for l in f if l.strip()]
    if len(lat) != n:
        raise SystemExit("h2load log has %d latencies for %d requests" % (len(lat), n))
    return rps, ok, percentile(lat, 0.5), percentile(lat, 0.99)


def newconn(port, ca, body, threads, seconds):
    p = subprocess.run(["taskset", "-c", "0", os.path.join(ARGS.build, "bench", "newconn"),
                        str(port), ca, body, str(threads), str(seconds)],
                       capture_output=True, text=True)
    kv = dict(x.split("=") for x in p.stdout.split())
    n = int(kv["requests"])
    return n / float(kv["seconds"]), n, int(kv["bad"]), float(kv["p50_ms"]), float(kv["p99_ms"])


def ceiling_cmd(mode, port, certs, answer):
    return [os.path.join(ARGS.build, "bench", "ceiling"), mode, str(port), os.path.join(certs, "tls.crt"),
            os.path.join(certs, "tls.key"), answer]


def start(cmd, port):
    proc = subprocess.Popen(["taskset", "-c", "1"] + cmd, stderr=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL)
    lib.wait_until(lambda: lib.port_open(port), 20, "server port")
    time.sleep(0.3)
    return proc


def measure(name, cmd, port, metrics_port, certs, body, tmp, rows, quick):
    """Keep-alive runs and RSS; the new-connection runs are interleaved
    with the other server's (newconn_rounds)."""
    proc = start(cmd, port)
    pid = proc.pid
    # taskset execs the server: same pid.
    result = {"name": name, "rss_idle": rss_kib(pid)}
    runs = [("keep-alive", 1, 4000 if quick else 20000), ("keep-alive", 8, 10000 if quick else 60000),
            ("keep-alive", 64, 10000 if quick else 60000)]
    for mode, c, n in runs:
        before_cpu, before_ok = cpu_seconds(pid), patched(metrics_port)
        peak = Peak(pid)
        peak.start()
        rps, ok, p50, p99 = h2load(port, body, c, n, tmp)
        peak.stop = True
        peak.join()
        cpu = cpu_seconds(pid) - before_cpu
        checked = ok == n and (metrics_port is None or patched(metrics_port) - before_ok == n)
        rows.append((name, "%s c=%d" % (mode, c), rps, p50, p99, cpu / n * 1e6, checked))
        result[(mode, c)] = rps
        if c == 64:
            result["rss_64"] = peak.peak
    proc.terminate()
    proc.wait()
    return result


def newconn_rounds(servers, certs, body, rows, results, seconds, rounds=3):
    """New-connection runs, the servers taking turns in short rounds: a
    handshake costs ~1 ms of CPU, and this VM's speed drifts by 10-15%
    over tens of seconds, enough to tip a ratio measured in one block each.
    servers: [(name, cmd, port, metrics_port)], all started at once."""
    procs = [start(cmd, port) for _, cmd, port, _ in servers]
    for c in (1, 8):
        tally = {name: [0, 0.0, 0, 0.0, True, [], []] for name, _, _, _ in servers}
        for _ in range(rounds):
            for (name, _, port, mport), proc in zip(servers, procs):
                t = tally[name]
                before_cpu, before_ok = cpu_seconds(proc.pid), patched(mport)
                rps, n, bad, p50, p99 = newconn(port, os.path.join(certs, "ca.crt"), body, c,
                                                seconds / rounds)
                t[0] += n
                t[1] += n / rps if rps else 0
                t[2] += bad
                t[3] += cpu_seconds(proc.pid) - before_cpu
                t[4] = t[4] and bad == 0 and n > 0 and (mport is None or patched(mport) - before_ok == n)
                t[5].append(p50)
                t[6].append(p99)
        for name, _, _, _ in servers:
            n, secs, bad, cpu, checked, p50s, p99s = tally[name]
            rps = n / secs if secs else 0
            rows.append((name, "new TLS conn c=%d" % c, rps, sorted(p50s)[len(p50s) // 2],
                         sorted(p99s)[len(p99s) // 2], cpu / max(n, 1) * 1e6, checked))
            results[name][("new", c)] = rps
    for proc in procs:
        proc.terminate()
        proc.wait()


def drift(cmd, port, body, tmp, total):
    """RSS after the first 10k requests and after `total`, keep-alive c=8."""
    proc = start(cmd, port)
    h2load(port, body, 8, 10000, tmp)
    first = rss_kib(proc.pid)
    done = 10000
    while done < total:
        n = min(200000, total - done)
        h2load(port, body, 8, n, tmp)
        done += n
    last = rss_kib(proc.pid)
    proc.terminate()
    proc.wait()
    return first, last, done


def janitor_bench(tmp, extra=()):
    certs = os.path.join(tmp, "jcerts")
    lib.make_certs(certs)
    kube, ado = sim.KubeSim(certs), sim.AdoSim(certs)
    ado.pools["aks-pool"] = 12
    now = time.time()
    agents = []
    for i in range(20000):
        kind = i % 20
        agents.append(sim.agent(100000 + i, "aks-pool-agents-%05d" % i,
                                status="online" if kind < 8 else "offline",
                                busy=kind in (0, 1, 2, 8), enabled=kind != 9,
                                changed_ago=60 if kind == 10 else 7200,
                                managed=kind != 11, pod_uid="uid-%05d" % i, now=now))
    ado.agents[12] = agents
    for i in range(5000):
        node = "node-a" if i < 500 else "node-%d" % (i % 50)
        phase = "Succeeded" if i % 10 == 0 else "Running"
        kube.add_pod(sim.pod("agent-%05d" % i, node=node, phase=phase, uid="uid-%05d" % i,
                             owner_name="agent-job-%05d" % i,
                             finished_ago=600 if phase == "Succeeded" else None))
    cfg = json.load(open(lib.DEFAULT_CONFIG))
    cfg["organizationUrl"] = ado.url
    cfg["pools"] = ["aks-pool"]
    cfg["janitor"]["maxDeletionsPerCycle"] = 100000
    cfgpath = os.path.join(tmp, "jconfig.json")
    json.dump(cfg, open(cfgpath, "w"))
    open(os.path.join(tmp, "ktoken"), "w").write(kube.token)
    open(os.path.join(tmp, "pat"), "w").write(ado.pat)
    env = dict(os.environ, POD_NAME="bench", POD_NAMESPACE="pipewarden-system",
               AZP_TOKEN_FILE=os.path.join(tmp, "pat"))
    cmd = os.environ.get("BENCH_WRAP", "").split() + [os.path.join(ARGS.build, "bin", "pipewarden-janitor"), "--config", cfgpath, "--once",
           "--node", "node-a", "--kube-api", kube.url, "--kube-token-file", os.path.join(tmp, "ktoken"),
           "--kube-ca", os.path.join(certs, "ca.crt"), "--ado-ca", os.path.join(certs, "ca.crt")] + list(extra)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    # Peak RSS from the janitor's own VmHWM: ru_maxrss of a child also counts
    # the pages of this (large) Python process the child had before exec.
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    hwm = [0]

    def sample():
        while proc.poll() is None:
            try:
                with open("/proc/%d/status" % proc.pid) as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            hwm[0] = max(hwm[0], int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.01)
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    stderr = proc.communicate()[1]
    th.join()
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = argparse.Namespace(returncode=proc.returncode, stderr=stderr)
    done = [json.loads(l) for l in p.stderr.splitlines() if '"cycle done"' in l][-1]
    kinds = {}
    for method, path, q, _, _ in kube.server.requests() + ado.server.requests():
        if "/pods" in path and method == "GET" and "controller-uid" in q.get("labelSelector", ""):
            k = "job pods list"
        elif "/pods" in path and method == "GET":
            k = "pod list page"
        elif "/leases" in path:
            k = "lease %s" % method
        elif "/events" in path:
            k = "event"
        elif method == "DELETE" and "/jobs/" in path:
            k = "delete job"
        elif method == "GET" and "/jobs/" in path:
            k = "get job"
        elif method == "DELETE" and "/pods/" in path:
            k = "delete pod"
        elif path.endswith("/pools"):
            k = "pool lookup"
        elif path.endswith("/agents"):
            k = "agents list"
        elif "/agents/" in path and method == "DELETE":
            k = "delete agent"
        else:
            k = method + " " + path
        kinds[k] = kinds.get(k, 0) + 1
    kube.stop()
    ado.stop()
    return {"rc": p.returncode, "wall": wall, "cpu": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
            "maxrss_mib": hwm[0] / 1024.0, "plan_ms": float(done["planCpuMs"]),
            "pod_deletions": int(done["podDeletions"]), "agent_deletions": int(done["agentDeletions"]),
            "requests": kinds}


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--drift", type=int, default=1000000, help="requests for the RSS drift run")
    ap.add_argument("--janitor-only", action="store_true")
    ap.add_argument("--soak", type=int, default=0, help="only the RSS soak, with this many requests")
    ARGS = ap.parse_args()
    if ARGS.soak:
        with tempfile.TemporaryDirectory() as tmp:
            ec = os.path.join(tmp, "ec")
            lib.make_certs(ec, "ec")
            body = os.path.join(tmp, "review.json")
            with open(body, "w") as f:
                json.dump(json.load(open(os.path.join(lib.ROOT, "tests", "cases", "job-pod-keda.json")))["review"], f)
            port, mport = lib.free_port(), lib.free_port()
            first, last, done = drift([os.path.join(ARGS.build, "bin", "pipewarden-webhook"), "--config",
                                       lib.DEFAULT_CONFIG, "--tls-cert", os.path.join(ec, "tls.crt"),
                                       "--tls-key", os.path.join(ec, "tls.key"), "--port", str(port),
                                       "--metrics-port", str(mport), "--address", "127.0.0.1"],
                                      port, body, tmp, ARGS.soak)
        print("soak: %d requests (keep-alive, 8 connections): RSS %.2f MiB after 10k, %.2f MiB at the end "
              "(%+.2f MiB)" % (done, first / 1024, last / 1024, (last - first) / 1024))
        sys.exit(0 if last - first <= 1024 else 1)
    if ARGS.janitor_only:
        with tempfile.TemporaryDirectory() as tmp:
            print(janitor_bench(tmp))
        return
    out = []

    def say(line=""):
        print(line, flush=True)
        out.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        ec, rsa = os.path.join(tmp, "ec"), os.path.join(tmp, "rsa")
        lib.make_certs(ec, "ec")
        lib.make_certs(rsa, "rsa")
        fixture = os.path.join(lib.SHARED, "fixtures", "kubernetes", "admissionreview-job-pod-create.json")
        body = os.path.join(tmp, "review.json")
        if os.path.exists(fixture):
            src = "../shared fixture admissionreview-job-pod-create.json"
            with open(fixture) as f:
                review = json.load(f)
        else:
            src = "tests/cases/job-pod-keda.json"
            review = json.load(open(os.path.join(lib.ROOT, "tests", "cases", "job-pod-keda.json")))["review"]
        with open(body, "w") as f:
            json.dump(review, f)
        answer = os.path.join(tmp, "answer.json")
        with open(answer, "w") as f:
            f.write(subprocess.run([os.path.join(ARGS.build, "tools", "policy-run"), lib.DEFAULT_CONFIG, body],
                                   capture_output=True, text=True, check=True).stdout.strip())
        say("# pipewarden bench, %s" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        say("machine: %d CPUs (%s), server on CPU 1, load generator on CPU 0; body %d bytes (%s)" % (
            os.cpu_count(), open("/proc/cpuinfo").read().split("model name")[1].split(":")[1].split("\n")[0].strip(),
            os.path.getsize(body), src))
        rows = []
        results = {}
        ec_servers = []
        # The ceiling is libmicrohttpd's fastest mode here, measured now.
        modes = []
        for mode in ("epoll", "pool", "threads"):
            port = lib.free_port()
            proc = start(ceiling_cmd(mode, port, ec, answer), port)
            before = cpu_seconds(proc.pid)
            n = 5000 if ARGS.quick else 30000
            rps, ok, _, _ = h2load(port, body, 8, n, tmp)
            modes.append((rps, mode, (cpu_seconds(proc.pid) - before) / n * 1e6, ok == n))
            proc.terminate()
            proc.wait()
        best = max(m for m in modes if m[3])[1]
        say("ceiling modes, keep-alive c=8: " + ", ".join(
            "%s %.0f req/s %.0f µs CPU/req" % (m, r, cpu) for r, m, cpu, _ in modes) +
            "; the ceiling below is the fastest, %s" % best)
        for name, certs in (("ceiling", ec), ("webhook", ec), ("webhook RSA-2048", rsa)):
            port, mport = lib.free_port(), lib.free_port()
            if name == "ceiling":
                cmd = ceiling_cmd(best, port, certs, answer)
                mp = None
            else:
                cmd = [os.path.join(ARGS.build, "bin", "pipewarden-webhook"), "--config", lib.DEFAULT_CONFIG,
                       "--tls-cert", os.path.join(certs, "tls.crt"), "--tls-key", os.path.join(certs, "tls.key"),
                       "--port", str(port), "--metrics-port", str(mport), "--address", "127.0.0.1"]
                mp = mport
            if name == "webhook RSA-2048":
                proc = start(cmd, port)
                for c in (1, 8):
                    before = cpu_seconds(proc.pid)
                    rps, n, bad, p50, p99 = newconn(port, os.path.join(certs, "ca.crt"), body, c, 2 if ARGS.quick else 5)
                    rows.append((name, "new TLS conn c=%d" % c, rps, p50, p99,
                                 (cpu_seconds(proc.pid) - before) / max(n, 1) * 1e6, bad == 0 and n > 0))
                proc.terminate()
                proc.wait()
                continue
            results[name] = measure(name, cmd, port, mp, certs, body, tmp, rows, ARGS.quick)
            ec_servers.append((name, cmd, port, mp))
            if name == "webhook":
                newconn_rounds(ec_servers, ec, body, rows, results, 2 if ARGS.quick else 6)
        order = ["ceiling", "webhook", "webhook RSA-2048"]
        rows.sort(key=lambda r: (order.index(r[0]), not r[1].startswith("keep"),
                                 int(r[1].rsplit("=", 1)[1])))
        say()
        say("| server | mode | req/s | p50 ms | p99 ms | server CPU µs/req | every response checked |")
        say("|---|---|---:|---:|---:|---:|---|")
        for r in rows:
            say("| %s | %s | %.0f | %.3f | %.3f | %.0f | %s |" % (r[0], r[1], r[2], r[3], r[4], r[5],
                                                                  "yes" if r[6] else "**NO**"))
        c, w = results["ceiling"], results["webhook"]
        say()
        say("| webhook / ceiling (same run) | ratio | target |")
        say("|---|---:|---|")
        for key, label, target in ((("keep-alive", 1), "keep-alive c=1", ""),
                                   (("keep-alive", 8), "keep-alive c=8", ">= 0.5"),
                                   (("keep-alive", 64), "keep-alive c=64", ""),
                                   (("new", 1), "new TLS connection c=1", ">= 0.9"),
                                   (("new", 8), "new TLS connection c=8", ">= 0.9")):
            say("| %s | %.2f | %s |" % (label, w[key] / c[key], target))
        cpu8 = {r[0]: r[5] for r in rows if r[1] == "keep-alive c=8"}
        say("| server CPU per request, keep-alive c=8 | %.2f | <= 2.5 |" % (cpu8["webhook"] / cpu8["ceiling"]))
        p99_8 = [r for r in rows if r[0] == "webhook" and r[1] == "keep-alive c=8"][0][4]
        say()
        say("webhook p99 at 8 keep-alive connections: %.3f ms (target <= 1 ms)" % p99_8)
        say("RSS: ceiling idle %.1f MiB, under 64 connections %.1f MiB; webhook idle %.1f MiB, "
            "under 64 connections %.1f MiB (target <= 12 MiB)" % (
                c["rss_idle"] / 1024, c["rss_64"] / 1024, w["rss_idle"] / 1024, w["rss_64"] / 1024))
        rsa_cpu = [r[5] for r in rows if r[0] == "webhook RSA-2048" and r[1] == "new TLS conn c=8"][0]
        ec_cpu = [r[5] for r in rows if r[0] == "webhook" and r[1] == "new TLS conn c=8"][0]
        say("serving key: RSA-2048 costs %.1fx the server CPU of ECDSA P-256 per new TLS connection" % (rsa_cpu / ec_cpu))
        port, mport = lib.free_port(), lib.free_port()
        total = 100000 if ARGS.quick else ARGS.drift
        first, last, done = drift([os.path.join(ARGS.build, "bin", "pipewarden-webhook"), "--config", lib.DEFAULT_CONFIG,
                                   "--tls-cert", os.path.join(ec, "tls.crt"), "--tls-key", os.path.join(ec, "tls.key"),
                                   "--port", str(port), "--metrics-port", str(mport), "--address", "127.0.0.1"],
                                  port, body, tmp, total)
        say("RSS drift: %.2f MiB after 10k requests, %.2f MiB after %dk (%+.2f MiB; target within 1 MiB)" % (
            first / 1024, last / 1024, done // 1000, (last - first) / 1024))
        j = janitor_bench(tmp)
        say()
        say("janitor --once, 20,000 agents and 5,000 managed pods (500 on its node), against the simulators:")
        say("exit %d; wall %.2f s (mostly the Python simulators); janitor CPU %.2f s; plan %.1f ms CPU "
            "(target <= 100 ms); peak RSS %.1f MiB (target <= 64 MiB); %d pod and %d agent deletions" % (
                j["rc"], j["wall"], j["cpu"], j["plan_ms"], j["maxrss_mib"], j["pod_deletions"], j["agent_deletions"]))
        say("requests: " + ", ".join("%s %d" % kv for kv in sorted(j["requests"].items())))
    os.makedirs(os.path.join(lib.ROOT, "bench"), exist_ok=True)
    with open(os.path.join(lib.ROOT, "bench", "results.md"), "a") as f:
        f.write("\n".join(out) + "\n\n")
    print("\n(appended to bench/results.md)")


if __name__ == "__main__":
    main()
