"""When to reconnect, and how long to wait first."""
from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ReconnectPolicy:
    """Capped exponential backoff with jitter: attempt n waits initial * multiplier**n, at most
    `maximum`, less a random part of up to `jitter` of it (so that clients dropped together do not
    come back together). The count starts again once a connection has been open for `stable`
    seconds. `max_attempts` None: try forever."""
    initial: float = 0.25
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.5
    stable: float = 10.0
    max_attempts: Optional[int] = None

    def delay(self, attempt: int, rng: Optional[random.Random] = None) -> float:
        base = min(self.maximum, self.initial * (self.multiplier ** min(attempt, 64)))
        return base * (1.0 - self.jitter * (rng or random).random())


class Next(enum.Enum):
    """What a close code asks of the client."""
    RECONNECT = "reconnect"  # after the policy's delay
    STOP = "stop"            # for good: a retry would be closed the same way


# Close codes (RFC 6455 7.4.1, docs/protocol.md) and what the client does about each.
CLOSE_CODES = {
    1000: (Next.STOP, "closed by the server"),
    1001: (Next.RECONNECT, "the server is going away (restart, drain, or an operator's disconnect)"),
    1006: (Next.RECONNECT, "the connection was lost"),
    1008: (Next.STOP, "policy violation: the client sent frames too fast (L3)"),
    1009: (Next.STOP, "a frame of this client was over the server's message size (E3)"),
    1011: (Next.RECONNECT, "the server failed"),
    1012: (Next.RECONNECT, "the server restarts"),
    1013: (Next.RECONNECT, "try again later: the server is full, or this client read too slowly (E4, L1)"),
}


def after_close(code: Optional[int]) -> "tuple[Next, str]":
    """What to do after the connection closed with `code` (None: no close frame)."""
    if code is None:
        return CLOSE_CODES[1006]
    return CLOSE_CODES.get(code, (Next.RECONNECT, f"closed with code {code}"))


# HTTP statuses that refuse an upgrade, besides 401 (which asks the token provider again).
RETRY_STATUSES = {429, 500, 502, 503, 504}
