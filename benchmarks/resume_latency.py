#!/usr/bin/python3
"""Resume latency, end to end: a client that missed 1,000 events of a thread sends the resume
join; measured is the time from that send to the `joined` answer (the replay arrives first).
One node (history in the manager), and one node with --redis (history in a Redis Stream).

Usage: resume_latency.py BUILD_DIR [--rounds N]     (needs redis-server and python3-websockets)
Prints the median and the 90th percentile per setup, and their ratio.
"""
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import websockets

MISSED = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(binary, *extra):
    proc = subprocess.Popen([binary, "--port", "0", "--agent-delay-ms", "0", "--history-events", "4096",
                             "--history-bytes", str(64 << 20), "--queue-messages", "8192", *extra],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline().strip().rsplit(":", 1)[1])
    return proc, port


def login(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/login", method="POST",
                                 data=json.dumps({"user": "alice", "password": "alice-pw"}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())["token"]


async def until(ws, pred):
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if pred(frame):
            return frame


async def one_round(port, token, thread):
    uri = f"ws://127.0.0.1:{port}/ws?token={token}"
    async with websockets.connect(uri, max_size=None) as runner:
        phone = await websockets.connect(uri)
        await phone.send(json.dumps({"type": "join", "thread_id": thread}))
        joined = await until(phone, lambda f: f["type"] == "joined")
        await phone.close()
        # started + thinking * (MISSED - 4) + the tool pair + completed = MISSED events
        await runner.send(json.dumps({"type": "run_agent", "thread_id": thread, "steps": MISSED - 4}))
        await until(runner, lambda f: f["type"] == "agent_completed")
        again = await websockets.connect(uri, max_size=None)
        start = time.perf_counter()
        await again.send(json.dumps({"type": "join", "thread_id": thread, "epoch": joined["epoch"],
                                     "after_seq": joined["seq"]}))
        answer = await until(again, lambda f: f["type"] == "joined")
        elapsed = time.perf_counter() - start
        await again.close()
        assert answer["recovered"] and answer["replayed"] == MISSED, answer
        return elapsed


async def measure(port, rounds):
    token = login(port)
    await one_round(port, token, "warm-up")
    return [await one_round(port, token, f"t{i}") for i in range(rounds)]


def summary(name, samples):
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))]
    print(f"{name:<22} median {statistics.median(ms):7.2f} ms   p90 {p90:7.2f} ms   ({len(ms)} resumes of {MISSED} events)")
    return statistics.median(ms)


def main():
    build = sys.argv[1]
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 20
    binary = os.path.join(build, "examples", "uniws-golden-path")
    results = {}
    server, port = start_server(binary)
    try:
        results["one node"] = summary("one node", asyncio.run(measure(port, rounds)))
    finally:
        server.terminate()
        server.wait(15)
    with tempfile.TemporaryDirectory() as work:
        redis_port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
                                  "--dir", work], stdout=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            server, port = start_server(binary, "--redis", f"127.0.0.1:{redis_port}")
            try:
                time.sleep(0.5)  # the broker connects
                results["through Redis"] = summary("through Redis", asyncio.run(measure(port, rounds)))
            finally:
                server.terminate()
                server.wait(15)
        finally:
            redis.terminate()
            redis.wait(10)
    print(f"ratio through Redis / one node: {results['through Redis'] / results['one node']:.2f}")


if __name__ == "__main__":
    main()
