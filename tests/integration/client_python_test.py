#!/usr/bin/python3
"""clients/python (uniws_client) against the real server: it resumes as docs/clients.md says.

Usage: client_python_test.py PATH/TO/uniws-golden-path
1. A drop mid-run (the admin port's /disconnect, twice): every event of the run once, in order.
2. The server restarted under the client: it waits, reconnects, reports StateLost for the thread
   (a new epoch: recovered false), and the thread's next run streams.
3. A token that expires mid-session: after the drop the server refuses it (401); the provider is
   asked again and the stream goes on, every event once.
4. A wrong token: AuthenticationFailed after the provider's second answer, no retry storm (the
   server counts two refusals).
5. 10,000 events of one run to one client, none dropped; events/s printed.
Rules checked: proto-R1 proto-R2 proto-R3 proto-W1 proto-S2 proto-M3
"""
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import jwt

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "support"))
sys.path.insert(0, os.path.join(here, "..", "..", "clients", "python"))
from checks import check, failures, require  # noqa: E402

import uniws_client  # noqa: E402
from uniws_client import AgentEvent, AuthenticationFailed, ReconnectPolicy, StateLost  # noqa: E402

SECRET = "client-test-secret-0123456789"
FAST = ReconnectPolicy(initial=0.05, maximum=0.5)


