"""Fails when a valgrind memcheck log has an error whose stack passes through
afxdp_rs (the interpreter's own, known reports are not ours to fix)."""

from __future__ import annotations

import sys

errors: list[list[str]] = []
for line in open(sys.argv[1]):
    body = line.split("== ", 1)[1].rstrip("\n") if "== " in line else ""
    if body and not body.startswith(" "):
        errors.append([body])
    elif body.strip() and errors:
        errors[-1].append(body.strip())
ours = [e for e in errors if any("afxdp" in frame for frame in e)]
for e in ours:
    print("\n".join(e), end="\n\n")
print(f"valgrind: {len(errors)} reports, {len(ours)} in afxdp_rs")
sys.exit(1 if ours else 0)
