"""uniws_client: an asyncio client for uniws servers that reconnects and resumes (docs/clients.md)."""
from .client import Client, ClientStats, TokenProvider
from .errors import AuthenticationFailed, ClientError, GaveUp, Refused
from .events import AGENT_EVENT_TYPES, AgentEvent, Joined, ServerError, State, StateChanged, StateLost
from .policy import CLOSE_CODES, Next, ReconnectPolicy, after_close

__all__ = ["Client", "ClientStats", "TokenProvider", "AuthenticationFailed", "ClientError", "GaveUp", "Refused",
           "AGENT_EVENT_TYPES", "AgentEvent", "Joined", "ServerError", "State", "StateChanged", "StateLost",
           "CLOSE_CODES", "Next", "ReconnectPolicy", "after_close"]
__version__ = "0.1.0"
