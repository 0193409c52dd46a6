#!/usr/bin/python3
"""End-to-end tests of bin/pipewarden-webhook: the real binary, real TLS.

Starts the webhook with a fresh CA and serving certificate, then:
golden cases over HTTPS (tests/cases, as run_cases.py checks them), the
bad-input corpus (tests/bad-input, each followed by a valid request), body
limits (413 that reaches a client still sending), slow clients, endpoints
and metrics, config reload (good, bad, ConfigMap symlink swap), certificate
rotation (good and mismatched pairs), SIGTERM with a request in flight,
flags, and that no secret reaches a log line.

usage: test_webhook.py --bin BIN [--results FILE] [--wrapper "valgrind ..."] [--quick]
"""
import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402
import run_cases  # noqa: E402

ARGS = None
SCALE = 1.0     # deadlines grow under valgrind
PAT = "PWTESTPATzzzz9999yyyy8888xxxx7777wwww6666vvvv"


class Webhook:
    """One webhook process with its own certs, config and ports."""

    def __init__(self, tmp, config=None, extra=None, certs=True, env=None):
        self.dir = tempfile.mkdtemp(dir=tmp)
        self.certdir = os.path.join(self.dir, "certs")
        if certs:
            lib.make_certs(self.certdir)
        self.ca = os.path.join(self.certdir, "ca.crt")
        # ConfigMap layout: config.json -> ..data/config.json, ..data -> ..v1
        os.makedirs(os.path.join(self.dir, "cm", "..v1"))
        shutil.copy(config or lib.DEFAULT_CONFIG, os.path.join(self.dir, "cm", "..v1", "config.json"))
        os.symlink("..v1", os.path.join(self.dir, "cm", "..data"))
        os.symlink("..data/config.json", os.path.join(self.dir, "cm", "config.json"))
        self.config = os.path.join(self.dir, "cm", "config.json")
        self.log = os.path.join(self.dir, "webhook.log")
        # A port that free_port() found free can be taken before the webhook
        # binds it (another test's connection): start again on new ports.
        for attempt in range(3):
            self.port = lib.free_port()
            self.metrics_port = lib.free_port()
            if self.metrics_port == self.port:
                continue
            cmd = shlex.split(ARGS.wrapper) if ARGS.wrapper else []
            cmd += [ARGS.bin, "--config", self.config,
                    "--tls-cert", os.path.join(self.certdir, "tls.crt"),
                    "--tls-key", os.path.join(self.certdir, "tls.key"),
                    "--port", str(self.port), "--metrics-port", str(self.metrics_port),
                    "--address", "127.0.0.1"] + (extra or [])
            if not any(a.startswith("--shutdown-delay") for a in extra or []):
                cmd += ["--shutdown-delay", "0"]    # test_shutdown_delay tests it
            e = dict(os.environ, **(env or {}))
            self.logf = open(self.log, "w")
            self.proc = subprocess.Popen(cmd, stderr=self.logf, stdout=subprocess.DEVNULL, env=e)
            lib.wait_until(lambda: lib.port_open(self.metrics_port) or self.proc.poll() is not None,
                           30 * SCALE, "metrics port")
            if self.proc.poll() is None or "Address already in use" not in self.log_text():
                break
            self.logf.close()
        if certs:
            self.wait_ready()

    def wait_ready(self):
        def ready():
            try:
                return self.get("/readyz")[0] == 200
            except (OSError, ssl.SSLError):
                return False
        if not lib.eventually(ready, 30 * SCALE):
            raise TimeoutError("webhook not ready (exit %s): %s" % (self.proc.poll(), self.log_text()[-600:]))

    def post(self, body, path="/mutate?timeout=10s", headers=None):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return lib.https_request(self.port, self.ca, "POST", path, body, h, timeout=30 * SCALE)

    def get(self, path):
        return lib.https_request(self.port, self.ca, "GET", path, timeout=10 * SCALE)

    def metrics(self):
        return lib.http_get(self.metrics_port, "/metrics")[1]

    def metric(self, line_start):
        for line in self.metrics().splitlines():
            if line.startswith(line_start + " "):
                return float(line.split()[-1])
        return None

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def wait_log(self, words, timeout=20):
        lib.wait_until(lambda: words in self.log_text(), timeout * SCALE, "log line: " + words)

    def stop(self, res=None, name="stop"):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60 * SCALE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.logf.close()
        if res is not None:
            res.check(rc == 0, name + ": exits 0 on SIGTERM", "exit %s; log tail: %s" % (
                rc, self.log_text()[-2000:]))
        return rc


def answer_via(hook):
    def answer(config, review):
        status, body = hook.post(json.dumps(review).encode())
        if status != 200:
            raise RuntimeError("HTTP %d: %s" % (status, body[:200]))
        return body.decode()
    return answer


# ---- the tests --------------------------------------------------------------

def test_cases(res, tmp):
    """The golden cases, through the real server: one server per config."""
    cases = lib.load_cases(os.path.join(lib.ROOT, "tests", "cases"))
    if ARGS.quick:
        cases = [c for c in cases if c["name"] in ("job-pod-keda", "literal-azp-token",
                                                     "no-optin", "identity-pat")]
    by_config = {}
    for c in cases:
        by_config.setdefault(json.dumps(c.get("config"), sort_keys=True), []).append(c)
    pods = []
    for group in by_config.values():
        cfg = lib.config_for(group[0], tmp)
        hook = Webhook(tmp, config=cfg)
        pods += run_cases.run_cases(res, answer_via(hook), group, tmp)
        hook.stop(res, "golden cases")
    lib.validate_pods(res, pods)


