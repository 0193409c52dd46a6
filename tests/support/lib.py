"""Shared helpers of pipewarden's Python test drivers.

Runs with Debian's python3 (/usr/bin/python3) and its python3-jsonpatch.
Nothing here sleeps to wait for something: waits poll an event (a port that
accepts, a line in a log) against a bounded deadline.
"""
import base64
import copy
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import jsonpatch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
HAVE_SHARED = os.path.isdir(os.path.join(SHARED, "tools"))
JSONPATCH_APPLY = os.path.join(SHARED, "tools", "jsonpatch-apply")
K8S_VALIDATE = os.path.join(SHARED, "tools", "k8s-validate")
DEFAULT_CONFIG = os.path.join(ROOT, "tests", "config.json")


def finish(res, tmp, keep=False):
    """End a suite that ran in tmp: its logs kept (and said) when a check
    failed or keep asks, else removed.  The suite's exit code."""
    if keep or res.failed:
        print("logs kept in " + tmp, flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return res.done()


class Results:
    """Counts checks and prints the closing 'N passed, N failed' line."""

    def __init__(self, suite, results_file=None):
        self.suite = suite
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.results_file = results_file

    def check(self, cond, name, detail=""):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: %s%s" % (self.suite, name, (" -- " + detail) if detail else ""),
                  flush=True)
        return cond

    def skip(self, name, why):
        self.skipped += 1
        print("skipped: %s (%s)" % (why, name), flush=True)

    def done(self):
        line = "%d passed, %d failed" % (self.passed, self.failed)
        if self.skipped:
            line += ", %d skipped" % self.skipped
        print("%s: %s" % (self.suite, line), flush=True)
        if self.results_file:
            with open(self.results_file, "a") as f:
                f.write("%s: %s\n" % (self.suite, line))
        return 0 if self.failed == 0 else 1


def k8s_validate(res, name, text):
    """Check rendered manifests against Kubernetes' schema (../shared's
    k8s-validate); skipped, visibly, where ../shared is absent."""
    if not HAVE_SHARED:
        res.skip("k8s-validate " + name, "../shared not found")
        return
    p = subprocess.run([K8S_VALIDATE, "-"], input=text, capture_output=True, text=True)
    errors = [line for line in p.stdout.splitlines() if line.startswith("error")]
    res.check(p.returncode == 0 and not errors, "k8s-validate: %s (%d objects)" % (
        name, p.stdout.count("\n")), "\n".join(errors[:8]) + p.stderr[-300:])


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def config_for(case, tmpdir):
    """The config file a case runs with: tests/config.json, merged with the
    case's "config" object when it has one."""
    if "config" not in case:
        return DEFAULT_CONFIG
    with open(DEFAULT_CONFIG) as f:
        cfg = deep_merge(json.load(f), case["config"])
    path = os.path.join(tmpdir, "config-%s.json" % case["name"])
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def load_cases(directory):
    """Every tests/cases/*.json, in name order, with "review" resolved.
    A case built on a ../shared fixture has "shared" set instead."""
    cases = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(directory, name)) as f:
            case = json.load(f)
        case["name"] = name[:-5]
        case["file"] = os.path.join(directory, name)
        cases.append(case)
    return cases


def resolve_review(case):
    """The AdmissionReview of a case, or None when its ../shared fixture is absent."""
    if "review" in case:
        return case["review"]
    path = os.path.join(SHARED, case["shared"])
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def pointer_get(doc, pointer):
    """RFC 6901 lookup; raises KeyError/IndexError when absent."""
    if pointer == "":
        return doc
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(doc, list):
            doc = doc[int(part)]
        else:
            doc = doc[part]
    return doc


