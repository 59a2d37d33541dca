#!/usr/bin/python3
"""Mutation check: each known bug, kept as a mutant here, must be caught by its test.

A mutant is a file tests/mutants/NAME.mutant:

    mutant: what the bug does
    test: the ctest regex of the test(s) that must catch it
    targets: what to build first (empty for compile-fail tests)
    runs: how many runs the test gets to catch it (races: a few)

    --- path/of/the/file
    <<<< find
    the exact text the mutant replaces: it must occur exactly once in that file
    ==== replace
    the text that replaces it, with a MUTANT mark
    >>>>

(one or more find/replace blocks). No line numbers: a mutant survives edits elsewhere in its
file, and when its snippet is gone or no longer unique the runner says so and fails. The
script copies the source tree once, configures one build of it, then for each mutant: makes
its replacements, builds the targets, runs the test (until it fails, at most `runs` times),
and puts the files back. It fails if any mutant survives or cannot be applied.

Usage: run.py SOURCE_DIR WORK_DIR [C++ compiler] [NAME ...]
"""
import pathlib
import shutil
import subprocess
import sys
import time

source, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
cxx = sys.argv[3] if len(sys.argv) > 3 else "g++"
only = set(sys.argv[4:])
src, build = work / "src", work / "build"


def run(cmd, **kw):
    return subprocess.run(cmd, text=True, capture_output=True, **kw)


def parse(path):
    """(meta, [(file, find, replace), ...]) of a .mutant file."""
    lines = path.read_text().split("\n")
    meta, blocks, i = {}, [], 0
    while i < len(lines) and lines[i].strip():
        key, _, value = lines[i].partition(": ")
        meta[key.strip()] = value.strip()
        i += 1
    file = None
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- "):
            file = line[4:].strip()
        elif line == "<<<< find":
            end_find = lines.index("==== replace", i)
            end = lines.index(">>>>", end_find)
            blocks.append((file, "\n".join(lines[i + 1:end_find]) + "\n", "\n".join(lines[end_find + 1:end]) + "\n"))
            i = end
        i += 1
    return meta, blocks


def apply(blocks):
    """Makes the replacements; returns the files' original texts, or raises ValueError."""
    originals = {}
    for file, find, replace in blocks:
        path = src / file
        text = path.read_text()
        originals.setdefault(path, text)
        count = text.count(find)
        if count != 1:
            for p, t in originals.items():
                p.write_text(t)
            raise ValueError(f"its snippet occurs {count} times in {file} (must be exactly once):\n{find}")
        if "MUTANT" not in replace:
            raise ValueError(f"a replacement in {file} has no MUTANT mark")
        path.write_text(text.replace(find, replace))
    return originals


shutil.rmtree(work, ignore_errors=True)
shutil.copytree(source, src, ignore=shutil.ignore_patterns("build", ".git", "__pycache__"))
r = run(["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CXX_COMPILER={cxx}",
         "-DUNIWS_BUILD_BENCHMARKS=OFF", "-DUNIWS_WERROR=ON",
         "-DUNIWS_HEAVY_TESTS=ON"])  # the tests of some mutants (a Redis Cluster) are heavy ones
if r.returncode:
    sys.exit("configure failed:\n" + r.stdout + r.stderr)

survivors, broken = [], []
for mutant in sorted((src / "tests" / "mutants").glob("*.mutant")):
    name = mutant.stem
    if only and name not in only:
        continue
    meta, blocks = parse(mutant)
    started = time.time()
    try:
        originals = apply(blocks)
    except ValueError as e:
        broken.append(f"{name}: {e}")
        print(f"BROKEN   {name} (must be caught by /{meta.get('test')}/): {e}", flush=True)
        continue
    try:
        targets = meta.get("targets", "").split()
        if targets:
            b = run(["cmake", "--build", build, "--target", *targets])
            if b.returncode:
                broken.append(f"{name}: the mutant does not build")
                print(f"BROKEN   {name}: the mutant does not build\n{b.stdout[-3000:]}", flush=True)
                continue
        t = run(["ctest", "--test-dir", build, "-R", meta["test"], "--repeat", f"until-fail:{meta.get('runs', '1')}",
                 "--timeout", "300"])
        listed = "No tests were found" not in t.stdout + t.stderr
        if not listed:
            broken.append(f"{name}: no test matches {meta['test']}")
            print(f"BROKEN   {name}: no test matches /{meta['test']}/", flush=True)
        elif t.returncode:
            print(f"caught   {name} ({meta['mutant']}) by /{meta['test']}/ in {time.time() - started:.0f} s", flush=True)
        else:
            survivors.append(name)
            print(f"SURVIVED {name} ({meta['mutant']}): /{meta['test']}/ passed {meta.get('runs', '1')} time(s)", flush=True)
    finally:
        for path, text in originals.items():
            path.write_text(text)

print(f"mutants: {len(survivors)} survived, {len(broken)} broken")
sys.exit(1 if survivors or broken else 0)
