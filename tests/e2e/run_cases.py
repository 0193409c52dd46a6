#!/usr/bin/python3
"""Golden cases of the mutation policy, run through the pure core.

Each tests/cases/*.json is one declarative case: an AdmissionReview (inline,
or a ../shared fixture), an optional config overlay, and what must come
back.  Every patch is applied as kube-apiserver applies it (python3-jsonpatch,
and ../shared/tools/jsonpatch-apply when ../shared is there), the result is
compared with the expected pod, sent again to prove idempotence, and
validated against the Kubernetes schema (k8s-validate).

tests/e2e/test_webhook.py runs the same cases through the real binary over TLS.

usage: run_cases.py --policy build/tools/policy-run [--results FILE] [--update]
"""
import argparse
import json

import jsonpatch
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import lib  # noqa: E402


WRAPPER = []


def run_policy(binary, config, review):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(review, f)
        path = f.name
    try:
        p = subprocess.run(WRAPPER + [binary, config, path], capture_output=True, text=True)
    finally:
        os.unlink(path)
    if p.returncode not in (0, 3):
        raise RuntimeError("policy-run exited %d: %s" % (p.returncode, p.stderr))
    return p.stdout


def expected_pod(case):
    exp = case["expect"]
    if "pod_shared" in exp:
        path = os.path.join(lib.SHARED, exp["pod_shared"])
        with open(path) as f:
            pod = json.load(f)
        # What pipewarden injects since the shared fixture was captured.
        return jsonpatch.apply_patch(pod, exp.get("pod_shared_patch", []))
    return exp.get("pod")


def run_cases(res, answer, cases, tmp, update=False):
    """answer(config_path, review) -> response text.  Returns the pods to validate."""
    pods = []
    for case in cases:
        name = case["name"]
        review = lib.resolve_review(case)
        if review is None:
            res.skip(name, "../shared not found")
            continue
        config = lib.config_for(case, tmp)
        exp = case["expect"]
        text = answer(config, review)
        patched = lib.check_answer(res, name, review, text, exp)
        if patched is None:
            continue
        pods.append((name, patched))
        want = expected_pod(case)
        if update and "pod_shared" not in exp:
            exp["pod"] = patched
            saved = {k: v for k, v in case.items() if k not in ("name", "file")}
            with open(case["file"], "w") as f:
                json.dump(saved, f, indent=2)
                f.write("\n")
        elif want is not None:
            res.check(patched == want, name + ": patched pod equals the expected pod",
                      diff(want, patched))
        # Reinvocation: the patched pod, sent again, gets no patch.
        again = lib.with_object(review, patched)
        text = answer(config, again)
        res.check('"patch"' not in text and '"allowed":true' in text,
                  name + ": idempotent (the patched pod gets no patch)", text[:300])
    return pods


def diff(a, b):
    import difflib
    x = json.dumps(a, indent=1, sort_keys=True).splitlines()
    y = json.dumps(b, indent=1, sort_keys=True).splitlines()
    return "\n".join(list(difflib.unified_diff(x, y, "expected", "got", lineterm=""))[:40])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True)
    ap.add_argument("--results")
    ap.add_argument("--suite", default="policy golden cases")
    ap.add_argument("--wrapper", default="", help="run policy-run under this (valgrind)")
    ap.add_argument("--update", action="store_true",
                    help="write the patched pods into the cases as their expected pods")
    args = ap.parse_args()
    WRAPPER[:] = args.wrapper.split()
    res = lib.Results(args.suite, args.results)
    if not lib.HAVE_SHARED:
        print("skipped: ../shared not found (fixture cases, jsonpatch-apply and "
              "k8s-validate checks); the project's own cases still run", flush=True)
    cases = lib.load_cases(os.path.join(lib.ROOT, "tests", "cases"))
    with tempfile.TemporaryDirectory() as tmp:
        pods = run_cases(res, lambda c, r: run_policy(args.policy, c, r), cases, tmp,
                         args.update)
    lib.validate_pods(res, pods)
    return res.done()


if __name__ == "__main__":
    sys.exit(main())