def apiserver_default(pod):
    """What kube-apiserver's defaulting adds, after the patch, to the
    kinds of fields pipewarden adds (fact 1.4): fieldRef.apiVersion v1 and
    defaultMode 420 on projected and secret volumes."""
    pod = copy.deepcopy(pod)
    spec = pod.get("spec", {})
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for e in c.get("env", []) or []:
            ref = (e.get("valueFrom") or {}).get("fieldRef")
            if ref is not None and "apiVersion" not in ref:
                ref["apiVersion"] = "v1"
    for v in spec.get("volumes", []) or []:
        for kind in ("projected", "secret"):
            if kind in v and "defaultMode" not in v[kind]:
                v[kind]["defaultMode"] = 420
    return pod


def b64decode_strict(s):
    """Go's []byte JSON decoding: standard alphabet with padding."""
    return base64.b64decode(s.encode("ascii"), validate=True)


def check_answer(res, name, review, answer_text, expect):
    """Check an AdmissionReview answer the way kube-apiserver does, then
    against the case's expectations.  Returns the patched pod (after
    apiserver defaulting) or None."""
    try:
        answer = json.loads(answer_text)
    except ValueError as e:
        res.check(False, name, "answer is not JSON: %s" % e)
        return None
    resp = answer.get("response")
    res.check(answer.get("apiVersion") == "admission.k8s.io/v1" and
              answer.get("kind") == "AdmissionReview", name + ": GVK")
    if not res.check(isinstance(resp, dict), name + ": response present"):
        return None
    res.check(resp.get("uid") == review["request"]["uid"], name + ": uid echoed")
    res.check(("patch" in resp) == ("patchType" in resp), name + ": patch and patchType together")
    allowed = resp.get("allowed") is True
    res.check(allowed == expect.get("allowed", True), name + ": allowed",
              json.dumps(resp.get("status")))
    if not allowed:
        status = resp.get("status", {})
        res.check(status.get("code") == expect.get("code"), name + ": status.code",
                  str(status.get("code")))
        res.check(expect.get("message", "") in status.get("message", ""),
                  name + ": message", status.get("message", ""))
        res.check("patch" not in resp, name + ": a denial carries no patch")
    for w in expect.get("warnings", []):
        res.check(any(w in x for x in resp.get("warnings", [])), name + ": warning " + w,
                  json.dumps(resp.get("warnings")))
    if not expect.get("warnings"):
        res.check(not resp.get("warnings"), name + ": no warnings",
                  json.dumps(resp.get("warnings")))
    for secret in expect.get("never_contains", []):
        res.check(secret not in answer_text, name + ": answer never repeats " + secret[:6] + "...")
    want_patch = expect.get("patched", False)
    res.check(("patch" in resp) == want_patch, name + ": patched=%s" % want_patch)
    if "patch" not in resp:
        return None
    res.check(resp.get("patchType") == "JSONPatch", name + ": patchType JSONPatch")
    try:
        ops = json.loads(b64decode_strict(resp["patch"]))
    except Exception as e:  # noqa: BLE001 - any decoding failure is the finding
        res.check(False, name + ": patch decodes", str(e))
        return None
    res.check(all(op.get("op") == "add" for op in ops), name + ": only add ops")
    if "ops" in expect:
        res.check(len(ops) == expect["ops"], name + ": %d ops" % expect["ops"], json.dumps(ops)[:400])
    pod = review["request"]["object"]
    try:
        patched, error = jsonpatch.apply_patch(pod, ops), ""
    except Exception as e:  # noqa: BLE001 - any failure to apply is the finding
        patched, error = None, str(e)
    if not res.check(patched is not None, name + ": patch applies (python3-jsonpatch)", error):
        return None
    if HAVE_SHARED:
        with tempfile.TemporaryDirectory() as d:
            rq, rs = os.path.join(d, "req.json"), os.path.join(d, "resp.json")
            with open(rq, "w") as f:
                json.dump(review, f)
            with open(rs, "w") as f:
                f.write(answer_text)
            p = subprocess.run([JSONPATCH_APPLY, "--review", rq, rs],
                               capture_output=True, text=True)
            if res.check(p.returncode == 0, name + ": jsonpatch-apply --review (kube-apiserver's json-patch)",
                         p.stderr.strip()):
                res.check(json.loads(p.stdout) == patched,
                          name + ": evanphx json-patch and python3-jsonpatch agree")
    defaulted = apiserver_default(patched)
    for ptr, value in expect.get("has", {}).items():
        try:
            got = pointer_get(defaulted, ptr)
        except (KeyError, IndexError, ValueError):
            got = "<absent>"
        res.check(got == value, name + ": " + ptr, "got %s" % json.dumps(got))
    for ptr in expect.get("absent", []):
        try:
            pointer_get(defaulted, ptr)
            present = True
        except (KeyError, IndexError, ValueError):
            present = False
        res.check(not present, name + ": absent " + ptr)
    return defaulted


