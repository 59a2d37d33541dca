#!/usr/bin/python3
"""Proves a compile-fail case's expectations are about the error, not about its source text.

Puts a wrong name into the failing line (the first identifier of the line inside
`#ifdef UNIWS_COMPILE_FAIL` that is not a keyword, or the word a `// typo: WORD` line names)
and runs the same harness (cmake/check_compile.cmake, EXPECT=fail) on that mutant: it must
not pass. A case whose typo could not change the diagnostic says `// typo: none (why)`.

Usage: typo_check.py CMAKE CHECK_COMPILE_SCRIPT COMPILER FLAGS SOURCE WORK_DIR
"""
import os
import re
import subprocess
import sys

cmake, script, compiler, flags, source, work = sys.argv[1:7]
text = open(source).read()
lines = text.split("\n")
override = re.search(r"^// typo: (\S+)", text, re.M)
if override and override.group(1) == "none":
    print(f"no typo mutant for {source}: {text[override.end():].splitlines()[0].strip()}")
    sys.exit(0)

start = lines.index("#ifdef UNIWS_COMPILE_FAIL") + 1
keywords = {"auto", "co_await", "co_return", "return", "const", "std", "uniws", "static_cast", "int", "void", "noexcept"}
line_no, word = None, None
for i in range(start, len(lines)):
    if lines[i].startswith("#"):
        break
    candidates = re.findall(r"[A-Za-z_][A-Za-z_0-9]*", lines[i].split("//")[0])
    wanted = [override.group(1)] if override else [w for w in candidates if w not in keywords and len(w) >= 3]
    if wanted and wanted[0] in candidates:
        line_no, word = i, wanted[0]
        break
if line_no is None:
    sys.exit(f"{source}: no word to put a typo into")

# Not a near miss: clang corrects a near miss ("did you mean ...?") and goes on as if the right
# name were there, reporting the original error again.
wrong = "zq_wrong_name"
lines[line_no] = re.sub(r"\b%s\b" % re.escape(word), wrong, lines[line_no], count=1)
os.makedirs(work, exist_ok=True)
mutant = os.path.join(work, os.path.basename(source))
open(mutant, "w").write("\n".join(lines))
print(f"typo: {word} -> {wrong} on line {line_no + 1}: {lines[line_no].strip()}")
r = subprocess.run([cmake, f"-DCOMPILER={compiler}", f"-DFLAGS={flags}", f"-DSOURCE={mutant}", "-DEXPECT=fail",
                    "-P", script], capture_output=True, text=True)
if r.returncode == 0:
    print(r.stdout + r.stderr)
    sys.exit("the expectations still match with a typo in the failing line: they match the source, not the error")
print("the expectations no longer match: they are about the error")
