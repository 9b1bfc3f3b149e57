"""WebSocket specifics of subscriptions: close codes, and a socket that can be closed early.

Close codes (graphql-transport-ws reserves 4400-4499 for itself and clients such as
`graphql-ws` retry on all but a few): 4403 the token was refused or expired (connect again
with a fresh one), 4429 too many live connections for the user, 1012 the server restarts,
1013 try again later (the database or the key set is unavailable, or the client read too
slowly). A client resumes each subscription with the cursor of the last event it received.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.websockets import WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter

from resolvers.errors import (
    AppError,
    RateLimited,
    ShuttingDown,
    StreamEnded,
    TokenExpired,
    TooManyConnections,
    Unauthenticated,
)

FORBIDDEN = 4403
TOO_MANY = 4429
SERVICE_RESTART = 1012
TRY_AGAIN_LATER = 1013
_CODES: Mapping[type[AppError], int] = {
    Unauthenticated: FORBIDDEN,
    TokenExpired: FORBIDDEN,
    TooManyConnections: TOO_MANY,
    RateLimited: TOO_MANY,
    ShuttingDown: SERVICE_RESTART,
}
# RFC 6455: a close frame's reason is at most 123 bytes of UTF-8.
_MAX_REASON_BYTES = 123

# Closes the connection with a code and a reason.
CloseSocket = Callable[[int, str], Awaitable[None]]


def close_for(error: AppError) -> tuple[int, str]:
    """The close code and reason that tell a client why the server closed its connection."""
    code = next((c for kind, c in _CODES.items() if isinstance(error, kind)), TRY_AGAIN_LATER)
    reason = error.message
    if isinstance(error, StreamEnded):
        reason = f"{reason}; resume after {error.cursor}"
    return code, reason.encode()[:_MAX_REASON_BYTES].decode(errors="ignore")


class ClosingSocket(ASGIWebSocketAdapter):
    """Strawberry's ASGI socket, after whose close (ours, for one of the reasons above) the
    handler's remaining messages (an ack, a `complete`) are dropped instead of raising."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await super().send_json(message)

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state != WebSocketState.DISCONNECTED:
            await super().close(code, reason)
