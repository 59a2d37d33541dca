#!/usr/bin/python3
"""End-to-end comparison: uniws-golden-path against the servers a user would write instead
(uniws-load-uws: uWebSockets, the fastest C++ users know, when built; uniws-load-baseline: Beast
chat-multi's design; node_server.js: Node.js with `ws`, indexed by user; fastapi_server.py:
FastAPI + uvicorn, the seeds' own stack) and against the floor
(uniws-load-floor: the least work that delivers the same workload), driven by uniws-load over
loopback in the same run, interleaved. Prints figures and the ratios; --json FILE writes them
all. Benchmarks, not tests: it asserts nothing about speed (ctest runs it with --quick only to
prove it works).

Beside deliveries/s, each throughput run reports a figure the client cannot skew: the server's
CPU time (user + system, /proc/PID/stat) over the measured window divided by the deliveries in
it, and how busy the server and the load client were. A run whose client was busier than its
server was client-bound: its deliveries/s understate the server.
"""
import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
NODE_ENV = dict(os.environ, NODE_PATH="/usr/share/nodejs")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_of(bin_dir):
    """Which build the figures are of: the source commit (with `+` if the tree had changes), the
    build type and the compiler, from the build directory's CMake cache."""
    cache = {}
    try:
        with open(os.path.join(bin_dir, "CMakeCache.txt")) as f:
            for line in f:
                key, sep, value = line.rstrip("\n").partition("=")
                if sep and ":" in key:
                    cache[key.split(":")[0]] = value
    except OSError:
        pass
    source = cache.get("CMAKE_HOME_DIRECTORY", os.path.dirname(os.path.dirname(HERE)))

    def git(*args):
        r = subprocess.run(["git", "-C", source] + list(args), capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else ""
    commit = git("rev-parse", "--short", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "+"
    return {"commit": commit or "unknown", "build_type": cache.get("CMAKE_BUILD_TYPE", "unknown"),
            "compiler": os.path.basename(cache.get("CMAKE_CXX_COMPILER", "unknown"))}


def node_missing():
    """Why the Node.js peer cannot run here, or None."""
    try:
        r = subprocess.run(["node", "-e", "require('ws')"], env=NODE_ENV, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return "no `node` on PATH"
    return None if r.returncode == 0 else "node cannot load `ws` (Debian: node-ws)"


def fastapi_missing():
    """Why the FastAPI peer cannot run here, or None."""
    r = subprocess.run(["/usr/bin/python3", "-c", "import fastapi, uvicorn, jwt, websockets"], capture_output=True, text=True)
    return None if r.returncode == 0 else "/usr/bin/python3 lacks fastapi, uvicorn, jwt or websockets (Debian: python3-fastapi python3-uvicorn)"


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


class Server:
    # The workloads go past the example server's per-user limits on purpose (ten connections of a
    # user running at once, 10k idle connections): these are raised; the baseline has none.
    WORKLOAD_LIMITS = ["--max-runs-per-user", "100000", "--max-connections", "1000000",
                       "--max-connections-per-user", "100000", "--max-frames-per-second", "1000000"]

    def __init__(self, binary, users_file, args, indexed=False):
        if binary.endswith("uniws-golden-path"):
            args = args + self.WORKLOAD_LIMITS
        if indexed:
            args = args + ["--index-by-user", "1"]
        command = [binary, "--port", "0", "--address", "127.0.0.1", "--users", users_file] + args
        if binary.endswith(".js"):
            command = ["node", binary] + command[1:]
        elif binary.endswith(".py"):
            command = ["/usr/bin/python3", binary] + command[1:]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=NODE_ENV)
        line = self.proc.stdout.readline()
        m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            raise RuntimeError(f"{binary} said {line!r}")
        self.port = m.group(1)

    def rss(self):
        return status_kib(self.proc.pid, "VmRSS")

    def peak_rss(self):
        return status_kib(self.proc.pid, "VmHWM")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Redis:
    """A redis-server of its own: 127.0.0.1, a free port, a temporary directory, no persistence."""

    def __init__(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="uniws-e2e-redis-")
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir])


