#!/usr/bin/python3
"""The golden path, driven by a client nobody here wrote: Debian's python3-websockets.

Usage: python_client.py PATH/TO/uniws-golden-path
Starts the server on a free port, walks docs/protocol.md's golden path with two tabs of
alice and one of bob, checks the answers, then stops the server with SIGTERM.
Then a tab drops mid-run and resumes from its last seq (§R), frame by frame: this checks the
server's resume rules on the wire, as any client sees them. The client that reconnects and
resumes by itself is clients/python (uniws_client), tested in client_python_test.py.
Rules checked: proto-S1 proto-H1 proto-W1 proto-W5 proto-W7 proto-W9 proto-S2 proto-R1 proto-R2 proto-R3
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import FIVE, check, failures  # noqa: E402


def post_json(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def read_until(ws, type_, timeout=10):
    frames = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        frames.append(frame)
        if frame["type"] == type_:
            return frames


async def scenario(port):
    base = f"http://127.0.0.1:{port}"
    uri = f"ws://127.0.0.1:{port}/ws"

    status, body = post_json(base, "/login", {"user": "alice", "password": "alice-pw"})
    check(status == 200 and len(body["token"]) >= 32, "alice logs in")
    alice = body["token"]
    status, body = post_json(base, "/login", {"user": "alice", "password": "nope"})
    check(status == 401 and "code" in body["error"], "a wrong password gets 401 with an error object")
    status, body = post_json(base, "/login", {"user": "bob", "password": "bob-pw"})
    bob = body["token"]

    try:
        async with websockets.connect(uri + "?token=forged"):
            check(False, "a forged token is refused")
    except websockets.exceptions.InvalidStatusCode as e:
        check(e.status_code == 401, "a forged token gets HTTP 401 before the upgrade")

    async with websockets.connect(uri + "?token=" + alice) as tab1, \
            websockets.connect(uri, extra_headers={"Authorization": "Bearer " + alice}) as tab2, \
            websockets.connect(uri + "?token=" + bob) as bob_ws:
        await tab1.send(json.dumps({"type": "ping"}))
        check(json.loads(await asyncio.wait_for(tab1.recv(), 10)) == {"type": "pong"}, "ping gets pong")

        for ws in (tab2, bob_ws):
            await ws.send(json.dumps({"type": "join", "thread_id": "t1"}))
            joined = json.loads(await asyncio.wait_for(ws.recv(), 10))
            check(joined["type"] == "joined" and joined["thread_id"] == "t1" and len(joined["epoch"]) == 32
                  and isinstance(joined["seq"], int), "a join is answered with joined, epoch and seq")

        await tab1.send(json.dumps({"type": "run_agent", "thread_id": "t1", "message": "from python"}))
        first = json.loads(await asyncio.wait_for(tab1.recv(), 10))
        check(first["type"] == "joined", "run_agent's join is answered with joined before the events")
        a = await read_until(tab1, "agent_completed")
        b = await read_until(tab2, "agent_completed")
        check([f["type"] for f in a] == FIVE, "tab 1 gets the five events in order")
        check(a == b, "tab 2 gets the same five events")
        seqs = [f["seq"] for f in a]
        check(seqs == list(range(seqs[0], seqs[0] + 5)), "seq increases by one")
        check(len({f["run_id"] for f in a}) == 1 and all(f["thread_id"] == "t1" for f in a), "one run, one thread")
        try:
            frame = await asyncio.wait_for(bob_ws.recv(), 0.5)
            check(False, "bob receives nothing of alice's run, got " + frame)
        except asyncio.TimeoutError:
            check(True, "bob receives nothing of alice's run")

        await tab1.send("not json")
        err = json.loads(await asyncio.wait_for(tab1.recv(), 10))
        check(err["type"] == "error" and err["code"] == "bad_request", "bad JSON gets error bad_request")
        await tab1.send(b"\x00\x01")
        err = json.loads(await asyncio.wait_for(tab1.recv(), 10))
        check(err["type"] == "error" and err["code"] == "unsupported", "a binary frame gets error unsupported")
        await tab1.send(json.dumps({"type": "ping"}))
        check(json.loads(await asyncio.wait_for(tab1.recv(), 10))["type"] == "pong", "the connection stays open")

    await resume(uri, alice)


async def resume(uri, token):
    """A tab reads two events of a run, loses its connection, comes back with epoch and last seq
    (the wire frames R1-R3; uniws_client does this for users)."""
    async with websockets.connect(uri + "?token=" + token) as runner:
        phone = await websockets.connect(uri + "?token=" + token)
        await phone.send(json.dumps({"type": "join", "thread_id": "t2"}))
        epoch = json.loads(await asyncio.wait_for(phone.recv(), 10))["epoch"]
        await runner.send(json.dumps({"type": "run_agent", "thread_id": "t2", "message": "resume me"}))
        got = [json.loads(await asyncio.wait_for(phone.recv(), 10)) for _ in range(2)]
        await phone.close()  # the phone drops after two events
        await read_until(runner, "agent_completed")

        again = await websockets.connect(uri + "?token=" + token)
        await again.send(json.dumps({"type": "join", "thread_id": "t2", "epoch": epoch, "after_seq": got[-1]["seq"]}))
        frames = await read_until(again, "joined")
        types = [f["type"] for f in got + frames[:-1]]
        check(types == FIVE, "the resumed tab has the run's five events, each once: " + ",".join(types))
        check(frames[-1].get("recovered") is True and frames[-1].get("replayed") == 3, "joined says recovered, 3 replayed")
        seqs = [f["seq"] for f in got + frames[:-1]]
        check(seqs == sorted(set(seqs)), "in seq order, none repeated")

        await again.send(json.dumps({"type": "join", "thread_id": "t3", "epoch": "0" * 32, "after_seq": 1}))
        lost = json.loads(await asyncio.wait_for(again.recv(), 10))
        check(lost["type"] == "joined" and lost["recovered"] is False and lost["epoch"] == epoch,
              "another epoch: joined with recovered false and the current epoch, no replay")
        await again.send(json.dumps({"type": "join", "thread_id": "t3", "after_seq": 1}))
        err = json.loads(await asyncio.wait_for(again.recv(), 10))
        check(err["type"] == "error" and err["code"] == "bad_request", "after_seq without epoch is a bad request")
        await again.close()


def main():
    server = subprocess.Popen([sys.argv[1], "--port", "0", "--agent-delay-ms", "1"], stdout=subprocess.PIPE, text=True)
    try:
        first = server.stdout.readline().strip()
        check(first.startswith("listening on http://127.0.0.1:"), "first line: " + first)
        port = int(first.rsplit(":", 1)[1])
        asyncio.run(scenario(port))
        server.send_signal(signal.SIGTERM)
        check(server.wait(timeout=15) == 0, "SIGTERM: the server exits 0")
    finally:
        if server.poll() is None:
            server.kill()
    print(f"python_client: {len(failures)} failed checks")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
