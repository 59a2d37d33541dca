#!/usr/bin/python3
"""A real Prometheus (Debian's package) scrapes the example server's /metrics on its admin
port while a load runs; the test reads the figures back through Prometheus's HTTP API.

Usage: prometheus_test.py PATH/TO/uniws-golden-path WORK_DIR
Rules checked: proto-M1 proto-M3 proto-H7
"""
import asyncio
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, failures  # noqa: E402


def http_get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary):
    server = subprocess.Popen([binary, "--port", "0", "--admin-port", "0", "--agent-delay-ms", "0",
                               "--max-runs-per-user", "10"],
                              stdout=subprocess.PIPE, text=True)
    main = server.stdout.readline().strip().rsplit(":", 1)[1]
    admin = server.stdout.readline().strip()
    assert admin.startswith("admin on http://127.0.0.1:"), admin
    return server, int(main), int(admin.rsplit(":", 1)[1])


def start_prometheus(work, target):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    config = os.path.join(work, "prometheus.yml")
    with open(config, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: uniws\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{target}']\n")
    port = free_port()
    log = open(os.path.join(work, "prometheus.log"), "w")
    proc = subprocess.Popen(["prometheus", "--config.file=" + config, "--storage.tsdb.path=" + os.path.join(work, "data"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=log)
    base = "http://127.0.0.1:%d" % port
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if http_get(base + "/-/ready")[0] == 200:
                return proc, base
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("prometheus did not become ready; see " + log.name)


def query(base, promql):
    status, body = http_get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    data = json.loads(body)
    if status != 200 or data.get("status") != "success":
        raise RuntimeError(f"query {promql}: {status} {body[:200]}")
    return data["data"]["result"]


def scalar(base, promql):
    result = query(base, promql)
    return float(result[0]["value"][1]) if result else None


def wait_for(what, predicate, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    check(False, what + " (timed out)")
    return None


def login(port, user):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/login", method="POST",
                                 data=json.dumps({"user": user, "password": user + "-pw"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())["token"]


async def load(port, runs=10, steps=20):
    """Two users, 3 + 2 connections all on thread t1; each user runs `runs` agents. Returns
    the events every connection received (the deliveries)."""
    uri = f"ws://127.0.0.1:{port}/ws?token="
    received = 0
    for user, tabs in (("alice", 3), ("bob", 2)):
        token = login(port, user)
        conns = [await websockets.connect(uri + token) for _ in range(tabs)]
        for ws in conns:
            await ws.send(json.dumps({"type": "join", "thread_id": "t1"}))
        for ws in conns:  # the join is handled once answered
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "joined"
        for _ in range(runs):
            await conns[0].send(json.dumps({"type": "run_agent", "thread_id": "t1", "steps": steps}))
        for ws in conns:
            done = 0
            while done < runs:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if frame["type"] == "joined":  # run_agent's join answer: not an event
                    continue
                received += 1
                done += frame["type"] == "agent_completed"
            await ws.close()
    return received


def main():
    binary, work = sys.argv[1], sys.argv[2]
    server, port, admin = start_server(binary)
    prometheus = None
    try:
        check(http_get(f"http://127.0.0.1:{port}/metrics")[0] == 404, "/metrics is not on the public port with --admin-port")
        status, body = http_get(f"http://127.0.0.1:{admin}/metrics")
        check(status == 200 and b"# TYPE uniws_messages_sent_total counter" in body, "/metrics on the admin port")
        check(b"# TYPE uniws_events_replayed_total counter" in body, "resumes are counted: uniws_events_replayed_total (proto-M2)")
        check(http_get(f"http://127.0.0.1:{admin}/login")[0] == 404, "the admin port serves nothing else")

        prometheus, base = start_prometheus(work, admin)
        before = wait_for("Prometheus scraped the server", lambda: query(base, 'uniws_messages_sent_total{job="uniws"}'))
        sent_before = float(before[0]["value"][1]) if before else 0.0

        delivered = asyncio.run(load(port))
        print(f"the clients counted {delivered} deliveries", flush=True)
        check(delivered == (3 + 2) * 10 * (20 + 4), "every connection got every event of its user's runs")

        target = sent_before + delivered
        got = wait_for("Prometheus saw the deliveries",
                       lambda: scalar(base, 'uniws_messages_sent_total{job="uniws"}') == target and target)
        check(got == target, f"uniws_messages_sent_total rose by the {delivered} deliveries the clients counted")

        p99 = wait_for("a p99 delivery latency", lambda: scalar(
            base, 'histogram_quantile(0.99, sum by (le) (rate(uniws_delivery_seconds_bucket{job="uniws"}[1m])))'))
        check(p99 is not None and math.isfinite(p99) and p99 > 0, f"histogram_quantile(0.99) of uniws_delivery_seconds is a number: {p99}")
        count = scalar(base, 'uniws_delivery_seconds_count{job="uniws"}')
        check(count == target, "uniws_delivery_seconds counted every delivery written")

        names = {r["metric"]["__name__"] for r in query(base, '{job="uniws",__name__=~"uniws_.*"}')}
        for name in ["uniws_connections", "uniws_users", "uniws_messages_sent_total", "uniws_messages_dropped_total",
                     "uniws_connections_closed_slow_total", "uniws_bad_frames_total", "uniws_runs_started_total",
                     "uniws_delivery_seconds_bucket", "uniws_delivery_seconds_sum", "uniws_delivery_seconds_count",
                     "uniws_queue_bytes_bucket", "uniws_publish_failures_total", "uniws_restamped_total",
                     "uniws_unrouted_total"]:
            check(name in names, f"Prometheus stored {name}")
        check(scalar(base, 'uniws_runs_started_total{job="uniws"}') == 20, "uniws_runs_started_total = 20")
    finally:
        if prometheus:
            prometheus.terminate()
            try:
                prometheus.wait(15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
        server.terminate()
        check(server.wait(15) == 0, "the server exits 0 on SIGTERM")
    print(f"prometheus_test: {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
