#!/usr/bin/python3
"""Same-run comparison of server builds under uniws-load's agents workload (100 users x 10
connections, runs of 12 events, one server thread): server CPU per delivery from /proc, rounds
alternating between the servers at each agent pause. For before/after figures (two builds of
uniws-golden-path) and for a peer beside them; run_e2e.py's sections are the full suite.

    compare_servers.py --load build/gcc/benchmarks/uniws-load --pauses 0,1,2 --rounds 3 \\
        before=/tmp/old/uniws-golden-path after=build/gcc/examples/uniws-golden-path \\
        uws=build/gcc/benchmarks/uniws-load-uws "burst=build/gcc/examples/uniws-golden-path --agent-burst 1"

A server is NAME=BINARY [ARGS...] (one shell word). Prints each run and the mean per server and
pause; --json FILE writes them."""
import argparse
import json
import os
import shlex
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_e2e as e  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--load", required=True, help="the uniws-load binary")
    ap.add_argument("--pauses", default="0,1,2", help="agent pauses in ms, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", default="4")
    ap.add_argument("--json")
    ap.add_argument("servers", nargs="+", help="NAME=BINARY [ARGS...]")
    a = ap.parse_args()
    servers = {}
    for spec in a.servers:
        name, _, command = spec.partition("=")
        if not command:
            ap.error(f"{spec}: expected NAME=BINARY [ARGS...]")
        servers[name] = shlex.split(command)
    with tempfile.NamedTemporaryFile("w", prefix="uniws-compare-users-", delete=False) as f:
        for i in range(10000):
            f.write(f"u{i}:pw-{i}\n")
        users = f.name
    runs = []
    try:
        for pause in a.pauses.split(","):
            for r in range(a.rounds):
                for name, (binary, *args) in servers.items():
                    with e.Server(binary, users, ["--threads", "1", "--agent-delay-ms", pause] + args) as s:
                        res = e.run_load(a.load, s.port, ["--mode", "agents", "--users", "100", "--connections", "10",
                                                          "--steps", "8", "--seconds", a.seconds, "--warmup", "2"],
                                         server=s, warmup=2.0, seconds=float(a.seconds))
                    res.update(server=name, agent_delay_ms=int(pause), round=r + 1)
                    runs.append(res)
                    print(f"{name:12} pause {pause} ms round {r + 1}: {res['deliveries_per_s']:9.0f}/s  "
                          f"{res['server_cpu_us_per_delivery']:.2f} us CPU/delivery  busy {res['server_busy']:.0%}  "
                          f"client {res['client_busy']:.0%}  p99 {res['p99_ms']:.1f} ms", flush=True)
    finally:
        os.unlink(users)
    means = {}
    for pause in a.pauses.split(","):
        for name in servers:
            xs = [r["server_cpu_us_per_delivery"] for r in runs
                  if r["server"] == name and r["agent_delay_ms"] == int(pause)]
            means[f"{name}@{pause}"] = sum(xs) / len(xs)
            print(f"mean {name}@{pause} ms: {means[f'{name}@{pause}']:.2f} us ({', '.join(f'{x:.2f}' for x in xs)})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"command": sys.argv, "runs": runs, "means": means}, f, indent=1)


if __name__ == "__main__":
    main()
