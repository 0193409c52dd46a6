#!/usr/bin/python3
"""Run the test programs under valgrind; a definite leak or any memory error
fails the run (exit status 99 from valgrind).

usage: valgrind.py --build DIR --results FILE UNIT_TEST...
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402

VALGRIND = ("valgrind -q --leak-check=full --errors-for-leak-kinds=definite "
            "--show-leak-kinds=definite --error-exitcode=99 --track-fds=no")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--results")
    ap.add_argument("tests", nargs="*")
    args = ap.parse_args()
    res = lib.Results("valgrind unit tests", args.results)
    for t in args.tests:
        p = subprocess.run(VALGRIND.split() + [os.path.join(args.build, "tests", t)],
                           capture_output=True, text=True, cwd=lib.ROOT)
        res.check(p.returncode == 0, "valgrind %s" % t, (p.stdout + p.stderr)[-3000:])
    rc = res.done()
    py = sys.executable
    rc |= subprocess.call([py, os.path.join(lib.ROOT, "tests", "e2e", "run_cases.py"),
                           "--policy", os.path.join(args.build, "tools", "policy-run"),
                           "--wrapper", VALGRIND, "--suite", "valgrind policy golden cases"]
                          + (["--results", args.results] if args.results else []))
    rc |= subprocess.call([py, os.path.join(lib.ROOT, "tests", "e2e", "test_webhook.py"),
                           "--bin", os.path.join(args.build, "bin", "pipewarden-webhook"),
                           "--wrapper", VALGRIND, "--quick",
                           "--suite", "valgrind webhook end-to-end"]
                          + (["--results", args.results] if args.results else []))
    rc |= subprocess.call([py, os.path.join(lib.ROOT, "tests", "e2e", "test_janitor.py"),
                           "--bin", os.path.join(args.build, "bin", "pipewarden-janitor"),
                           "--wrapper", VALGRIND, "--quick",
                           "--suite", "valgrind janitor end-to-end"]
                          + (["--results", args.results] if args.results else []))
    return rc


if __name__ == "__main__":
    sys.exit(main())
