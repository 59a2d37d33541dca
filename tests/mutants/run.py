#!/usr/bin/python3
"""Mutation check: each known bug, kept as a patch here, must be caught by its test.

Each tests/mutants/NAME.patch starts with
    # mutant: what the bug does
    # test: the ctest regex of the test(s) that must catch it
    # targets: what to build first (empty for compile-fail tests)
    # runs: how many runs the test gets to catch it (races: a few)
followed by a diff against the source that marks each changed line MUTANT. The script copies the source tree once, configures one
build of it, then for each patch: applies it, builds the targets, runs the test (until it
fails, at most `runs` times), and takes the patch back. It fails if any mutant survives.

Usage: run.py SOURCE_DIR WORK_DIR [C++ compiler] [NAME ...]
"""
import os
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


# The copy sits in a build directory, often inside a git checkout: stop git from finding that
# repository, or `git apply` would take the patch's paths as the outer repository's and skip them.
git_env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(work.resolve()))


def patched_files(patch):
    return [line[6:] for line in patch.read_text().splitlines() if line.startswith("+++ b/")]


shutil.rmtree(work, ignore_errors=True)
shutil.copytree(source, src, ignore=shutil.ignore_patterns("build", ".git", "__pycache__"))
r = run(["cmake", "-S", src, "-B", build, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_CXX_COMPILER={cxx}",
         "-DUNIWS_BUILD_BENCHMARKS=OFF", "-DUNIWS_WERROR=ON",
         "-DUNIWS_HEAVY_TESTS=ON"])  # the tests of some mutants (a Redis Cluster) are heavy ones
if r.returncode:
    sys.exit("configure failed:\n" + r.stdout + r.stderr)

survivors, broken = [], []
for patch in sorted((src / "tests" / "mutants").glob("*.patch")):
    name = patch.stem
    if only and name not in only:
        continue
    meta = {}
    for line in patch.read_text().splitlines():
        if not line.startswith("# "):
            break
        key, _, value = line[2:].partition(": ")
        meta[key] = value.strip()
    started = time.time()
    applied = run(["git", "apply", str(patch)], cwd=src, env=git_env).returncode == 0
    if not applied or not all("MUTANT" in (src / f).read_text() for f in patched_files(patch)):
        broken.append(f"{name}: the patch no longer applies")
        print(f"BROKEN   {name}: the patch no longer applies", flush=True)
        if applied:
            run(["git", "apply", "-R", str(patch)], cwd=src, env=git_env)
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
            print(f"caught   {name} ({meta['mutant']}) in {time.time() - started:.0f} s", flush=True)
        else:
            survivors.append(name)
            print(f"SURVIVED {name} ({meta['mutant']}): /{meta['test']}/ passed {meta.get('runs', '1')} time(s)", flush=True)
    finally:
        run(["git", "apply", "-R", str(patch)], cwd=src, env=git_env)

print(f"mutants: {len(survivors)} survived, {len(broken)} broken")
sys.exit(1 if survivors or broken else 0)