def run_load(load, port, args, timeout=600, server=None, warmup=0.0, seconds=0.0):
    """Runs uniws-load; with `server`, also measures its CPU and the client's over the window the
    load measures (from `warmup` after "ready", for `seconds`)."""
    p = subprocess.Popen([load, "--port", port] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cpu = None
    if server is not None:
        ready = p.stdout.readline()
        if not ready.startswith("ready"):
            p.kill()
            raise RuntimeError(f"uniws-load {' '.join(args)} said {ready!r}: {p.stderr.read().strip()}")
        time.sleep(warmup)
        s0, c0, t0 = cpu_seconds(server.proc.pid), cpu_seconds(p.pid), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = cpu_seconds(server.proc.pid), cpu_seconds(p.pid), time.monotonic()
        cpu = (s1 - s0, c1 - c0, t1 - t0)
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"uniws-load {' '.join(args)} failed: {err.strip()}")
    res = json.loads(out.strip().splitlines()[-1])
    if cpu:
        server_cpu, client_cpu, wall = cpu
        deliveries = res["deliveries_per_s"] * res["seconds"]
        res["server_cpu_us_per_delivery"] = server_cpu * 1e6 / deliveries if deliveries else 0
        res["server_busy"] = server_cpu / wall
        res["client_busy"] = client_cpu / wall
        res["client_bound"] = res["client_busy"] > res["server_busy"]
    return res