class Server:
    def __init__(self, binary, *args, port=0):
        self.process = subprocess.Popen([binary, "--port", str(port), "--admin-port", "0", "--jwt-secret", SECRET,
                                         *args], stdout=subprocess.PIPE, text=True)
        first, second = self.process.stdout.readline().strip(), self.process.stdout.readline().strip()
        require(first.startswith("listening on http://"), "server: " + first)
        self.base = first.split(" ", 2)[2]
        self.admin = second.split(" ", 2)[2]
        self.url = self.base.replace("http://", "ws://") + "/ws"
        self.port = int(self.base.rsplit(":", 1)[1])

    def stats(self):
        with urllib.request.urlopen(self.admin + "/stats", timeout=5) as res:
            return json.loads(res.read())

    def disconnect(self, user):
        urllib.request.urlopen(urllib.request.Request(self.admin + "/disconnect?user=" + user, method="POST"),
                               timeout=5)

    def login(self, user):
        req = urllib.request.Request(self.base + "/login", method="POST",
                                     data=json.dumps({"user": user, "password": user + "-pw"}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as res:
            return json.loads(res.read())["token"]

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def run_events(client, thread_id, until="agent_completed", on_event=None, timeout=60):
    """The thread's AgentEvents until `until` (or until `timeout` s pass with the run unfinished);
    on_event(event, count) may act meanwhile."""
    got, others = [], []
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = await asyncio.wait_for(client.__anext__(), max(0.0, deadline - time.monotonic()))
        except (asyncio.TimeoutError, StopAsyncIteration):
            return got, others
        if isinstance(event, AgentEvent) and event.thread_id == thread_id:
            got.append(event)
            if on_event:
                await on_event(event, len(got))
            if event.type == until:
                return got, others
        else:
            others.append(event)


def exactly_once(events, steps, what):
    types = [e.type for e in events]
    seqs = [e.seq for e in events]
    expected = ["agent_started"] + ["agent_thinking"] * steps + ["tool_executing", "tool_completed", "agent_completed"]
    check(types == expected, f"{what}: the run's {len(expected)} events, each once, in order (got {len(types)})")
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else False, f"{what}: seqs consecutive")


async def drop_mid_run(server):
    async with uniws_client.Client(server.url, lambda: server.login("alice"), policy=FAST) as client:
        await client.run_agent("t1", "drop me", steps=150)

        async def drop(event, count):
            if count in (20, 90):
                server.disconnect("alice")
        got, others = await run_events(client, "t1", on_event=drop)
        exactly_once(got, 150, "drop mid-run")
        joined = [e for e in others if isinstance(e, uniws_client.Joined)]
        check(client.stats.connects == 3 and client.stats.resumes == 2,
              f"two drops, two resumes (connects {client.stats.connects}, resumes {client.stats.resumes})")
        check(sum(1 for j in joined if j.recovered is True) == 2, "both resumes recovered (R2)")
        check(client.stats.duplicates_dropped == 0, "the server sent nothing twice")


async def token_expires(server):
    minted = time.time()
    calls = []

    def tokens():
        calls.append(time.time())
        if len(calls) == 1:  # valid for 5 s more: the server allows 30 s past exp
            return jwt.encode({"sub": "carol", "exp": int(minted) - 25}, SECRET, algorithm="HS256")
        return jwt.encode({"sub": "carol", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")

    before = server.stats()["auth_failures"]
    async with uniws_client.Client(server.url, tokens, policy=FAST) as client:
        await client.run_agent("t1", "slow", steps=300)

        async def drop_once_expired(event, count):
            if count == 1:
                await asyncio.sleep(max(0.0, minted + 6.5 - time.time()))  # the first token is now refused
                server.disconnect("carol")
        got, _ = await run_events(client, "t1", on_event=drop_once_expired)
        exactly_once(got, 300, "expired token")
        check(len(calls) == 2, f"the provider was asked again after the 401 ({len(calls)} calls)")
        check(server.stats()["auth_failures"] - before == 1, "one refusal: the expired token")
        check(client.stats.duplicates_dropped == 0, "nothing twice")


async def wrong_token(server):
    calls = []

    def forged():
        calls.append(1)
        return "forged.token.value"

    before = server.stats()["auth_failures"]
    client = uniws_client.Client(server.url, forged, policy=FAST)
    client.start()
    try:
        async for _ in client:
            pass
        check(False, "a wrong token ends the client")
    except AuthenticationFailed as e:
        check("401" in str(e), "a wrong token: AuthenticationFailed, " + str(e))
    await asyncio.sleep(1.0)  # a storm would go on meanwhile
    check(len(calls) == 2, f"the provider asked twice, no more ({len(calls)})")
    check(server.stats()["auth_failures"] - before == 2, "the server refused two upgrades, no storm")
    await client.close()


async def many_events(server):
    async with uniws_client.Client(server.url, lambda: server.login("bob"), policy=FAST) as client:
        dropped_before = server.stats()["messages_dropped"]
        started = time.monotonic()
        await client.run_agent("big", "ten thousand", steps=9996)
        got, _ = await run_events(client, "big", timeout=120)
        elapsed = time.monotonic() - started
        exactly_once(got, 9996, "10,000 events")
        check(server.stats()["messages_dropped"] == dropped_before, "the server dropped none")
        print(f"client_python: 10,000 events in {elapsed:.2f} s, {len(got) / elapsed:,.0f} events/s", flush=True)


async def server_restarts(binary):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(binary, "--agent-delay-ms", "1", port=port)
    token = server.login("alice")
    client = uniws_client.Client(server.url, lambda: token, policy=FAST)
    client.start()
    try:
        await client.run_agent("t1", "before")
        got, _ = await run_events(client, "t1")
        check(len(got) == 5, "a run before the restart")
        server.stop()  # 1001 to the client (S2), then nothing listens for a while
        await asyncio.sleep(1.0)
        server = Server(binary, "--agent-delay-ms", "1", port=port)
        lost = None
        async for event in client:
            if isinstance(event, StateLost):
                lost = event
                break
        check(lost is not None and lost.thread_id == "t1", "after the restart: StateLost for t1 (R3)")
        check(client.stats.failed_connects >= 1, f"it waited while the server was down ({client.stats.failed_connects} tries)")
        await client.run_agent("t1", "after")
        got, _ = await run_events(client, "t1", timeout=15)
        exactly_once(got, 1, "the first run after the restart")
    finally:
        await client.close()
        server.stop()


def main():
    binary = sys.argv[1]
    users = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"client_python_users_{os.getpid()}")
    with open(users, "w") as f:
        f.write("alice:alice-pw\nbob:bob-pw\ncarol:carol-pw\n")
    server = Server(binary, "--agent-delay-ms", "2", "--users", users)
    try:
        asyncio.run(drop_mid_run(server))
        slow = Server(binary, "--agent-delay-ms", "30", "--users", users)  # a run of 9 s: it outlives the token
        try:
            asyncio.run(token_expires(slow))
        finally:
            slow.stop()
        asyncio.run(wrong_token(server))
        fast = Server(binary, "--agent-delay-ms", "0", "--users", users)
        try:
            asyncio.run(many_events(fast))
        finally:
            fast.stop()
    finally:
        server.stop()
        os.unlink(users)
    asyncio.run(server_restarts(binary))
    print(f"client_python: {len(failures)} failed checks")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
