#!/usr/bin/env python3
"""Checks that documentation and bundled data agree with the code.

  test_docs.py fixtures --source DIR
      tests/fixtures/azure equals the project's shared/fixtures/azure beside the repo (if present).
  test_docs.py docs --kvaudit BIN --source DIR
      README.md's rule table equals `kvaudit rules list`; docs/facts.md's table equals
      `kvaudit rules facts`.
Prints 'N passed, N failed' and exits non-zero on any failure.
"""
import argparse
import filecmp
import os
import re
import subprocess
import sys

passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok: {what}")
    else:
        failed += 1
        print(f"FAIL: {what}")


def fixtures(src):
    mine = os.path.join(src, "tests", "fixtures", "azure")
    shared = os.path.join(src, "..", "shared", "fixtures", "azure")
    check(os.path.isdir(mine) and any(f.endswith(".json") for f in os.listdir(mine)),
          "bundled fixtures exist")
    if not os.path.isdir(shared):
        print("note: no shared/fixtures/azure beside the repository; nothing to compare")
        return
    a, b = set(os.listdir(mine)), set(os.listdir(shared))
    check(a == b, f"same fixture files (only bundled: {sorted(a - b)}, only shared: {sorted(b - a)})")
    for name in sorted(a & b):
        check(filecmp.cmp(os.path.join(mine, name), os.path.join(shared, name), shallow=False),
              f"fixture {name} is identical to shared/")


def table_rows(text, first_col_re):
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(first_col_re, cells[0].strip("`")):
            rows.append(cells)
    return rows


def docs(binary, src):
    out = subprocess.run([binary, "rules", "list"], capture_output=True, text=True, check=True).stdout
    listed = []
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+(\S+)\s+(\S+)\s+(.*)$", line)
        listed.append((m.group(1), m.group(2), m.group(3), m.group(4).strip()))
    readme = open(os.path.join(src, "README.md"), encoding="utf-8").read()
    rows = [tuple(r[:4]) for r in table_rows(readme, r"KVA-[A-Z]+-\d+")]
    check(len(listed) >= 18, f"the built-in catalog has {len(listed)} rules")
    check(rows == listed, "README.md's rule table equals `kvaudit rules list` "
          "(regenerate it from that command)" + ("" if rows == listed else
          f"\n  README: {rows}\n  binary: {listed}"))
    facts = subprocess.run([binary, "rules", "facts"], capture_output=True, text=True, check=True).stdout
    doc = open(os.path.join(src, "docs", "facts.md"), encoding="utf-8").read()
    want = [l for l in facts.splitlines() if l.startswith("| `")]
    have = [l for l in doc.splitlines() if l.startswith("| `")]
    check(want == have, "docs/facts.md's table equals `kvaudit rules facts`")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["fixtures", "docs"])
    ap.add_argument("--source", required=True)
    ap.add_argument("--kvaudit")
    a = ap.parse_args()
    if a.mode == "fixtures":
        fixtures(a.source)
    else:
        docs(a.kvaudit, a.source)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