def idle_rss(server, load, users, per_user, hold):
    """RSS of `server` while uniws-load holds users x per_user idle connections."""
    p = subprocess.Popen([load, "--port", server.port, "--mode", "idle", "--users", str(users), "--connections",
                          str(per_user), "--seconds", str(hold)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise RuntimeError(f"uniws-load idle said {line!r}")
    time.sleep(1.0)  # let the server finish its side of the last handshakes
    rss = server.rss()
    p.wait()
    return rss


def ceiling(server, load, total, drivers, rest_seconds, probe=500, quick=False):
    """The server at the per-process descriptor ceiling: `total` idle, joined connections, held
    by `drivers` uniws-load processes (each with users of its own and a loopback address of its
    own, so a range of ephemeral ports of its own), the last `probe` of them opened while the
    rest are held. Returns the open rates, RSS per connection, the server's CPU at rest, and a
    new user's run latency (agent without pauses) while all of them are held."""
    held = total - probe
    per_driver = held // drivers // 10  # users of 10 connections each
    base = server.rss()
    hold = str(rest_seconds + 60)  # the drivers outlive the measurement; they are killed after it

    def driver(first_user, users, address):
        return subprocess.Popen([load, "--port", server.port, "--mode", "idle", "--users", str(users),
                                 "--connections", "10", "--seconds", hold, "--first-user", str(first_user),
                                 "--bind", address], stdout=subprocess.PIPE, text=True)

    def ready(p):
        line = p.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"uniws-load idle said {line!r}")
        return int(line.split()[1])

    procs = []
    try:
        started = time.monotonic()
        procs = [driver(k * per_driver, per_driver, f"127.0.0.{k + 2}") for k in range(drivers)]
        opened = sum(ready(p) for p in procs)
        open_seconds = time.monotonic() - started
        time.sleep(0.5 if quick else 2.0)  # the server finishes its side of the last handshakes
        c0, t0 = cpu_seconds(server.proc.pid), time.monotonic()
        time.sleep(rest_seconds)
        rest = (cpu_seconds(server.proc.pid) - c0) / (time.monotonic() - t0)
        rss = server.rss()
        started = time.monotonic()
        procs.append(driver(drivers * per_driver, probe // 10, f"127.0.0.{drivers + 2}"))
        probed = ready(procs[-1])
        probe_seconds = time.monotonic() - started
        run = run_load(load, server.port, ["--mode", "agents", "--users", "1", "--connections", "1", "--steps", "8",
                                           "--first-user", str(drivers * per_driver + probe // 10),
                                           "--seconds", "1" if quick else "3", "--warmup", "0" if quick else "1"])
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return {"connections": opened + probed, "drivers": drivers + 1,
            "opened_per_s": opened / open_seconds, "opened_per_s_while_holding": probed / probe_seconds,
            "rss_kib": rss, "rss_kib_0": base, "kib_per_connection": (rss - base) / opened,
            "rest_cpu_percent": 100 * rest, "rest_seconds": rest_seconds,
            "new_user_run_p50_ms": run["p50_ms"], "new_user_run_p99_ms": run["p99_ms"]}


def host_timer_floor(seconds):
    """What this host adds to an agent's four 10 ms pauses with no server at all: the same four
    sleeps in this process, repeated for `seconds`. A p99 over 40 ms here is scheduling noise
    (neighbours, a busy core) that every server's latency figure below includes too."""
    took = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        for _ in range(4):
            time.sleep(0.010)
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return {f"p{q}_ms": took[min(len(took) - 1, int(len(took) * float(q) / 100))] for q in ("50", "99", "99.9")}


SECTIONS = ("throughput", "paced", "load_curve", "latency", "idle", "ceiling", "stalled", "cluster")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", required=True, help="the build directory (build/gcc)")
    ap.add_argument("--quick", action="store_true", help="a few seconds each: prove it works")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--only", help="these sections only, comma-separated: " + ", ".join(SECTIONS))
    a = ap.parse_args()
    only = set(a.only.split(",")) if a.only else set(SECTIONS)
    if only - set(SECTIONS):
        ap.error(f"unknown section {', '.join(sorted(only - set(SECTIONS)))}; known: {', '.join(SECTIONS)}")

    def wanted(section):
        return section in only
    quick = a.quick
    seconds = "1" if quick else str(a.seconds)
    warmup = "1" if quick else "2"
    binaries = {
        "uniws": os.path.join(a.bin_dir, "examples", "uniws-golden-path"),
        "baseline": os.path.join(a.bin_dir, "benchmarks", "uniws-load-baseline"),
        "baseline-indexed": os.path.join(a.bin_dir, "benchmarks", "uniws-load-baseline"),
        "floor": os.path.join(a.bin_dir, "benchmarks", "uniws-load-floor"),
        "uws": os.path.join(a.bin_dir, "benchmarks", "uniws-load-uws"),
        "node": os.path.join(HERE, "node_server.js"),
        "fastapi": os.path.join(HERE, "fastapi_server.py"),
    }
    # The floor, then chat-multi's design with a per-user index, and as it is (a scan).
    peers = ["floor", "baseline-indexed", "baseline"]
    uws_missing = None if os.path.exists(binaries["uws"]) else \
        "not built (configure with UNIWS_UWEBSOCKETS_DIR naming uWebSockets' and uSockets' sources)"
    for peer, why_not in (("uws", uws_missing), ("node", node_missing()), ("fastapi", fastapi_missing())):
        if why_not:
            print(f"skipped    {peer}: {why_not}", flush=True)
        else:
            peers.append(peer)
    single_process = {"floor", "uws", "node", "fastapi"}  # one thread each: run at --threads 1 only
    load = os.path.join(a.bin_dir, "benchmarks", "uniws-load")
    results = {"throughput": [], "paced": [], "load_curve": {}, "latency": {}, "idle": {}, "ceiling": {}, "stalled": {},
               "cluster": {},
               "command": sys.argv, "host": platform.node(), "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M"),
               "build": build_of(a.bin_dir)}

    with tempfile.NamedTemporaryFile("w", prefix="uniws-e2e-users-", delete=False) as f:
        for i in range(20000):  # the ceiling's 19,000 connections are 1,900 users' and more
            f.write(f"u{i}:pw-{i}\n")
        users_file = f.name
    try:
        # 1. Deliveries/s at 1k connections (100 users x 10), closed-loop agents, interleaved.
        if wanted("throughput"):
            rounds = 1 if quick else 2
            for threads in (["1"] if quick else ["1", "2"]):
                for r in range(rounds):
                    # uniws-no-history: the same server with --history-events 0 (what resume costs).
                    for name in ["uniws", "uniws-no-history"] + peers:
                        if name in single_process and threads != "1":
                            continue
                        extra = ["--history-events", "0"] if name == "uniws-no-history" else []
                        with Server(binaries[name.replace("-no-history", "")], users_file,
                                    ["--threads", threads, "--agent-delay-ms", "0"] + extra, indexed=name.endswith("-indexed")) as s:
                            res = run_load(load, s.port, ["--mode", "agents", "--users", "100", "--connections", "10",
                                                          "--steps", "8", "--seconds", seconds, "--warmup", warmup],
                                           server=s, warmup=float(warmup), seconds=float(seconds))
                        res.update(server=name, threads=int(threads), round=r + 1)
                        results["throughput"].append(res)
                        print(f"throughput {name:16} threads={threads} round={r + 1}: "
                              f"{res['deliveries_per_s']:10.0f} deliveries/s  p99 {res['p99_ms']:.1f} ms  "
                              f"server {res['server_cpu_us_per_delivery']:.2f} us CPU/delivery, busy {res['server_busy']:.0%}; "
                              f"client busy {res['client_busy']:.0%}" + ("  CLIENT-BOUND" if res["client_bound"] else ""),
                              flush=True)

        # 1a. Paced: the same agents with a pause between two events of a run (an LLM streams its
        #     thinking over time), 1 and 2 ms; and bursts: no pause and no yield, a whole run
        #     emitted at once (--agent-burst 1). One server thread: server CPU per delivery of
        #     uniws (history on, as it ships), uWebSockets and the floor, alternating.
        if wanted("paced"):
            results["paced"] = []
            paced_peers = [p for p in ("uws", "floor") if p in peers]
            for delay, agent in (("0", "burst"), ("1", "paced"), ("2", "paced")):
                for r in range(1 if quick else 3):
                    for name in ["uniws"] + paced_peers:
                        args = ["--threads", "1", "--agent-delay-ms", delay] + (["--agent-burst", "1"] if agent == "burst" else [])
                        with Server(binaries[name], users_file, args) as s:
                            res = run_load(load, s.port, ["--mode", "agents", "--users", "100", "--connections", "10",
                                                          "--steps", "8", "--seconds", seconds, "--warmup", warmup],
                                           server=s, warmup=float(warmup), seconds=float(seconds))
                        res.update(server=name, agent_delay_ms=int(delay), agent=agent, round=r + 1)
                        results["paced"].append(res)
                        print(f"{agent:10} {name:16} pause {delay} ms round={r + 1}: {res['deliveries_per_s']:10.0f} deliveries/s  "
                              f"server {res['server_cpu_us_per_delivery']:.2f} us CPU/delivery, busy {res['server_busy']:.0%}; "
                              f"client busy {res['client_busy']:.0%}" + ("  CLIENT-BOUND" if res["client_bound"] else ""),
                              flush=True)

        # 1b. Latency under load, open loop: the same workload offered at 25, 50 and 90 % of each
        #     server's own best deliveries/s above (1 thread); run_agent -> agent_completed, agent
        #     delay 0. A run is 12 events to each of a user's 10 connections: 120 deliveries.
        if wanted("load_curve"):
            results["load_curve"] = {}
            for name in ["uniws"] + (peers[:1] if quick else peers):  # quick: prove it works
                best = max((r["deliveries_per_s"] for r in results["throughput"] if r["server"] == name and r["threads"] == 1), default=0)
                if not best:
                    continue
                curve = {}
                for fraction in ((0.5,) if quick else (0.25, 0.5, 0.9)):
                    rate = max(1.0, fraction * best / 120)
                    with Server(binaries[name], users_file, ["--agent-delay-ms", "0"], indexed=name.endswith("-indexed")) as s:
                        res = run_load(load, s.port, ["--mode", "broadcast", "--rate", f"{rate:.1f}", "--users", "100",
                                                      "--connections", "10", "--steps", "8", "--seconds", seconds,
                                                      "--warmup", warmup])
                    curve[f"{int(fraction * 100)}%"] = {"runs_per_s": rate, "p50_ms": res["p50_ms"], "p99_ms": res["p99_ms"],
                                                        "p999_ms": res["p999_ms"], "deliveries_per_s": res["deliveries_per_s"]}
                results["load_curve"][name] = curve
                print(f"curve      {name:16} " + "  ".join(f"{k} ({v['runs_per_s']:.0f} runs/s): p50 {v['p50_ms']:.1f} p99 {v['p99_ms']:.1f} "
                                                          f"p99.9 {v['p999_ms']:.1f} ms" for k, v in curve.items()), flush=True)

            # 1c. The latency target's comparison: uniws offered the same load as the best real peer
            #     at 90 % of that peer's maximum (uniws is then below 90 % of its own).
            real_peers = [p for p in peers if p != "floor" and p in results["load_curve"]]
            if real_peers and not quick:
                def best_of(name):
                    return max(r["deliveries_per_s"] for r in results["throughput"] if r["server"] == name and r["threads"] == 1)
                best = max(real_peers, key=best_of)
                rate = 0.9 * best_of(best) / 120
                with Server(binaries["uniws"], users_file, ["--agent-delay-ms", "0"]) as s:
                    res = run_load(load, s.port, ["--mode", "broadcast", "--rate", f"{rate:.1f}", "--users", "100",
                                                  "--connections", "10", "--steps", "8", "--seconds", seconds,
                                                  "--warmup", warmup])
                peer_p99 = results["load_curve"][best]["90%"]["p99_ms"]
                results["latency_at_best_peer_90"] = {"peer": best, "runs_per_s": rate, "uniws_p99_ms": res["p99_ms"],
                                                      "uniws_p50_ms": res["p50_ms"], "peer_p99_ms": peer_p99,
                                                      "ratio": res["p99_ms"] / peer_p99 if peer_p99 else 0}
                print(f"curve      uniws at 90 % of {best}'s maximum ({rate:.0f} runs/s): p50 {res['p50_ms']:.1f} p99 "
                      f"{res['p99_ms']:.1f} ms; {best} p99 {peer_p99:.1f} ms: ratio {res['p99_ms'] / peer_p99 if peer_p99 else 0:.2f}x",
                      flush=True)

        # 2. Golden-path latency at 1k users: a run per user per second, agent delays 4 x 10 ms.
        if wanted("latency"):
            floor = host_timer_floor(int(seconds))
            results["latency"]["host_floor"] = floor
            print(f"latency    host floor, 4 x 10 ms sleeps in this script: p50 {floor['p50_ms']:.1f}  "
                  f"p99 {floor['p99_ms']:.1f}  p99.9 {floor['p99.9_ms']:.1f} ms", flush=True)
            for name in ["uniws"] + peers:
                with Server(binaries[name], users_file, ["--agent-delay-ms", "10"], indexed=name.endswith("-indexed")) as s:
                    res = run_load(load, s.port, ["--mode", "broadcast", "--rate", "1000", "--users", "1000",
                                                  "--connections", "1", "--steps", "1", "--seconds", seconds,
                                                  "--warmup", warmup])
                res["agent_delays_ms"] = 40
                results["latency"][name] = res
                print(f"latency    {name:8} 1k users, 1k runs/s: p50 {res['p50_ms']:.1f}  p99 {res['p99_ms']:.1f}  "
                      f"p99.9 {res['p999_ms']:.1f} ms (the agent's own delays: 40 ms)", flush=True)

        # 3. Idle memory: RSS with 0, 1k and 10k authenticated, joined, idle connections.
        if wanted("idle"):
            sizes = [(100, 10)] if quick else [(100, 10), (1000, 10)]
            for name in ["uniws"] + peers:
                with Server(binaries[name], users_file, [], indexed=name.endswith("-indexed")) as s:
                    base = s.rss()
                    entry = {"rss_kib_0": base}
                    for users, per_user in sizes:
                        n = users * per_user
                        entry[f"rss_kib_{n}"] = idle_rss(s, load, users, per_user, 3)
                        entry[f"kib_per_connection_{n}"] = (entry[f"rss_kib_{n}"] - base) / n
                results["idle"][name] = entry
                print(f"idle       {name:8} " + "  ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in entry.items()), flush=True)

        # 3b. At the descriptor ceiling (a process here holds at most 20,000): 19,000 idle, joined
        #     connections from three driver processes; the server's CPU at rest, RSS, open rates,
        #     a new user's run latency meanwhile. uniws and uWebSockets (one thread each).
        if wanted("ceiling"):
            total, rest_seconds = (2000, 1) if quick else (19000, 10)
            for name in ["uniws"] + [p for p in peers if p == "uws"]:
                with Server(binaries[name], users_file, ["--agent-delay-ms", "0", "--threads", "1"]) as s:
                    entry = ceiling(s, load, total, 2, rest_seconds, quick=quick)
                results["ceiling"][name] = entry
                print(f"ceiling    {name:8} {entry['connections']} idle connections: CPU at rest "
                      f"{entry['rest_cpu_percent']:.2f} % of a core, {entry['kib_per_connection']:.2f} KiB each; opened "
                      f"{entry['opened_per_s']:.0f}/s, {entry['opened_per_s_while_holding']:.0f}/s while holding them; "
                      f"a new user's run p50 {entry['new_user_run_p50_ms']:.2f} p99 {entry['new_user_run_p99_ms']:.2f} ms",
                      flush=True)

        # 4. Stalled readers: 10 connections that never read, 64 KB messages sent to them.
        if wanted("stalled"):
            steps = "200" if quick else "4000"
            queue_bytes = 8 << 20
            for name in ("uniws", "baseline"):
                args = ["--agent-delay-ms", "0"]
                if name == "uniws":
                    args += ["--queue-bytes", str(queue_bytes)]
                with Server(binaries[name], users_file, args) as s:
                    base = s.rss()
                    res = run_load(load, s.port, ["--mode", "stalled", "--connections", "10", "--steps", steps,
                                                  "--pad", "65536", "--seconds", "3" if not quick else "1",
                                                  "--warmup", "0"])
                    time.sleep(0.5)
                    peak = s.peak_rss()
                entry = {"messages": int(steps), "message_kib": 64, "stalled_connections": 10, "rss_kib_idle": base,
                         "peak_rss_kib": peak, "runs": res["runs_sent"]}
                if name == "uniws":
                    entry["bound_kib"] = 10 * queue_bytes // 1024 + base
                results["stalled"][name] = entry
                print(f"stalled    {name:8} peak RSS {peak / 1024:.1f} MiB (idle {base / 1024:.1f} MiB)"
                      + (f", bound {entry['bound_kib'] / 1024:.1f} MiB" if "bound_kib" in entry else ""), flush=True)
        # 5. Two nodes through Redis: the added latency of a delivery on the other node, and
        #    deliveries/s when every event goes through Redis. The added latency is measured
        #    twice at 1,000 runs/s: with an agent that does not sleep, so run_agent ->
        #    agent_completed is the delivery path alone (the figure: one node p99 vs
        #    the other node's p99), and with the 4 x 10 ms agent of step 2, whose timer jitter
        #    (the host floor above) lands in both sides of the difference.
        if wanted("cluster"):
            def node_args(redis, delay_ms):
                return ["--agent-delay-ms", delay_ms, "--redis", f"127.0.0.1:{redis.port}",
                        "--jwt-secret", "e2e-cluster-secret-0123456789"]

            spread_load = ["--mode", "broadcast", "--rate", "1000", "--users", "1000", "--connections", "2",
                           "--steps", "1", "--seconds", seconds, "--warmup", warmup]
            flood_load = ["--mode", "agents", "--users", "100", "--connections", "10", "--steps", "8",
                          "--seconds", seconds, "--warmup", warmup]
            cluster = {}
            with Redis() as redis:
                # (name, agent delay, load, also measured on one node without Redis)
                for key, delay_ms, mode, against_one_node in (("delivery", "0", spread_load, True),
                                                              ("with_agent", "10", spread_load, True),
                                                              ("agents", "0", flood_load, False)):
                    if against_one_node:
                        with Server(binaries["uniws"], users_file, ["--agent-delay-ms", delay_ms]) as single:
                            cluster[f"{key}_single_node"] = run_load(load, single.port, mode)
                    args = node_args(redis, delay_ms)
                    with Server(binaries["uniws"], users_file, args) as node_a, \
                            Server(binaries["uniws"], users_file, args) as node_b:
                        time.sleep(0.5)  # both nodes connect to Redis
                        cluster[f"{key}_two_nodes"] = run_load(load, node_a.port, ["--second-port", node_b.port] + mode)
            for key in ("delivery", "with_agent"):
                alone, spread = cluster[f"{key}_single_node"], cluster[f"{key}_two_nodes"]
                cluster[f"{key}_added_p99_ms"] = spread["remote_p99_ms"] - alone["p99_ms"]
                what = "delivery alone (agent does not sleep)" if key == "delivery" else "with the 4 x 10 ms agent"
                print(f"cluster    {what}, 1,000 runs/s: one node, no Redis p99 {alone['p99_ms']:.2f} ms; two nodes "
                      f"through Redis: sender's node p99 {spread['p99_ms']:.2f} ms, other node p99 "
                      f"{spread['remote_p99_ms']:.2f} ms: added p99 {cluster[f'{key}_added_p99_ms']:.2f} ms", flush=True)
            print(f"cluster    closed-loop agents over two nodes: {cluster['agents_two_nodes']['deliveries_per_s']:.0f} "
                  f"deliveries/s", flush=True)
            results["cluster"] = cluster
    finally:
        os.unlink(users_file)

    # Ratios, same run.
    def mean(name, threads):
        xs = [r["deliveries_per_s"] for r in results["throughput"] if r["server"] == name and r["threads"] == threads]
        return sum(xs) / len(xs) if xs else 0

    def mean_cpu(name, threads):
        xs = [r["server_cpu_us_per_delivery"] for r in results["throughput"] if r["server"] == name and r["threads"] == threads]
        return sum(xs) / len(xs) if xs else 0

    ratios = {}
    for threads in sorted({r["threads"] for r in results["throughput"]}):
        u, b = mean("uniws", threads), mean("baseline", threads)
        ratios[f"deliveries_threads_{threads}"] = u / b if b else 0
        print(f"ratio uniws/baseline deliveries/s, {threads} server thread(s): {ratios[f'deliveries_threads_{threads}']:.2f}x")
        for peer in peers:
            pu, pc = mean(peer, threads), mean_cpu(peer, threads)
            if not pu:
                continue
            ratios[f"deliveries_vs_{peer}_threads_{threads}"] = u / pu
            ratios[f"cpu_per_delivery_{peer}_over_uniws_threads_{threads}"] = pc / mean_cpu("uniws", threads) if mean_cpu("uniws", threads) else 0
            print(f"ratio uniws/{peer}, {threads} server thread(s): deliveries/s {u / pu:.2f}x, server CPU per delivery "
                  f"{peer}/uniws {ratios[f'cpu_per_delivery_{peer}_over_uniws_threads_{threads}']:.2f}x")
        if threads == 1 and mean_cpu("floor", 1):
            real_peers = [p for p in peers if p != "floor" and mean_cpu(p, 1)]
            ratios["cpu_per_delivery_uniws_over_floor"] = mean_cpu("uniws", 1) / mean_cpu("floor", 1)
            print(f"ratio uniws/floor server CPU per delivery: {ratios['cpu_per_delivery_uniws_over_floor']:.2f}x")
            if real_peers:
                best = min(real_peers, key=lambda p: mean_cpu(p, 1))
                ratios["cpu_per_delivery_uniws_over_best_peer"] = mean_cpu("uniws", 1) / mean_cpu(best, 1)
                print(f"ratio uniws/best peer ({best}) server CPU per delivery: "
                      f"{ratios['cpu_per_delivery_uniws_over_best_peer']:.2f}x")
        n = mean("uniws-no-history", threads)
        ratios[f"history_on_off_threads_{threads}"] = u / n if n else 0
        print(f"ratio uniws with/without history deliveries/s, {threads} server thread(s): "
              f"{ratios[f'history_on_off_threads_{threads}']:.2f}x")
    # uniws against uWebSockets: server CPU per delivery at each pause, idle memory per connection.
    if "uws" in peers:
        def paced_cpu(name, delay, agent):
            xs = [r["server_cpu_us_per_delivery"] for r in results["paced"]
                  if r["server"] == name and r["agent_delay_ms"] == delay and r["agent"] == agent]
            return sum(xs) / len(xs) if xs else 0
        # pause 0: the agent yields between events (the throughput runs); burst: it does not.
        pauses = {"0ms": (mean_cpu("uniws", 1), mean_cpu("uws", 1)),
                  "burst": (paced_cpu("uniws", 0, "burst"), paced_cpu("uws", 0, "burst"))}
        pauses.update({f"{d}ms": (paced_cpu("uniws", d, "paced"), paced_cpu("uws", d, "paced")) for d in (1, 2)})
        for d, (u, w) in pauses.items():
            if not (u and w):
                continue  # that section did not run
            ratios[f"cpu_per_delivery_uniws_over_uws_pause_{d}"] = u / w
            print(f"ratio uniws/uWebSockets server CPU per delivery, {d}: {u:.2f} / {w:.2f} us = "
                  f"{u / w if w else 0:.2f}x")
        for key in results["idle"].get("uniws", {}):
            if key.startswith("kib_per_connection_") and results["idle"].get("uws", {}).get(key):
                ratio = results["idle"]["uniws"][key] / results["idle"]["uws"][key]
                ratios[f"idle_uniws_over_uws_{key[len('kib_per_connection_'):]}"] = ratio
                print(f"ratio uniws/uWebSockets idle KiB per connection at {key[len('kib_per_connection_'):]}: "
                      f"{results['idle']['uniws'][key]:.2f} / {results['idle']['uws'][key]:.2f} = {ratio:.2f}x")
    results["ratios"] = ratios
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
