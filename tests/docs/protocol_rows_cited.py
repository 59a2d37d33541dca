#!/usr/bin/python3
"""Every rule of docs/protocol.md that is in force is checked by a test that cites it.

A rule is a table row whose first cell is its id (S1, H4, ...). It is pending when the row or
its section's heading says *pending*. A test cites a rule with `proto-ID` (a Catch2 tag
[proto-H4], or a comment in a script). Fails, naming them, when an in-force rule has no
citation or a citation names no rule.

  tests/docs/protocol_rows_cited.py [REPO_ROOT]
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
doc = (root / "docs" / "protocol.md").read_text()

rules, pending = [], set()
section_pending = False
for line in doc.splitlines():
    if line.startswith("## "):
        section_pending = "*pending" in line
    m = re.match(r"^\|\s*([A-Z]\d+)\s*\|", line)
    if m:
        rules.append(m.group(1))
        if section_pending or "*pending" in line.split("|")[2]:
            pending.add(m.group(1))

this = pathlib.Path(__file__).resolve()
cited = {}
for path in sorted((root / "tests").rglob("*")):
    if path.is_file() and path.resolve() != this and path.suffix in {".cpp", ".hpp", ".py", ".txt", ".cmake", ".sh"}:
        for rule in re.findall(r"proto-([A-Z]\d+)\b", path.read_text(errors="replace")):
            cited.setdefault(rule, set()).add(str(path.relative_to(root)))

problems = []
if len(set(rules)) != len(rules):
    problems.append("a rule id is used twice in docs/protocol.md")
for rule in rules:
    if rule not in pending and rule not in cited:
        problems.append(f"rule {rule} is in force but no test cites proto-{rule}")
for rule, files in sorted(cited.items()):
    if rule not in rules:
        problems.append(f"proto-{rule} (in {', '.join(sorted(files))}) names no rule of docs/protocol.md")

in_force = [r for r in rules if r not in pending]
print(f"{len(in_force)} rules in force, each cited: " + ", ".join(f"{r} ({len(cited.get(r, ()))})" for r in in_force))
print(f"{len(pending)} pending: {', '.join(r for r in rules if r in pending)}")
for p in problems:
    print("FAIL " + p)
sys.exit(1 if problems else 0)
