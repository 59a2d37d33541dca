#!/usr/bin/python3
"""examples/beast_minimal.cpp over real sockets, driven by python3-websockets.

Usage: beast_minimal_test.py PATH/TO/uniws-beast-minimal
Two tabs of alice and one of bob join thread t1; a message from one of alice's tabs starts a
run: both of alice's tabs get the five events in order, bob's gets nothing. A request without
a user is refused with 401. A closed tab leaves its user's manager.
"""
import asyncio
import json
import subprocess
import sys

import websockets

FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


async def receive(ws, timeout=5.0):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def one_run(sender, tabs):
    """Sends a prompt from `sender`; returns the events each tab received for that run."""
    await sender.send("What is uniws?")
    return [[await receive(tab) for _ in FIVE] for tab in tabs]


async def next_line(server):
    return await asyncio.wait_for(asyncio.to_thread(server.stdout.readline), 5)


def check_run(events, what):
    types = [e["type"] for e in events]
    assert types == FIVE, f"{what}: {types}"
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5, f"{what}: seqs {seqs}"
    assert len({e["run_id"] for e in events}) == 1, f"{what}: one run, got {events}"


async def main(base, server):
    async with websockets.connect(base + "?user=alice&thread=t1") as a1, \
               websockets.connect(base + "?user=alice&thread=t1") as a2, \
               websockets.connect(base + "?user=bob&thread=t1") as b1:
        for tab in (a1, a2, b1):
            assert (await receive(tab))["type"] == "joined"
        a_events = await one_run(a1, [a1, a2])
        for i, events in enumerate(a_events):
            check_run(events, f"alice's tab {i + 1}")
        assert a_events[0] == a_events[1], "both of alice's tabs got the same events"
        try:
            stray = await receive(b1, timeout=0.3)
            raise AssertionError(f"bob got alice's event {stray}")
        except asyncio.TimeoutError:
            pass
        print("ok: alice's two tabs got the five events in order; bob got none")

        await a2.close()
        line = await next_line(server)
        while line.startswith("open "):
            line = await next_line(server)
        assert line.startswith("closed alice") and "(1 left)" in line, f"close not seen: {line!r}"
        check_run((await one_run(a1, [a1]))[0], "alice's remaining tab")
        print("ok: a closed tab leaves the manager; the other goes on")

    try:
        async with websockets.connect(base + "?thread=t1"):
            raise AssertionError("an upgrade without a user was accepted")
    except websockets.exceptions.InvalidStatusCode as e:
        assert e.status_code == 401, e
    print("ok: no user, no WebSocket (401)")


server = subprocess.Popen([sys.argv[1], "--port", "0"], stdout=subprocess.PIPE, text=True)
try:
    first = server.stdout.readline()
    assert first.startswith("listening on ws://"), first
    asyncio.run(main(first.split()[-1], server))
finally:
    server.terminate()
    server.wait(10)
print("example.beast_minimal: all checks passed")
