#!/usr/bin/env python3
"""The repository stands on its own: no file cites the contract by its old section
numbers ("DESIGN §n") but the original itself and the pages that map them; every
docs/... path a file names exists (and every #anchor into docs/contract/ is a heading
there); docs/contract/configuration.md and docs/operations.md name every configuration
key of lib/config.c's table and every metric the code registers."""
import os
import re
import subprocess
import sys

TOP = os.environ.get("CS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print("%s %s%s" % ("ok  " if ok else "FAIL", name, (": " + detail) if detail and not ok else ""))


def read(rel):
    with open(os.path.join(TOP, rel), encoding="utf-8", errors="replace") as f:
        return f.read()


files = subprocess.run(["git", "-C", TOP, "ls-files"], capture_output=True, text=True,
                       check=True).stdout.split()
files = [f for f in files if os.path.isfile(os.path.join(TOP, f))]
exempt = ("docs/DESIGN.md", "docs/contract/")
old = []
for f in files:
    if f.startswith(exempt) or f.startswith("tests/fuzz/regressions") or f == "tests/deploy/test_docs.py":
        continue
    for i, line in enumerate(read(f).split("\n"), 1):
        if re.search(r"DESIGN\s*§|DESIGN \d", line):
            old.append("%s:%d" % (f, i))
check("no citation of the old section numbers", not old, ", ".join(old[:10]))


def anchors(rel):
    out = set()
    for line in read(rel).split("\n"):
        m = re.match(r"#+\s+(.*)", line)
        if m:
            a = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            out.add(a)
    return out


missing = []
for f in files:
    if f.startswith("tests/fuzz/regressions") or f.endswith((".avsc", ".csv")):
        continue
    for m in re.finditer(r"docs/(contract/)?[\w.-]+\.md(#[\w-]+)?", read(f)):
        path = m.group(0).split("#")[0]
        if not os.path.isfile(os.path.join(TOP, path)):
            missing.append("%s -> %s" % (f, path))
        elif m.group(2) and m.group(2)[1:] not in anchors(path):
            missing.append("%s -> %s" % (f, m.group(0)))
check("every docs/ path and anchor named exists", not missing, ", ".join(sorted(set(missing))[:10]))

keys = re.findall(r'^\s*\{"([a-z][\w.-]+)", CS_CFG_', read("lib/config.c"), re.M)
conf = read("docs/contract/configuration.md")
absent = [k for k in keys if "`%s`" % k not in conf]
check("docs/contract/configuration.md names all %d keys" % len(keys), keys and not absent,
      ", ".join(absent))

code = "".join(read(f) for f in files if f.endswith((".c", ".h")))
metrics = sorted(set(re.findall(r'"(caresignal_[a-z_]+)"', code)))
ops = read("docs/operations.md")
absent = [m for m in metrics if m not in ops]
check("docs/operations.md names all %d metrics" % len(metrics), metrics and not absent,
      ", ".join(absent))

print("%d passed, %d failed" % (results.count(True), results.count(False)))
sys.exit(0 if all(results) else 1)
