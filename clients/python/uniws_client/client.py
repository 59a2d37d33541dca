"""The client: one WebSocket to a uniws server, kept open across drops, every thread resumed.

Contract (docs/clients.md, docs/protocol.md §R):
- Events come out in the order the server sent them, each at most once: after a reconnect each
  joined thread is joined again with its epoch and last seq, the server replays what was missed
  (R2), and anything at or below a thread's last seq is dropped (counted, never expected).
- When the server cannot replay (R3: it restarted, or its history no longer holds the gap) the
  client yields StateLost for the thread and goes on from the server's seq.
- The token provider is called for the first connection and again after the server refuses the
  token (HTTP 401, e.g. it expired); if it refuses the provider's next token too the client ends
  with AuthenticationFailed: no retry storm.
- Close codes and refusals that a retry cannot change end the client (Refused); the others
  reconnect after the policy's delay (policy.py). A connection that answers no ping within
  ping_timeout is dropped and reconnected.
- Commands sent while disconnected wait (at most max_pending) and go out after the re-joins;
  a command is sent at most once (one sent just before a drop may be lost with it).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

import websockets
import websockets.exceptions

from .errors import AuthenticationFailed, ClientError, GaveUp, Refused
from .events import AgentEvent, Joined, ServerError, State, StateChanged, StateLost
from .policy import RETRY_STATUSES, Next, ReconnectPolicy, after_close

TokenProvider = Callable[[], Union[str, Awaitable[str]]]
EventCallback = Callable[[Any], Union[None, Awaitable[None]]]


@dataclass
class ClientStats:
    """What the client did, for logs and tests."""
    connects: int = 0             # connections opened
    failed_connects: int = 0      # attempts that did not open (server down, refused, 401)
    token_requests: int = 0       # calls of the token provider
    resumes: int = 0              # joins sent with an epoch and after_seq
    states_lost: int = 0          # StateLost yielded
    duplicates_dropped: int = 0   # events at or below their thread's last seq (a server bug if ever > 0)
    events: int = 0               # AgentEvents yielded


@dataclass
class _Thread:
    epoch: Optional[str] = None
    last_seq: Optional[int] = None
    resuming: bool = False  # a join with epoch and after_seq is waiting for its answer


class _End:
    def __init__(self, error: Optional[ClientError]):
        self.error = error


class Client:
    """A uniws client. Use as `async with Client(url, tokens) as client:` then
    `await client.join("t1")`, `await client.run_agent("t1", "hello")`, and `async for event in
    client:` (or pass on_event). `url` is the WebSocket's, e.g. ws://host:port/ws."""

    def __init__(self, url: str, token_provider: TokenProvider, *, policy: ReconnectPolicy = ReconnectPolicy(),
                 ping_interval: Optional[float] = 20.0, ping_timeout: Optional[float] = 20.0,
                 open_timeout: float = 10.0, max_pending: int = 1024, max_buffered: int = 10000,
                 on_event: Optional[EventCallback] = None, rng: Optional[random.Random] = None):
        self.url = url
        self.policy = policy
        self.stats = ClientStats()
        self._token_provider = token_provider
        self._ping_interval, self._ping_timeout, self._open_timeout = ping_interval, ping_timeout, open_timeout
        self._max_pending = max_pending
        self._on_event = on_event
        self._rng = rng or random.Random()
        self._events: asyncio.Queue = asyncio.Queue(maxsize=max_buffered)
        self._threads: Dict[str, _Thread] = {}
        self._pending: List[str] = []
        self._ws: Optional[Any] = None
        self._token: Optional[str] = None
        self._state = State.CLOSED
        self._task: Optional[asyncio.Task] = None
        self._closing = False
        self._ended = False
        self._error: Optional[ClientError] = None

    # ---- the caller's side ----

    async def __aenter__(self) -> "Client":
        self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def start(self) -> None:
        """Starts connecting (in the background)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Closes the connection for good; the event iterator ends."""
        self._closing = True
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self._end(None)

    @property
    def state(self) -> State:
        return self._state

    async def join(self, thread_id: str) -> None:
        """Receives the thread's events from now on, on this connection and every later one."""
        self._threads.setdefault(thread_id, _Thread())
        await self._send({"type": "join", "thread_id": thread_id})

    async def leave(self, thread_id: str) -> None:
        self._threads.pop(thread_id, None)
        await self._send({"type": "leave", "thread_id": thread_id})

    async def run_agent(self, thread_id: str, message: str, *, steps: Optional[int] = None,
                        pad: Optional[int] = None) -> None:
        """Starts an agent run on the thread (joining it, W5); its events come as AgentEvents."""
        self._threads.setdefault(thread_id, _Thread())
        frame: Dict[str, Any] = {"type": "run_agent", "thread_id": thread_id, "message": message}
        if steps is not None:
            frame["steps"] = steps
        if pad is not None:
            frame["pad"] = pad
        await self._send(frame)

    def __aiter__(self) -> "Client":
        return self

    async def __anext__(self) -> Any:
        item = await self._events.get()
        if isinstance(item, _End):
            self._events.put_nowait(item)  # every later call ends the same way
            if item.error is not None:
                raise item.error
            raise StopAsyncIteration
        return item

    def last_seq(self, thread_id: str) -> Optional[int]:
        """The last seq read on the thread (what a resume asks after)."""
        t = self._threads.get(thread_id)
        return t.last_seq if t else None

    # ---- the connection ----

    async def _send(self, frame: Dict[str, Any]) -> None:
        text = json.dumps(frame)
        if self._ws is not None and self._state == State.OPEN:
            try:
                await self._ws.send(text)
                return
            except websockets.exceptions.ConnectionClosed:
                pass  # the receive loop sees it; a join is sent again on the next connection
        if frame["type"] in ("join", "leave"):
            return  # the next connection joins every thread it holds
        if len(self._pending) >= self._max_pending:
            raise ClientError(f"{self._max_pending} commands are waiting for a connection already")
        self._pending.append(text)

    async def _token_for_connect(self, refresh: bool) -> str:
        if self._token is None or refresh:
            self.stats.token_requests += 1
            token = self._token_provider()
            self._token = await token if inspect.isawaitable(token) else token
        assert self._token is not None
        return self._token

    async def _run(self) -> None:
        attempt = 0
        refreshed = False  # the token was asked for again after a 401
        try:
            while not self._closing:
                await self._set_state(State.CONNECTING if self.stats.connects == 0 else State.RECONNECTING)
                token = await self._token_for_connect(refresh=False)
                try:
                    ws = await websockets.connect(
                        self.url, extra_headers={"Authorization": "Bearer " + token},
                        ping_interval=self._ping_interval, ping_timeout=self._ping_timeout,
                        open_timeout=self._open_timeout, max_size=None)
                except websockets.exceptions.InvalidStatusCode as e:
                    self.stats.failed_connects += 1
                    if e.status_code == 401:
                        if refreshed:
                            raise AuthenticationFailed("the server refused the token provider's token twice (401)")
                        refreshed = True
                        await self._token_for_connect(refresh=True)
                        continue  # at once: a new token is no reason to wait
                    if e.status_code not in RETRY_STATUSES:
                        raise Refused(f"the server refused the upgrade with HTTP {e.status_code}", status=e.status_code)
                    attempt = await self._wait(attempt, f"HTTP {e.status_code}")
                    continue
                except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake) as e:
                    self.stats.failed_connects += 1
                    attempt = await self._wait(attempt, f"cannot connect: {e}")
                    continue
                refreshed = False
                self.stats.connects += 1
                opened = time.monotonic()
                code = await self._serve(ws)
                if self._closing:
                    break
                action, why = after_close(code)
                if action is Next.STOP:
                    raise Refused(f"closed with {code}: {why}", close_code=code or 0)
                if time.monotonic() - opened >= self.policy.stable:
                    attempt = 0
                attempt = await self._wait(attempt, f"closed with {code}: {why}")
        except ClientError as e:
            await self._end(e)
        except asyncio.CancelledError:
            raise
        else:
            await self._end(None)

    async def _wait(self, attempt: int, reason: str) -> int:
        if self.policy.max_attempts is not None and attempt >= self.policy.max_attempts:
            raise GaveUp(f"gave up after {attempt} attempts: {reason}")
        await self._set_state(State.RECONNECTING, reason)
        await asyncio.sleep(self.policy.delay(attempt, self._rng))
        return attempt + 1

    async def _serve(self, ws: Any) -> Optional[int]:
        """Joins every thread, sends what waited, reads until the connection ends; its close code."""
        self._ws = ws
        try:
            for thread_id, t in self._threads.items():
                frame: Dict[str, Any] = {"type": "join", "thread_id": thread_id}
                if t.epoch is not None and t.last_seq is not None:
                    frame.update(epoch=t.epoch, after_seq=t.last_seq)
                    t.resuming = True
                    self.stats.resumes += 1
                await ws.send(json.dumps(frame))
            # What waited goes before the state says open: a command sent meanwhile queues behind it.
            while self._pending:
                await ws.send(self._pending.pop(0))
            self._state = State.OPEN
            await self._emit(StateChanged(State.OPEN))
            async for text in ws:
                await self._on_frame(text)
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self._ws = None
            if self._state == State.OPEN:
                self._state = State.RECONNECTING
        return ws.close_code if ws.close_code is not None else 1006

    async def _on_frame(self, text: Union[str, bytes]) -> None:
        frame = json.loads(text)
        kind = frame.get("type")
        if kind == "joined":
            await self._on_joined(frame)
        elif kind == "error":
            await self._emit(ServerError(frame.get("code", ""), frame.get("message", "")))
        elif kind == "pong":
            return
        elif "seq" in frame and "thread_id" in frame:
            t = self._threads.setdefault(frame["thread_id"], _Thread())
            seq = frame["seq"]
            if t.last_seq is not None and seq <= t.last_seq:
                self.stats.duplicates_dropped += 1
                return
            t.last_seq = seq
            self.stats.events += 1
            await self._emit(AgentEvent(kind, frame["thread_id"], frame.get("run_id", ""), seq,
                                        frame.get("payload") or {}))

    async def _on_joined(self, frame: Dict[str, Any]) -> None:
        thread_id, epoch, seq = frame["thread_id"], frame["epoch"], frame["seq"]
        t = self._threads.setdefault(thread_id, _Thread())
        recovered = frame.get("recovered")
        lost = t.resuming and recovered is False
        if lost:
            t.last_seq = seq  # another history, or a gap it no longer holds: go on from here
        else:
            t.last_seq = seq if t.last_seq is None else max(t.last_seq, seq)
        t.epoch, t.resuming = epoch, False
        await self._emit(Joined(thread_id, epoch, seq, recovered, frame.get("replayed", 0)))
        if lost:
            self.stats.states_lost += 1
            await self._emit(StateLost(thread_id, epoch, seq))

    async def _set_state(self, state: State, reason: str = "") -> None:
        if state != self._state:
            self._state = state
            await self._emit(StateChanged(state, reason))

    async def _emit(self, event: Any) -> None:
        if self._on_event is not None:
            result = self._on_event(event)
            if inspect.isawaitable(result):
                await result
        else:
            await self._events.put(event)

    async def wait_closed(self) -> None:
        """Waits until the client has ended; raises what ended it, if it did not end by close()."""
        if self._task is not None:
            try:
                await asyncio.shield(self._task)
            except asyncio.CancelledError:
                pass
        if self._error is not None:
            raise self._error

    async def _end(self, error: Optional[ClientError]) -> None:
        if self._ended:
            return
        self._ended = True
        self._error = error
        self._state = State.CLOSED
        if self._on_event is not None:
            await self._emit(StateChanged(State.CLOSED, str(error) if error else ""))
        # The end goes in even when the buffer is full: the reader must see it.
        while True:
            try:
                self._events.put_nowait(_End(error))
                return
            except asyncio.QueueFull:
                await asyncio.sleep(0.01)
