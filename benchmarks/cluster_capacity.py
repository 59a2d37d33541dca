#!/usr/bin/python3
"""The inputs of docs/scaling.md's capacity model, measured: two uniws-golden-path nodes on a
local Redis Cluster (3 masters + 3 replicas, tests/support/redis_cluster.py), driven by
uniws-load (closed-loop agents, each user's connections split over both nodes). Over the
measured window it reads, from /proc and from the servers' own counters:

  node CPU per delivery     (both nodes' user+system CPU) / (frames they wrote)
  Redis CPU per event       (the masters' CPU) / (events the cluster accepted)
  replica CPU per event     (the replicas' CPU) / (events)
  bytes per event           the frames' mean size on the wire
  Redis memory per event    (the masters' used_memory growth) / (events their streams hold)

A benchmark, not a test: it asserts nothing. One machine runs everything (client, nodes, six
Redis processes), so the figures are per event and per delivery, not capacity.

With --single, the same against one redis-server and --redis (no replica): what the cluster
costs per event beside it.

Usage: cluster_capacity.py BUILD_DIR [--single] [--users K] [--connections C] [--seconds S] [--json FILE]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "support"))
from redis_cluster import RedisCluster, ServerNode, cli, free_port  # noqa: E402


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def used_memory(port):
    for line in cli(port, "INFO", "memory").splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def stream_events(port):
    """Events held in the history streams on one master."""
    keys = [k for k in cli(port, "--scan", "--pattern", "uniws:h:*").split() if k]
    total = 0
    for i in range(0, len(keys), 500):
        script = "".join(f"XLEN {k}\n" for k in keys[i:i + 500])
        out = subprocess.run(["redis-cli", "-p", str(port)], input=script, capture_output=True, text=True, timeout=60)
        total += sum(int(x) for x in out.stdout.split() if x.isdigit())
    return total


class SingleRedis:
    """One redis-server, no cluster, no replica: the --redis broker's store."""

    def __init__(self, work):
        self.port = free_port()
        os.makedirs(work)
        self.procs = {self.port: subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                                   "--save", "", "--appendonly", "no", "--dir", work,
                                                   "--logfile", os.path.join(work, "log")])}
        self.ports = [self.port]
        RedisCluster.wait(lambda: cli(self.port, "PING", check_rc=False).strip() == "PONG", "redis-server answers")

    def masters(self):
        return self.ports

    def stop(self):
        for p in self.procs.values():
            p.kill()
            p.wait()


def Node(server, store, users_file):
    if isinstance(store, SingleRedis):
        broker = ["--redis", f"127.0.0.1:{store.port}"]
    else:
        broker = ["--redis-cluster", ",".join(f"127.0.0.1:{p}" for p in store.ports[:2])]
    return ServerNode(server, "--agent-delay-ms", "0", "--users", users_file,
                      "--jwt-secret", "capacity-benchmark-secret-0123", *broker)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--single", action="store_true", help="one redis-server and --redis instead of a cluster")
    ap.add_argument("--json")
    a = ap.parse_args()
    server = os.path.join(a.build_dir, "examples", "uniws-golden-path")
    load = os.path.join(a.build_dir, "benchmarks", "uniws-load")
    work = tempfile.mkdtemp(prefix="uniws-capacity-")
    users_file = os.path.join(work, "users")
    with open(users_file, "w") as f:
        f.writelines(f"u{i}:pw-{i}\n" for i in range(a.users))
    cluster = SingleRedis(os.path.join(work, "redis")) if a.single else RedisCluster(os.path.join(work, "redis"))
    nodes = []
    try:
        nodes = [Node(server, cluster, users_file), Node(server, cluster, users_file)]
        RedisCluster.wait(lambda: all(n.stats()["broker_connected"] == 1 for n in nodes), "nodes connected")
        masters = cluster.masters()
        replicas = [p for p in cluster.ports if p not in masters]
        memory0 = sum(used_memory(p) for p in masters)
        p = subprocess.Popen([load, "--port", str(nodes[0].port), "--second-port", str(nodes[1].port), "--users",
                              str(a.users), "--connections", str(a.connections), "--seconds", str(a.seconds),
                              "--warmup", "2", "--steps", "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not p.stdout.readline().startswith("ready"):
            raise RuntimeError("uniws-load: " + p.stderr.read())
        time.sleep(2)
        pids = {"nodes": [n.proc.pid for n in nodes], "masters": [cluster.procs[m].pid for m in masters],
                "replicas": [cluster.procs[r].pid for r in replicas], "client": [p.pid]}
        cpu0 = {k: sum(cpu_seconds(x) for x in v) for k, v in pids.items()}
        s0 = [n.stats() for n in nodes]
        t0 = time.monotonic()
        time.sleep(a.seconds)
        cpu1 = {k: sum(cpu_seconds(x) for x in v) for k, v in pids.items()}
        s1 = [n.stats() for n in nodes]
        wall = time.monotonic() - t0
        out, err = p.communicate(timeout=120)
        res = json.loads(out.strip().splitlines()[-1])

        def delta(key):
            return sum(b[key] - x[key] for x, b in zip(s0, s1))

        events, deliveries, sent = delta("broker_published"), delta("messages_sent"), delta("bytes_sent")
        held = sum(stream_events(m) for m in masters)
        memory = sum(used_memory(m) for m in masters) - memory0
        figures = {
            "store": "one redis-server" if a.single else "Redis Cluster, 3 masters + 3 replicas",
            "users": a.users, "connections_per_user": a.connections, "seconds": round(wall, 2),
            "events_per_s": round(events / wall), "deliveries_per_s": round(deliveries / wall),
            "load_deliveries_per_s": res.get("deliveries_per_s"),
            "node_cpu_us_per_delivery": (cpu1["nodes"] - cpu0["nodes"]) * 1e6 / max(deliveries, 1),
            "node_busy": round((cpu1["nodes"] - cpu0["nodes"]) / wall, 2),
            "redis_master_cpu_us_per_event": (cpu1["masters"] - cpu0["masters"]) * 1e6 / max(events, 1),
            "redis_masters_busy": round((cpu1["masters"] - cpu0["masters"]) / wall, 2),
            "redis_replica_cpu_us_per_event": (cpu1["replicas"] - cpu0["replicas"]) * 1e6 / max(events, 1),
            "client_busy": round((cpu1["client"] - cpu0["client"]) / wall, 2),
            "bytes_per_delivery": sent / max(deliveries, 1),
            "events_in_streams": held,
            "redis_bytes_per_stored_event": memory / max(held, 1),
            "publish_failures": delta("publish_failures"),
            "cpus": os.cpu_count(),
        }
        for k, v in figures.items():
            print(f"{k:34} {round(v, 2) if isinstance(v, float) else v}")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f, indent=1)
    finally:
        for n in nodes:
            n.stop()
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
