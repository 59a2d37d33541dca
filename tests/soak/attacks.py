#!/usr/bin/python3
"""Soak `attacks`: every attack of proto-H11 (the seven findings) in turn against one server, round
after round for --seconds, and after each the same invariants: the server lives, its peak RSS stays
under the stated bound, /health answers within 100 ms, and another user's golden path completes
within twice its unloaded time (or 0.25 s, this machine's scheduling noise). One JSON line of
figures at the end. The attacks and helpers are limits_test.py's.

Usage: attacks.py PATH/TO/uniws-golden-path [--seconds N]
Rules checked: proto-H11
"""
import asyncio
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import limits_test as lt  # noqa: E402  (reads the server's path from argv[1])

seconds = int(sys.argv[sys.argv.index("--seconds") + 1]) if "--seconds" in sys.argv else 60
RSS_BOUND_MB = 400  # the queue budget (64 MiB) + histories + the crowd's ids, with room
FD_LIMIT = 256


def trailer(port):  # finding 1: the request that aborted the server
    lt.raw_answer(port, b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"a" * 65605 + b"\r\n\r\n")


def endless_chunk_lines(port):  # finding 2
    lt.raw_answer(port, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * (8 << 20))
    lt.raw_answer(port, b"POST /login HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: " + b"t" * (8 << 20))


def out_of_descriptors(port):  # finding 3: more connections than the server has descriptors
    held = []
    for _ in range(FD_LIMIT + 40):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=2))
        except OSError:
            break
    time.sleep(0.3)
    for c in held:
        c.close()
    time.sleep(0.2)


def stalled_readers(port):  # finding 4
    run = json.dumps({"type": "run_agent", "thread_id": "t", "message": "x", "steps": 500, "pad": 65536})
    readers = [lt.stalled_reader(port, f"staller{i}", run) for i in range(20)]
    time.sleep(2.5)  # past --stall-timeout: cut off
    for c in readers:
        c.close()


async def runs_for_nobody(port):  # finding 5
    m = await lt.ws_connect(port, "mallory")
    for i in range(4):
        await m.send(json.dumps({"type": "run_agent", "thread_id": f"t{i}", "message": "x", "steps": 10000, "pad": 65536}))
    await m.close()


async def crowded_roster(port):  # finding 6: 60 connections x 256 joins, one churning
    conns = [await lt.ws_connect(port, "crowd") for _ in range(60)]
    ids = [("t" * 120) + str(10_000_000 + t) for t in range(256)]

    async def join_all(ws):
        for t in ids:
            await ws.send(json.dumps({"type": "join", "thread_id": t}))
        for _ in ids:
            await lt.next_frame(ws, "joined", timeout=30)
    await asyncio.gather(*(join_all(ws) for ws in conns))
    for n in range(300):
        await conns[0].send(json.dumps({"type": "leave", "thread_id": ids[n % 256]}))
        await conns[0].send(json.dumps({"type": "join", "thread_id": ids[n % 256]}))
    await lt.next_frame(conns[0], "joined", timeout=30)
    for ws in conns:
        await ws.close()


def smaller(port):  # finding 7: an oversized header and early bytes behind an upgrade
    lt.raw_answer(port, b"GET /health HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    c, data = lt.ping_behind_upgrade(port, "early")
    if b'"pong"' not in data:
        lt.check(False, "a frame right behind the upgrade is answered")
    c.close()


ATTACKS = [("trailer", trailer), ("endless chunk lines", endless_chunk_lines), ("out of descriptors", out_of_descriptors),
           ("stalled readers", stalled_readers), ("runs for nobody", runs_for_nobody),
           ("crowded roster", crowded_roster), ("oversized header, early bytes", smaller)]


def main():
    # A 1 ms pause: a run of 10,000 steps then lasts 10 s or more, so the runs left to nobody are
    # still going when their reader has left (at 0 ms, encoding as fast as it now is, a run could
    # end before a loaded machine finished the closing handshake: none to cancel).
    s = lt.Server("--agent-delay-ms", "1", "--max-connections-per-user", "64", "--max-threads-per-connection", "256",
                  "--max-frames-per-second", "100000", "--orphan-run-seconds", "1", "--stall-timeout", "1",
                  "--max-queued-bytes", str(64 << 20), "--handshake-timeout", "3", fd_limit=FD_LIMIT)
    loop = asyncio.new_event_loop()
    worst = {"health_ms": 0.0, "golden_path_s": 0.0}
    rounds = 0
    try:
        unloaded = min(loop.run_until_complete(lt.golden_path_seconds(s.port)) for _ in range(3))
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            rounds += 1
            for name, attack in ATTACKS:
                result = attack(s.port)
                if asyncio.iscoroutine(result):
                    loop.run_until_complete(result)
                ms = lt.health_ms(s.port)
                gp = loop.run_until_complete(lt.golden_path_seconds(s.port))
                rss = s.peak_rss_mb()
                worst["health_ms"] = max(worst["health_ms"], ms if ms is not None else 1e9)
                worst["golden_path_s"] = max(worst["golden_path_s"], gp)
                ok = s.alive() and rss < RSS_BOUND_MB and ms is not None and ms < 100 and gp < max(2 * unloaded, 0.25)
                if not ok or rounds == 1:
                    lt.check(ok, f"round {rounds}, after {name}: alive {s.alive()}, peak RSS {rss:.0f} MB (< {RSS_BOUND_MB}), "
                                 f"/health {ms and round(ms)} ms, golden path {gp:.3f} s ({unloaded:.3f} s unloaded)")
        st = s.stats()
        lt.check(st["requests_refused"] >= 3 * rounds, f"refusals counted: requests_refused {st['requests_refused']}")
        lt.check(st["runs_cancelled"] >= 1 and st["connections_closed_stalled"] >= 1,
                 f"runs cancelled {st['runs_cancelled']}, stalled readers cut off {st['connections_closed_stalled']}")
        print(json.dumps({"soak": "attacks", "rounds": rounds, "seconds": round(time.monotonic() - start),
                          "peak_rss_mb": round(s.peak_rss_mb()), "worst_health_ms": round(worst["health_ms"], 1),
                          "worst_golden_path_s": round(worst["golden_path_s"], 3), "unloaded_golden_path_s": round(unloaded, 3),
                          "pass": not lt.failures}))
    finally:
        lt.check(s.stop() == 0, "the server exits 0 on SIGTERM")
    return 1 if lt.failures else 0


if __name__ == "__main__":
    sys.exit(main())
