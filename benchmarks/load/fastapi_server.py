#!/usr/bin/python3
"""uniws-load peer: the server the seeds' own stack gives, FastAPI + uvicorn + websockets (Debian's
python3-fastapi, python3-uvicorn, python3-websockets, python3-jwt), one process, speaking the part
of docs/protocol.md that uniws-load drives: POST /login (HS256 JWT by PyJWT), /ws with the token
as a Bearer header or ?token=, join / leave / ping / run_agent with steps and pad, the five events
with a per-user seq, joined answers.

Written as a competent FastAPI user would: connections indexed by user and thread (dicts of
sets), one json.dumps per event shared by every send, an asyncio task per run. No history, no
limits.

  /usr/bin/python3 fastapi_server.py --port 0 --users FILE [--agent-delay-ms N]
Unknown flags (--threads, --history-events, ...) are accepted and ignored.
"""
import asyncio
import json
import secrets
import socket
import sys
import time

import jwt  # PyJWT
import uvicorn
import websockets
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

flags = dict(zip(sys.argv[1::2], sys.argv[2::2]))
PORT = int(flags.get("--port", "8080"))
ADDRESS = flags.get("--address", "127.0.0.1")
AGENT_DELAY = int(flags.get("--agent-delay-ms", "50")) / 1000
SECRET = flags.get("--jwt-secret") or secrets.token_hex(32)
USERS = {"alice": "alice-pw", "bob": "bob-pw"}
if "--users" in flags:
    USERS = {}
    with open(flags["--users"]) as f:
        for line in f:
            name, sep, password = line.strip().partition(":")
            if sep and name and not name.startswith("#"):
                USERS[name] = password
EPOCH = secrets.token_hex(16)

app = FastAPI()
seqs: dict[str, int] = {}
threads: dict[str, dict[str, set[WebSocket]]] = {}  # user -> thread -> connections
next_run = 1


def dumps(obj):
    """Compact, as Starlette's WebSocket.send_json writes it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def error(code, message, status):
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/login")
async def login(request: Request):
    try:
        body = await request.json()
        user, password = body["user"], body["password"]
    except (ValueError, KeyError, TypeError):
        return error("bad_request", 'expected {"user","password"}', 400)
    if USERS.get(user) != password:
        return error("unauthorized", "wrong user or password", 401)
    now = int(time.time())
    return {"token": jwt.encode({"sub": user, "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256"),
            "user": user, "expires_in": 3600}


async def emit(user, thread, run_id, kind, payload):
    seqs[user] = seqs.get(user, 0) + 1
    text = dumps({"type": kind, "thread_id": thread, "run_id": run_id, "seq": seqs[user], "payload": payload})
    for ws in list(threads.get(user, {}).get(thread, ())):
        try:
            await ws.send_text(text)
        except Exception:  # a connection that just went: its handler removes it
            pass


async def pause():
    await asyncio.sleep(AGENT_DELAY)  # 0 still yields to the loop


async def run_agent(user, thread, message, steps, pad):
    global next_run
    run_id = f"r-{next_run}"
    next_run += 1
    padding = "." * pad
    await emit(user, thread, run_id, "agent_started", {"message": message})
    for i in range(1, steps + 1):
        await pause()
        await emit(user, thread, run_id, "agent_thinking", {"step": i, "text": "thinking about: " + message, "pad": padding})
    await pause()
    await emit(user, thread, run_id, "tool_executing", {"tool": "echo", "input": message})
    await pause()
    await emit(user, thread, run_id, "tool_completed", {"tool": "echo", "result": message})
    await pause()
    await emit(user, thread, run_id, "agent_completed", {"response": "You said: " + message})


@app.websocket("/ws")
async def websocket(ws: WebSocket):
    token = ws.headers.get("authorization", "").removeprefix("Bearer ") or ws.query_params.get("token", "")
    try:
        user = jwt.decode(token, SECRET, algorithms=["HS256"])["sub"]
    except (jwt.PyJWTError, KeyError):
        await ws.close(code=1008)  # before accept: uvicorn answers the upgrade 403
        return
    await ws.accept()
    mine = threads.setdefault(user, {})
    joined = set()

    async def join(thread):
        mine.setdefault(thread, set()).add(ws)
        joined.add(thread)
        await ws.send_text(dumps({"type": "joined", "thread_id": thread, "epoch": EPOCH, "seq": seqs.get(user, 0)}))

    async def fail(code, message):
        await ws.send_text(dumps({"type": "error", "code": code, "message": message}))

    tasks = set()
    try:
        while True:
            text = await ws.receive_text()
            try:
                f = json.loads(text)
            except ValueError:
                await fail("bad_request", "not JSON")
                continue
            if not isinstance(f, dict):
                await fail("bad_request", "not a JSON object")
            elif f.get("type") == "ping":
                await ws.send_text('{"type":"pong"}')
            elif not isinstance(f.get("thread_id"), str) or not 0 < len(f["thread_id"]) <= 128:
                await fail("bad_request", "thread_id must be a string of 1 to 128 bytes")
            elif f["type"] == "join":
                await join(f["thread_id"])
            elif f["type"] == "leave":
                mine.get(f["thread_id"], set()).discard(ws)
                joined.discard(f["thread_id"])
            elif f["type"] == "run_agent":
                steps, pad = f.get("steps", 1), f.get("pad", 0)
                if not (isinstance(steps, int) and 0 <= steps <= 10000 and isinstance(pad, int) and 0 <= pad <= 65536):
                    await fail("bad_request", "bad steps or pad")
                    continue
                await join(f["thread_id"])
                task = asyncio.ensure_future(run_agent(user, f["thread_id"], str(f.get("message", "")), steps, pad))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                await fail("bad_request", "unknown type")
    except (WebSocketDisconnect, websockets.exceptions.ConnectionClosed):  # uvicorn 0.17 raises the latter on a send
        pass
    finally:
        for thread in joined:
            mine.get(thread, set()).discard(ws)


def main():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((ADDRESS, PORT))
    sock.listen(4096)  # before the line is printed: a client may connect at once (it waits in the backlog)
    server = uvicorn.Server(uvicorn.Config(app, ws="websockets", log_level="warning", access_log=False,
                                           ws_max_size=64 * 1024, ws_ping_interval=None))
    print(f"listening on http://{ADDRESS}:{sock.getsockname()[1]}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