def valid_review():
    with open(os.path.join(lib.ROOT, "tests", "cases", "job-pod-keda.json")) as f:
        return json.load(f)["review"]


def assert_serving(res, hook, name):
    status, body = hook.post(json.dumps(valid_review()).encode())
    res.check(status == 200 and b'"patch"' in body, name + ": a valid request still succeeds",
              "%d %s" % (status, body[:200]))


def test_bad_input(res, hook):
    corpus = os.path.join(lib.ROOT, "tests", "bad-input")
    names = sorted(os.listdir(corpus))
    if ARGS.quick:
        names = names[::4]
    for name in names:
        with open(os.path.join(corpus, name), "rb") as f:
            body = f.read()
        want = int(name.split("-", 1)[0])
        status, reply = hook.post(body)
        res.check(status == want, "bad input %s: HTTP %d" % (name, want),
                  "got %d %s" % (status, reply[:200]))
        if status == 400:
            try:
                st = json.loads(reply)
                res.check(st.get("kind") == "Status" and st.get("code") == 400 and st.get("message"),
                          "bad input %s: a JSON Status says why" % name)
            except ValueError:
                res.check(False, "bad input %s: JSON error body" % name, reply[:200])
        if status == 200:
            r = json.loads(reply)["response"]
            res.check(r["uid"] == "b0000000-0000-4000-8000-000000000001",
                      "bad input %s: answered for its uid" % name)
        assert_serving(res, hook, "after " + name)
    # Methods and paths.
    res.check(hook.get("/mutate")[0] == 405, "GET /mutate is 405")
    res.check(hook.get("/nope")[0] == 404, "unknown path is 404")
    res.check(hook.post(b"{}", path="/validate")[0] == 404, "POST elsewhere is 404")


def raw_tls(hook):
    ctx = lib.tls_context(hook.ca)
    s = socket.create_connection(("127.0.0.1", hook.port), timeout=30 * SCALE)
    return ctx.wrap_socket(s, server_hostname="localhost")


def read_status(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_body_limits(res, hook):
    review = json.dumps(valid_review()).encode()
    limit = 4 * 1024 * 1024
    padded = review[:-1] + b" " * (limit - len(review)) + b"}"
    status, body = hook.post(padded)
    res.check(len(padded) == limit and status == 200 and b'"patch"' in body,
              "a body of exactly 4 MiB is served", "%d" % status)
    status, body = hook.post(padded + b" ")
    res.check(status == 413, "4 MiB + 1 byte is 413", "%d" % status)
    res.check(b'"code":413' in body, "the 413 carries a JSON Status")
    big = b"x" * (6 * 1024 * 1024)
    status, _ = hook.post(big, headers={"Expect": "100-continue"})
    res.check(status == 413, "6 MiB with Expect: 100-continue is 413")
    # A client that keeps sending after the limit still reads the 413.
    s = raw_tls(hook)
    s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big))
    sent = 0
    while sent < len(big):
        sent += s.send(big[sent:sent + 65536])
    line = read_status(s)
    s.close()
    res.check(line.startswith(b"HTTP/1.1 413"), "a client still sending reads the 413, not a reset",
              repr(line[:80]))
    assert_serving(res, hook, "after the 413s")


def test_slow_clients(res, tmp):
    hook = Webhook(tmp, extra=["--request-timeout", "2"])
    review = json.dumps(valid_review()).encode()
    slow = []
    for _ in range(20):
        s = raw_tls(hook)
        s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                  % len(review) + review[:10])
        slow.append(s)
    t0 = time.monotonic()
    for _ in range(5):
        assert_serving(res, hook, "with 20 dribbling clients")
    res.check(time.monotonic() - t0 < 5 * SCALE, "valid requests are not held up by slow ones")
    # Dribble one byte at a time, slower than the request timeout allows.
    s = slow[0]
    cut = False
    deadline = time.monotonic() + 20 * SCALE
    try:
        i = 10
        while time.monotonic() < deadline:
            s.send(review[i:i + 1])
            i += 1
            time.sleep(0.3)
    except (OSError, ssl.SSLError):
        cut = True
    res.check(cut, "a client that dribbles a body is cut off after --request-timeout")
    for x in slow:
        x.close()
    hook.stop(res, "slow clients")


def tls_from(hook, source):
    """A TLS connection from a given loopback address (127.0.0.0/8 is local)."""
    s = socket.create_connection(("127.0.0.1", hook.port), timeout=30 * SCALE, source_address=(source, 0))
    return lib.tls_context(hook.ca).wrap_socket(s, server_hostname="localhost")


