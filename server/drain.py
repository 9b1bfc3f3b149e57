"""A uvicorn server that lets the app end its long-lived streams before it closes connections.

uvicorn's own shutdown closes every WebSocket with 1012 at once and waits without end for
streaming responses (server-sent events) to finish. Here, once the server stops accepting
connections, it first awaits the app's drain hook (the lifespan state's DRAIN entry): live
streams end with a cursor to resume from, so clients reconnect to another instance without
losing an event; then uvicorn's shutdown proceeds. Were uvicorn to grow a hook between those
two steps, this module could go.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable

import uvicorn

log = logging.getLogger(__name__)

# The lifespan state entry: an async callable with no arguments.
DRAIN = "drain"


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        lifespan = getattr(self, "lifespan", None)
        drain: Callable[[], Awaitable[None]] | None = (
            None if lifespan is None else lifespan.state.get(DRAIN)
        )
        if drain is not None:
            try:
                await drain()
            except Exception:
                log.exception("draining live streams failed")
        await super().shutdown(sockets)
