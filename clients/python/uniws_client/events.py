"""What a Client yields: the server's events and the client's own news, as typed records."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

# The agent's events, in the order a run emits them (docs/protocol.md W7).
AGENT_EVENT_TYPES = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")


@dataclass(frozen=True)
class AgentEvent:
    """One event of a run: its type (AGENT_EVENT_TYPES, or another the server adds), the user's
    seq (W8), and the payload object."""
    type: str
    thread_id: str
    run_id: str
    seq: int
    payload: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Joined:
    """A join answered (R1). `recovered` is None for a first join, True/False for a resume."""
    thread_id: str
    epoch: str
    seq: int
    recovered: Optional[bool] = None
    replayed: int = 0


@dataclass(frozen=True)
class StateLost:
    """A resume the server could not serve (R3): events of this thread may have been missed while
    the connection was down (the server restarted, or its history no longer holds them). Fetch
    the thread's state again; the stream goes on from `seq`."""
    thread_id: str
    epoch: str
    seq: int


@dataclass(frozen=True)
class ServerError:
    """An error event (E1, L3-L5): the connection stays open."""
    code: str
    message: str


class State(enum.Enum):
    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


@dataclass(frozen=True)
class StateChanged:
    """The connection's state changed; `reason` says why (a close code, an HTTP status, ...)."""
    state: State
    reason: str = ""