def test_header_dribblers(res, tmp):
    """#14.2: --request-timeout is a deadline from accept to a whole request,
    whatever the client sends meanwhile: ten clients that send a header byte
    every half second hold all ten connection slots only until it passes,
    and a new client is served within kube-apiserver's default 5 s."""
    hook = Webhook(tmp, extra=["--request-timeout", "3", "--max-connections", "10",
                               "--max-connections-per-address", "10", "--idle-timeout", "60"])
    header = b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    slow, cut_after = [], []
    for _ in range(10):
        s = raw_tls(hook)
        s.settimeout(0.2)
        slow.append([s, time.monotonic(), None])
    stop = threading.Event()

    def dribble():
        i = 0
        while not stop.is_set() and any(x[2] is None for x in slow):
            for x in slow:
                if x[2] is not None:
                    continue
                try:
                    x[0].send(header[i % len(header):i % len(header) + 1])
                    if x[0].recv(1) == b"":
                        x[2] = time.monotonic()
                except socket.timeout:
                    pass
                except (OSError, ssl.SSLError):
                    x[2] = time.monotonic()
            i += 1
            stop.wait(0.5)
    t = threading.Thread(target=dribble, daemon=True)
    t.start()
    t0 = time.monotonic()
    served = lib.eventually(lambda: _serves(hook), 30 * SCALE)
    took = time.monotonic() - t0
    stop.set()
    t.join(10)
    res.check(served and took < 5 * SCALE, "ten header dribblers on a limit of 10: a new client is served "
              "within 5 s (%.1f s)" % took)
    held = [x[2] - x[1] for x in slow if x[2] is not None]
    res.check(len(held) == 10 and max(held) < 3 + 2 * SCALE,
              "every dribbler is cut at --request-timeout from accept, though it never went silent "
              "(held %s s)" % ", ".join("%.1f" % h for h in held))
    for x in slow:
        x[0].close()
    hook.stop(res, "header dribblers")


def test_per_address_limit(res, tmp):
    """#14.2: one address cannot take every connection slot."""
    hook = Webhook(tmp, extra=["--max-connections", "20", "--max-connections-per-address", "4",
                               "--request-timeout", "30"])
    held, refused = [], 0
    for _ in range(8):
        try:
            s = tls_from(hook, "127.0.0.1")
            s.settimeout(1.0)
            held.append(s)
        except (OSError, ssl.SSLError):
            refused += 1
    # A connection over the limit is closed at once (during or right after
    # the handshake): count the ones still open.
    open_ = 0
    for s in held:
        try:
            s.send(b"G")
            s.recv(1)           # b"": the server closed it
        except socket.timeout:
            open_ += 1          # still open, waiting for the rest
        except (OSError, ssl.SSLError):
            pass
    res.check(open_ == 4, "--max-connections-per-address 4: 8 connections from one address, 4 kept "
              "(%d kept, %d refused)" % (open_, refused))
    ok = False
    try:
        s = tls_from(hook, "127.0.0.2")
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        ok = read_status(s).startswith(b"HTTP/1.1 200")
        s.close()
    except (OSError, ssl.SSLError):
        pass
    res.check(ok, "another address is still served")
    for s in held:
        s.close()
    hook.stop(res, "per-address limit")


def test_shutdown_delay(res, tmp):
    """#14.5: on SIGTERM /readyz fails at once, and connections are still
    accepted and served for --shutdown-delay (endpoints take that long to
    drop the pod), then no more; exit 0."""
    hook = Webhook(tmp, extra=["--shutdown-delay", "3"])
    t0 = time.monotonic()
    hook.proc.send_signal(signal.SIGTERM)
    hook.wait_log("stopping")
    res.check(hook.get("/readyz")[0] == 503, "SIGTERM: /readyz answers 503 at once")
    st, body = hook.post(json.dumps(valid_review()).encode())
    res.check(st == 200 and time.monotonic() - t0 < 3,
              "SIGTERM: a new connection within the delay is still served (%.1f s)" % (time.monotonic() - t0))
    hook.wait_log("no new connections")
    res.check(time.monotonic() - t0 >= 2.5, "it stops accepting only after the delay (%.1f s)" % (
        time.monotonic() - t0))
    hook.stop(res, "shutdown delay")


# ---- memory: the worst bodies under the 4 MiB limit -----------------------------

BODY_LIMIT = 4 * 1024 * 1024
MEMORY_LIMIT = 64 * 1024 * 1024        # the Deployment's container limit


