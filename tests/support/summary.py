#!/usr/bin/python3
"""Add up the suites' 'N passed, N failed' lines and print the total."""
import re
import sys

passed = failed = skipped = 0
suites = 0
with open(sys.argv[1]) as f:
    for line in f:
        m = re.search(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", line)
        if m:
            suites += 1
            passed += int(m.group(1))
            failed += int(m.group(2))
            skipped += int(m.group(3) or 0)
        elif "FAILED" in line:
            failed += 1
print("%d suites" % suites)
line = "%d passed, %d failed" % (passed, failed)
if skipped:
    line += ", %d skipped" % skipped
print(line)
sys.exit(0 if failed == 0 and suites > 0 else 1)
