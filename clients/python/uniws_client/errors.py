"""The errors that end a Client for good: reconnecting would not help."""
from __future__ import annotations


class ClientError(Exception):
    """A Client ended for good; `reason` says why."""


class AuthenticationFailed(ClientError):
    """The server refused the token (HTTP 401) and refused the one the provider gave next."""


class Refused(ClientError):
    """The server refused the connection for a reason a retry cannot change (HTTP 403, 404, a
    close with 1008 or 1009...)."""

    def __init__(self, message: str, *, status: int = 0, close_code: int = 0):
        super().__init__(message)
        self.status = status
        self.close_code = close_code


class GaveUp(ClientError):
    """The reconnect policy's max_attempts were used up."""