def worst_bodies():
    """AdmissionReviews of legal shape, each as large as the 4 MiB limit
    allows, built to cost cJSON the most memory per byte: (name, body)."""
    review = valid_review()
    base = json.dumps(review).encode()
    room = BODY_LIMIT - len(base) - 64

    def with_pod(mutate):
        r = json.loads(base)
        mutate(r["request"]["object"])
        return json.dumps(r, separators=(",", ":")).encode()

    def args(pod):
        pod["spec"]["containers"][0]["args"] = [""] * (room // 3)

    def numbers(pod):
        pod["spec"]["containers"][0]["args"] = "@NUMBERS@"

    def objects(pod):
        pod["spec"]["containers"][0]["env"] = [{}] * (room // 3)

    def nested(pod):
        pod["spec"]["containers"][0]["args"] = "@NESTED@"

    def pool(pod):
        pod["metadata"].setdefault("annotations", {})["pipewarden.io/pool"] = "p" * (2 * 1024 * 1024)
    out = [("a million empty args", with_pod(args)), ("two million numbers", None),
           ("a million empty objects", with_pod(objects)), ("arrays 500 deep, repeated", None),
           ("a 2 MiB pool annotation", with_pod(pool))]
    nums = with_pod(numbers)
    out[1] = (out[1][0], nums.replace(b'"@NUMBERS@"', b"[" + b",".join([b"0"] * (room // 2)) + b"]"))
    deep = b"[" * 500 + b"]" * 500
    nest = with_pod(nested)
    out[3] = (out[3][0], nest.replace(b'"@NESTED@"', b"[" + b",".join([deep] * (room // (len(deep) + 1))) + b"]"))
    return out


def peak_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid):
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def test_memory_bounds(res, tmp):
    """#14.1: whatever arrives, the process stays under its container's 64 MiB:
    each worst body alone, then twenty 4 MiB bodies held unfinished at once
    while a valid pod is answered.  Peak RSS as the kernel counts it
    (VmHWM, reset between inputs).  Plain build only: sanitizers and
    valgrind change what memory is."""
    if ARGS.wrapper:
        res.skip("memory bounds", "under valgrind the process's memory is valgrind's")
        return
    # Under AddressSanitizer the answers are checked (the budgets hold
    # there too), not the figures: its quarantine keeps freed memory.
    measure = "libasan" not in subprocess.run(["ldd", ARGS.bin], capture_output=True, text=True).stdout
    if not measure:
        res.skip("peak RSS figures", "an ASan build's memory is not the process's own")
    hook = Webhook(tmp)
    pid = hook.proc.pid
    figures = []
    for name, body in worst_bodies():
        res.check(len(body) <= BODY_LIMIT, "%s: %d bytes, within the 4 MiB limit" % (name, len(body)))
        reset_peak(pid)
        st, answer = hook.post(body)
        peak = peak_rss(pid)
        figures.append("%s %.1f MiB" % (name, peak / 2**20))
        a = json.loads(answer) if st == 200 else {}
        r = a.get("response", {})
        res.check(st == 200 and r.get("allowed") is False and r.get("status", {}).get("code") in (400, 403)
                  and len(r.get("status", {}).get("message", "")) < 1024,
                  "%s: denied with a message, not a 500 (%d)" % (name, st), repr(answer[:300]))
        if measure:
            res.check(peak < MEMORY_LIMIT, "%s: peak RSS %.1f MiB < 64 MiB" % (name, peak / 2**20))
        assert_serving(res, hook, "after " + name)
    # Twenty 4 MiB bodies, each sent but for its last bytes, held open.
    reset_peak(pid)
    body = worst_bodies()[0][1]
    held = []
    for _ in range(20):
        s = raw_tls(hook)
        s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        s.sendall(body[:-10])
        held.append(s)
    assert_serving(res, hook, "with twenty 4 MiB bodies held")
    statuses = []
    for s in held:
        try:
            s.sendall(body[-10:])
            statuses.append(read_status(s)[:12])
        except (OSError, ssl.SSLError):
            statuses.append(b"closed")
    peak = peak_rss(pid)
    figures.append("twenty held %.1f MiB" % (peak / 2**20))
    if measure:
        res.check(peak < MEMORY_LIMIT, "twenty 4 MiB bodies at once: peak RSS %.1f MiB < 64 MiB" % (peak / 2**20))
    res.check(all(x.startswith(b"HTTP/1.1 200") or x.startswith(b"HTTP/1.1 503") for x in statuses),
              "each held body is answered (a denial, or 503 past the global budget), never a 500",
              str(statuses))
    for s in held:
        s.close()
    print("peak RSS: " + "; ".join(figures), flush=True)
    hook.stop(res, "memory bounds")


def test_seams(res, tmp):
    """#21.9, 10, 12: what one client can no longer do to everyone else."""
    measure = not ARGS.wrapper and "libasan" not in subprocess.run(
        ["ldd", ARGS.bin], capture_output=True, text=True).stdout
    hook = Webhook(tmp)
    pid = hook.proc.pid
    # 9: 110,000 unknown pipewarden.io keys in a 2.9 MB pod: one warning,
    # memory bounded, never a 500.
    r = json.loads(json.dumps(valid_review()))
    ann = r["request"]["object"]["metadata"].setdefault("annotations", {})
    for i in range(110000):
        ann["pipewarden.io/x%d" % i] = "1"
    body = json.dumps(r, separators=(",", ":")).encode()
    if measure:
        reset_peak(pid)
    st, answer = hook.post(body)
    a = json.loads(answer) if st == 200 else {}
    warnings = a.get("response", {}).get("warnings", [])
    res.check(st == 200 and len(body) > 2_500_000 and len(warnings) <= 1 and
              (a["response"]["allowed"] is False or "110000 unknown pipewarden.io annotations" in warnings[0]),
              "110,000 unknown pipewarden.io keys: one warning that counts them (or a denial), not a 500",
              "%d %s" % (st, json.dumps(warnings)[:300]))
    if measure:
        peak = peak_rss(pid)
        res.check(peak < MEMORY_LIMIT, "and peak RSS %.1f MiB < 64 MiB" % (peak / 2**20))
    # 10: connections that declare a body and send nothing hold no budget:
    # five declare 4 MiB, sixteen 256 KiB (the share kept for small bodies),
    # 24 MiB in all, the whole budget for bodies.
    held = []
    for n in [BODY_LIMIT - 1] * 5 + [256 * 1024] * 16:
        s = raw_tls(hook)
        s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % n)
        held.append(s)
    # Nothing says when the server has read every held header: ask twenty
    # times, so that the last ones come after it has (a server that charged
    # declared lengths answers those 503).
    statuses = []
    for _ in range(20):
        hook.get("/healthz")
        statuses.append(hook.post(json.dumps(valid_review()).encode())[0])
    res.check(statuses == [200] * 20, "21 connections that declared 24 MiB of bodies and sent none: "
              "each of twenty 2 KB reviews is answered 200", str(statuses))
    for s in held:
        s.close()
    # 12: a pod that did not opt in is admitted unchanged, whatever its size.
    r = json.loads(json.dumps(valid_review()))
    pod = r["request"]["object"]
    pod["metadata"]["annotations"] = {}
    pod["metadata"]["labels"] = {"app": "not-an-agent"}
    pod["spec"]["containers"][0]["args"] = [""] * ((BODY_LIMIT - 4096) // 3)
    body = json.dumps(r, separators=(",", ":")).encode()
    st, answer = hook.post(body)
    a = json.loads(answer) if st == 200 else {}
    res.check(st == 200 and a.get("response", {}).get("allowed") is True and "patch" not in a["response"],
              "a pod that did not opt in, too large to inspect: admitted unchanged", repr(answer[:300]))
    pod["metadata"]["annotations"] = {"pipewarden.io/inject": "true"}
    st, answer = hook.post(json.dumps(r, separators=(",", ":")).encode())
    a = json.loads(answer) if st == 200 else {}
    res.check(st == 200 and a.get("response", {}).get("allowed") is False and
              "memory budget" in a["response"].get("status", {}).get("message", ""),
              "the same pod opted in: denied with a message", repr(answer[:300]))
    pod["metadata"]["annotations"] = {"pipewarden.io\\/inject": "true"}
    raw = json.dumps(r, separators=(",", ":")).encode().replace(b"pipewarden.io\\\\/inject", b"pipewarden.io\\/inject")
    st, answer = hook.post(raw)
    a = json.loads(answer) if st == 200 else {}
    res.check(st == 200 and a.get("response", {}).get("allowed") is False,
              "an opt-in key written with an escape: not sure, so denied (never admitted unmutated)",
              repr(answer[:300]))
    assert_serving(res, hook, "after the seams")
    hook.stop(res, "seams")


def test_endpoints_and_metrics(res, hook):
    res.check(hook.get("/healthz") == (200, b"ok\n"), "GET /healthz over TLS")
    res.check(hook.get("/readyz")[0] == 200, "GET /readyz over TLS")
    res.check(lib.http_get(hook.metrics_port, "/healthz")[0] == 200, "GET /healthz on the metrics port")
    res.check(lib.http_get(hook.metrics_port, "/nope")[0] == 404, "metrics port: unknown path 404")
    text = hook.metrics()
    for name in ("pipewarden_webhook_requests_total", "pipewarden_webhook_request_duration_seconds",
                 "pipewarden_webhook_cert_expiry_timestamp_seconds",
                 "pipewarden_config_reload_errors_total"):
        res.check(("# TYPE %s " % name) in text, "metric " + name)
    for result in ("patched", "unchanged", "denied", "error"):
        res.check('pipewarden_webhook_requests_total{result="%s"}' % result in text,
                  "result series " + result)
    expiry = hook.metric("pipewarden_webhook_cert_expiry_timestamp_seconds")
    res.check(expiry is not None and expiry > time.time() + 300 * 86400,
              "cert expiry metric is the certificate's notAfter")
    before = hook.metric('pipewarden_webhook_requests_total{result="denied"}')
    review = valid_review()
    review["request"]["object"]["spec"]["containers"][0]["env"] = [{"name": "AZP_TOKEN", "value": PAT}]
    hook.post(json.dumps(review).encode())
    res.check(hook.metric('pipewarden_webhook_requests_total{result="denied"}') == before + 1,
              "a denial is counted as denied")
    if shutil.which("promtool"):
        p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        res.check(p.returncode == 0, "promtool check metrics", p.stdout + p.stderr)
    else:
        res.skip("promtool check metrics", "promtool not installed")


def swap_configmap(hook, cfg_text, version):
    """What kubelet does on a ConfigMap update: new dir, atomic ..data swap."""
    cm = os.path.join(hook.dir, "cm")
    os.makedirs(os.path.join(cm, version))
    with open(os.path.join(cm, version, "config.json"), "w") as f:
        f.write(cfg_text)
    os.symlink(version, os.path.join(cm, "..data_tmp"))
    os.rename(os.path.join(cm, "..data_tmp"), os.path.join(cm, "..data"))


def current_url(hook):
    status, body = hook.post(json.dumps(valid_review()).encode())
    import base64
    ops = json.loads(base64.b64decode(json.loads(body)["response"]["patch"]))
    for op in ops:
        if op["path"].endswith("/env"):
            return op["value"][0]["value"]
    return None


def test_config_reload(res, tmp):
    hook = Webhook(tmp)
    with open(lib.DEFAULT_CONFIG) as f:
        cfg = json.load(f)
    res.check(current_url(hook) == "https://dev.azure.com/contoso", "config in force at start")
    swap_configmap(hook, '{"organizationUrl": 5}', "..v2")
    res.check(lib.eventually(lambda: hook.metric("pipewarden_config_reload_errors_total") == 1,
                             20 * SCALE), "a bad config on reload is counted")
    res.check("config reload failed; the previous config stays in force" in hook.log_text() and
              "organizationUrl" in hook.log_text(), "a bad reload is logged naming the key")
    res.check(current_url(hook) == "https://dev.azure.com/contoso", "the old config stays in force")
    cfg["organizationUrl"] = "https://dev.azure.com/fabrikam"
    swap_configmap(hook, json.dumps(cfg), "..v3")
    res.check(lib.eventually(lambda: current_url(hook) == "https://dev.azure.com/fabrikam", 20 * SCALE),
              "a ConfigMap symlink swap reloads the config")
    hook.wait_log("config reloaded")
    # An edit in place is noticed too.
    cfg["organizationUrl"] = "https://dev.azure.com/northwind"
    with open(os.path.join(hook.dir, "cm", "..v3", "config.json"), "w") as f:
        json.dump(cfg, f)
    res.check(lib.eventually(lambda: current_url(hook) == "https://dev.azure.com/northwind", 20 * SCALE),
              "an edit in place reloads the config")
    hook.stop(res, "config reload")


def served_cert(hook):
    s = raw_tls(hook)
    der = s.getpeercert(binary_form=True)
    s.close()
    return der


def test_cert_rotation(res, tmp):
    hook = Webhook(tmp)
    first = served_cert(hook)
    old_key = open(os.path.join(hook.certdir, "tls.key")).read()
    # Rotate (same CA): make-certs writes the key then the cert by rename.
    lib.make_certs(hook.certdir)
    res.check(lib.eventually(lambda: served_cert(hook) != first, 20 * SCALE),
              "a rotated certificate is served without a restart")
    second = served_cert(hook)
    hook.wait_log("certificate reloaded")
    # A mismatched pair keeps the old one in service.
    with open(os.path.join(hook.certdir, "tls.key"), "w") as f:
        f.write(old_key)
    hook.wait_log("the private key does not match the certificate")
    res.check(served_cert(hook) == second, "a key that does not match keeps the old pair")
    with open(os.path.join(hook.certdir, "tls.crt"), "w") as f:
        f.write("not a certificate\n")
    hook.wait_log("no PEM certificate")
    res.check(served_cert(hook) == second, "an unreadable certificate keeps the old pair")
    assert_serving(res, hook, "after failed rotations")
    hook.stop(res, "cert rotation")


def test_start_without_cert(res, tmp):
    hook = Webhook(tmp, certs=False)
    hook.wait_log("no serving certificate yet")
    res.check(hook.proc.poll() is None, "starts and waits when the certificate is not there yet")
    lib.make_certs(hook.certdir)
    res.check(lib.eventually(lambda: _ready(hook), 30 * SCALE), "serves once the certificate appears")
    hook.stop(res, "late certificate")


def test_sigterm_in_flight(res, tmp):
    hook = Webhook(tmp)
    review = json.dumps(valid_review()).encode()
    s = raw_tls(hook)
    s.sendall(b"POST /mutate?timeout=10s HTTP/1.1\r\nHost: localhost\r\n"
              b"Content-Length: %d\r\n\r\n" % len(review) + review[:100])
    time.sleep(0.2 * SCALE)     # let the server read the headers
    hook.proc.send_signal(signal.SIGTERM)
    hook.wait_log("stopping")
    refused = False
    try:
        hook.post(review)
    except (OSError, ssl.SSLError):
        refused = True
    res.check(refused, "no new connections after SIGTERM")
    s.sendall(review[100:])
    reply = b""
    while b"\r\n\r\n" not in reply or b"}}" not in reply:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    s.close()
    res.check(reply.startswith(b"HTTP/1.1 200") and b'"patch"' in reply,
              "the in-flight request completes after SIGTERM", repr(reply[:100]))
    try:
        rc = hook.proc.wait(timeout=30 * SCALE)
    except subprocess.TimeoutExpired:
        rc = None
    res.check(rc == 0, "exits 0 once in-flight requests are done", str(rc))
    hook.stop()


def test_tls_versions(res, hook):
    """Only TLS 1.2 and 1.3 (openssl s_client)."""
    if not shutil.which("openssl"):
        res.skip("TLS versions", "openssl not installed")
        return
    for flag, ok in (("-tls1", False), ("-tls1_1", False), ("-tls1_2", True), ("-tls1_3", True)):
        p = subprocess.run(["openssl", "s_client", flag, "-connect", "127.0.0.1:%d" % hook.port,
                            "-CAfile", hook.ca, "-servername", "localhost"],
                           input="", capture_output=True, text=True, timeout=30)
        done = "Verify return code: 0 (ok)" in p.stdout and "Cipher is (NONE)" not in p.stdout
        res.check(done == ok, "TLS %s %s" % (flag, "accepted" if ok else "refused"), p.stdout[-300:])


class Loader(threading.Thread):
    """Sends valid requests in a loop on keep-alive or new connections and
    counts every request whose answer did not arrive or was wrong."""

    def __init__(self, hook, new_conn=False, until_stopped=False):
        super().__init__(daemon=True)
        self.hook, self.new_conn, self.until_stopped = hook, new_conn, until_stopped
        self.ok = self.failed = self.refused = 0
        self.stop = False
        self.body = json.dumps(valid_review()).encode()
        self.errors = []

    def run(self):
        import http.client
        conn = None
        while not self.stop:
            try:
                if conn is None:
                    conn = http.client.HTTPSConnection("localhost", self.hook.port,
                                                       context=lib.tls_context(self.hook.ca),
                                                       timeout=30 * SCALE)
                    try:
                        conn.connect()
                    except (OSError, ssl.SSLError):
                        self.refused += 1
                        conn = None
                        if self.until_stopped:
                            return
                        continue
                conn.request("POST", "/mutate?timeout=10s", body=self.body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                if r.status == 200 and b'"patch"' in data:
                    self.ok += 1
                else:
                    self.failed += 1
                    self.errors.append("HTTP %d" % r.status)
                if self.new_conn or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, ssl.SSLError, http.client.HTTPException) as e:
                self.failed += 1
                self.errors.append(repr(e))
                conn = None


def test_mixed_10k(res, hook):
    """10,000 valid and malformed requests on keep-alive connections, every answer checked."""
    import http.client
    corpus = os.path.join(lib.ROOT, "tests", "bad-input")
    bad = [(int(n.split("-", 1)[0]), open(os.path.join(corpus, n), "rb").read())
           for n in sorted(os.listdir(corpus))]
    valid = json.dumps(valid_review()).encode()
    n = 2000 if ARGS.quick else 10000
    wrong = 0
    conn = None
    for i in range(n):
        want, body = (200, valid) if i % 3 else bad[(i // 3) % len(bad)]
        if conn is None:
            conn = http.client.HTTPSConnection("localhost", hook.port, context=lib.tls_context(hook.ca),
                                               timeout=30 * SCALE)
        conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != want or (i % 3 and b'"patch"' not in data):
            wrong += 1
        if r.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
    res.check(wrong == 0, "%d mixed valid and malformed requests: every answer right" % n, str(wrong))


def test_attack(res, tmp):
    """Slow clients and connection floods do not stop valid requests."""
    hook = Webhook(tmp, extra=["--request-timeout", "3", "--max-connections", "700",
                               "--max-connections-per-address", "700"])
    review = json.dumps(valid_review()).encode()
    slow = []
    n = 100 if ARGS.quick else 500
    for _ in range(n):
        s = raw_tls(hook)
        s.sendall(b"POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n"
                  % len(review) + review[:10])
        slow.append(s)
    t0 = time.monotonic()
    for _ in range(20):
        assert_serving(res, hook, "with %d slow clients" % n)
    took = time.monotonic() - t0
    res.check(took < 5 * SCALE, "%d slow clients: 20 valid requests still take %.2f s" % (n, took))
    for s in slow:
        s.close()
    hook.stop(res, "slow clients x%d" % n)
    # A flood past the connection limit: the process lives and, while the
    # flood's idle connections are still open, serves valid requests again
    # (idle ones time out after --request-timeout).
    hook = Webhook(tmp, extra=["--request-timeout", "2", "--max-connections", "50"])
    flood = []
    for _ in range(80):
        try:
            flood.append(socket.create_connection(("127.0.0.1", hook.port), timeout=5))
        except OSError:
            pass
    res.check(len(flood) == 80 and hook.proc.poll() is None, "80 idle connections against a limit of 50: alive")
    res.check(lib.eventually(lambda: _serves(hook), 30 * SCALE),
              "serves again while the flood's idle connections time out")
    for s in flood:
        s.close()
    hook.stop(res, "connection flood")


def _ready(hook):
    try:
        return hook.get("/readyz")[0] == 200
    except (OSError, ssl.SSLError):
        return False


def _serves(hook):
    try:
        status, body = hook.post(json.dumps(valid_review()).encode())
        return status == 200
    except (OSError, ssl.SSLError):
        return False


def test_under_load(res, tmp):
    """SIGTERM, certificate rotation and config reload while requests flow."""
    hook = Webhook(tmp)
    loaders = [Loader(hook) for _ in range(4)] + [Loader(hook, new_conn=True) for _ in range(2)]
    for l in loaders:
        l.start()
    lib.wait_until(lambda: all(l.ok > 5 for l in loaders), 30 * SCALE, "load running")
    for i in range(3):
        lib.make_certs(hook.certdir)
        time.sleep(1.2 * SCALE)
    with open(lib.DEFAULT_CONFIG) as f:
        cfg = json.load(f)
    for i in range(3):
        cfg["workDir"] = "_work%d" % i
        swap_configmap(hook, json.dumps(cfg), "..load%d" % i)
        time.sleep(1.2 * SCALE)
    res.check(hook.log_text().count("certificate reloaded") >= 3, "certificates rotated during load")
    res.check(hook.log_text().count("config reloaded") >= 3, "config reloaded during load")
    for l in loaders:
        l.stop = True
    for l in loaders:
        l.join(60 * SCALE)
    failed = sum(l.failed for l in loaders)
    ok = sum(l.ok for l in loaders)
    res.check(failed == 0 and ok > 50, "rotation and reload under load: %d requests, %d failed "
              "(new TLS handshakes included)" % (ok, failed), str([e for l in loaders for e in l.errors][:5]))
    # SIGTERM in the middle of a load run: every request sent is answered.
    loaders = [Loader(hook, until_stopped=True) for _ in range(6)]
    for l in loaders:
        l.start()
    lib.wait_until(lambda: all(l.ok > 5 for l in loaders), 30 * SCALE, "load running")
    hook.proc.send_signal(signal.SIGTERM)
    rc = hook.proc.wait(timeout=60 * SCALE)
    for l in loaders:
        l.stop = True
        l.join(60 * SCALE)
    failed = sum(l.failed for l in loaders)
    res.check(rc == 0 and failed == 0, "SIGTERM under load: exit %s, %d requests answered, %d failed "
              "in flight" % (rc, sum(l.ok for l in loaders), failed),
              str([e for l in loaders for e in l.errors][:5]))
    hook.stop()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def test_flags(res, tmp):
    b = ARGS.bin
    p = run([b, "--help"])
    res.check(p.returncode == 0 and "--tls-cert" in p.stdout and "PIPEWARDEN_" in p.stdout, "--help")
    p = run([b, "--version"])
    res.check(p.returncode == 0 and p.stdout.startswith("pipewarden-webhook 0.1.0"), "--version")
    p = run([b, "--check-config", "--config", lib.DEFAULT_CONFIG])
    res.check(p.returncode == 0 and p.stdout.strip() == "configuration OK", "--check-config OK")
    bad = os.path.join(tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"organizationUrl":"https://x","defaultPool":"p","profiles":{"m":{}},"janitor":{"leaseNam":"x"}}')
    p = run([b, "--check-config", "--config", bad])
    res.check(p.returncode == 2 and "unknown key 'janitor.leaseNam'" in p.stderr,
              "--check-config names the bad key", p.stderr)
    p = run([b, "--config", bad])
    res.check(p.returncode == 2 and "janitor.leaseNam" in p.stderr, "a bad config at start exits 2 naming the key")
    p = run([b, "--check-config"], env=dict(os.environ, PIPEWARDEN_CONFIG=bad))
    res.check(p.returncode == 2, "PIPEWARDEN_CONFIG sets --config")
    p = run([b, "--port", "99999", "--config", lib.DEFAULT_CONFIG])
    res.check(p.returncode == 2 and "not a port" in p.stderr, "a bad port is refused")
    p = run([b, "--bogus"])
    res.check(p.returncode == 2 and "unknown flag '--bogus'" in p.stderr, "an unknown flag is refused")
    p = run([b, "--address", "not-an-ip", "--config", lib.DEFAULT_CONFIG, "--port",
             str(lib.free_port()), "--metrics-port", str(lib.free_port())], timeout=30)
    res.check(p.returncode == 1 and "invalid --address" in p.stderr, "a bad --address is refused")
    # Env sets ports too.
    hook = Webhook(tmp, env={"PIPEWARDEN_IDLE_TIMEOUT": "100"})
    res.check(hook.get("/healthz")[0] == 200, "starts with PIPEWARDEN_* env")
    # A port already taken: exit 1, saying which port and why.
    p = run([b, "--config", lib.DEFAULT_CONFIG, "--tls-cert", os.path.join(hook.certdir, "tls.crt"),
             "--tls-key", os.path.join(hook.certdir, "tls.key"), "--address", "127.0.0.1",
             "--port", str(hook.port), "--metrics-port", str(lib.free_port())], timeout=30)
    res.check(p.returncode == 1 and '"port":"%d"' % hook.port in p.stderr and
              "Address already in use" in p.stderr, "a port in use: exit 1 with the port and the reason",
              p.stderr[-400:])
    hook.stop(res, "env flags")


def test_logs(res, hooks_logs):
    """Every line is a JSON object; no secret appears."""
    bad_lines = 0
    for text in hooks_logs:
        for line in text.splitlines():
            try:
                obj = json.loads(line)
                if not all(k in obj for k in ("ts", "level", "msg")):
                    bad_lines += 1
            except ValueError:
                if not line.startswith("==") and "valgrind" not in line.lower():
                    bad_lines += 1
        res.check(PAT not in text and "FAKEPAT" not in text, "no PAT in any log line")
    res.check(bad_lines == 0, "every log line is a JSON object with ts, level, msg",
              "%d bad lines" % bad_lines)


def main():
    global ARGS, SCALE
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--results")
    ap.add_argument("--wrapper", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--suite", default="webhook end-to-end")
    ARGS = ap.parse_args()
    if ARGS.wrapper:
        SCALE = 10.0
    res = lib.Results(ARGS.suite, ARGS.results)
    with tempfile.TemporaryDirectory() as tmp:
        logs = []
        test_cases(res, tmp)
        hook = Webhook(tmp)
        test_endpoints_and_metrics(res, hook)
        test_tls_versions(res, hook)
        test_bad_input(res, hook)
        test_body_limits(res, hook)
        test_mixed_10k(res, hook)
        hook.stop(res, "main server")
        logs.append(hook.log_text())
        test_sigterm_in_flight(res, tmp)
        test_config_reload(res, tmp)
        test_cert_rotation(res, tmp)
        if not ARGS.quick:
            test_attack(res, tmp)
            test_under_load(res, tmp)
            test_slow_clients(res, tmp)
            test_header_dribblers(res, tmp)
            test_per_address_limit(res, tmp)
            test_shutdown_delay(res, tmp)
            test_memory_bounds(res, tmp)
            test_seams(res, tmp)
            test_start_without_cert(res, tmp)
            test_flags(res, tmp)
        for root, _, files in os.walk(tmp):
            for f in files:
                if f == "webhook.log":
                    with open(os.path.join(root, f)) as fh:
                        logs.append(fh.read())
        test_logs(res, logs)
        if ARGS.wrapper:
            errors = [t for t in logs if "ERROR SUMMARY: 0 errors" not in t and "ERROR SUMMARY" in t]
            res.check(not errors, "valgrind: no errors and no definite leaks in any webhook run",
                      "\n".join(e[-3000:] for e in errors[:1]))
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