def with_object(review, obj):
    """The same review carrying another object (a reinvocation)."""
    r = copy.deepcopy(review)
    r["request"]["object"] = obj
    r["request"]["uid"] = r["request"]["uid"][:-4] + "beef"
    return r


def validate_pods(res, pods):
    """Validate (name, pod) pairs with ../shared/tools/k8s-validate, in one run."""
    if not pods:
        return
    if not HAVE_SHARED:
        res.skip("k8s-validate of %d patched pods" % len(pods), "../shared not found")
        return
    with tempfile.TemporaryDirectory() as d:
        files = []
        for i, (_, pod) in enumerate(pods):
            path = os.path.join(d, "%03d.json" % i)
            with open(path, "w") as f:
                json.dump(pod, f)
            files.append(path)
        p = subprocess.run([K8S_VALIDATE] + files, capture_output=True, text=True)
        lines = [l for l in p.stdout.splitlines() if l.strip()]
        res.check(len(lines) >= len(pods), "k8s-validate answered for every pod", p.stderr[-500:])
        errors = [l for l in lines if l.startswith("error")]
        res.check(p.returncode == 0 and not errors,
                  "k8s-validate: %d patched pods valid against the 1.35 schema" % len(pods),
                  "\n".join(errors[:10]))


# ---- processes and HTTPS ---------------------------------------------------

def relay(a, b, idle=30):
    """Copy bytes both ways between sockets a and b until either side closes
    or nothing moves for idle seconds; then close both (a forwarder's, or a
    CONNECT tunnel's, one connection)."""
    import select
    try:
        while True:
            ready, _, _ = select.select([a, b], [], [], idle)
            if not ready:
                return
            for r in ready:
                data = r.recv(65536)
                if not data:
                    return
                (b if r is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(pred, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise TimeoutError("timed out waiting for " + what)


def eventually(pred, timeout=20.0):
    """True when pred() comes true within timeout seconds (polled), else False."""
    try:
        wait_until(pred, timeout)
        return True
    except TimeoutError:
        return False


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def make_certs(directory, keytype="ec"):
    subprocess.run(["sh", os.path.join(ROOT, "certs", "make-certs.sh"), directory,
                    "pipewarden-webhook", "pipewarden-system", keytype],
                   check=True, capture_output=True)


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def https_request(port, ca, method, path, body=None, headers=None, timeout=10):
    """One request on a new TLS connection; returns (status, body bytes)."""
    import http.client
    conn = http.client.HTTPSConnection("localhost", port, context=tls_context(ca),
                                       timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def http_get(port, path):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def metric_value(text, name, labels=""):
    """A sample's value from Prometheus exposition text: name{labels}
    (labels as written, in order), or None."""
    want = "%s{%s} " % (name, labels) if labels else name + " "
    for line in text.splitlines():
        if line.startswith(want):
            return float(line[len(want):])
    return None


def metric_sum(text, name, *having):
    """The sum of a metric's samples whose labels hold every string of having."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            if all(h in labels for h in having):
                total += float(value)
    return total
