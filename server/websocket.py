"""uvicorn's WebSocket protocol with less state kept for each open connection.

Why this exists: an idle subscriber is mostly the state its WebSocket keeps, and uvicorn's
sans-I/O protocol (`ws="auto"`, what we ran before) keeps three things it does not need once
the connection is open: an `asyncio.Queue` for the messages the app has yet to receive (four
deques, about 3 KB, though the app takes one message at a time), an `asyncio.Event` for flow
control (a deque) and the handshake's request and response with their headers (about 4 KB;
the app's scope has its own copy of the request's headers). This subclass swaps the first two
for a list and a flag with futures made only while something waits, and lets the handshake
go once it is sent: 40.6 -> 31.9 KB of heap per idle subscriber (`bench/idle_memory.py`,
bench/README.md "Idle connections"). tests/server/test_websocket.py runs it under uvicorn.

What would let us delete it: uvicorn making that state lazy or dropping it after the
handshake. The protocol class is a public option of `uvicorn.Config` (`ws`); this one swaps
two attributes its parent's `__init__` sets and drops two its handshake sets, once the
accepted connection's keepalive starts (uvicorn 0.50 to 0.54 alike). A uvicorn
release that renames them would leave the service working on uvicorn's own state, and the
test that looks for any queue, event or handshake left on an open connection failing.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class Inbox:
    """The messages a connection has received and the app not yet taken, first in first out:
    the part of `asyncio.Queue` uvicorn uses (`put_nowait`, `get`, `empty`, `qsize`)."""

    __slots__ = ("_messages", "_waiters")

    def __init__(self) -> None:
        self._messages: list[Any] = []
        self._waiters: list[asyncio.Future[None]] = []

    def put_nowait(self, message: Any) -> None:
        self._messages.append(message)
        _wake(self._waiters)

    def empty(self) -> bool:
        return not self._messages

    def qsize(self) -> int:
        return len(self._messages)

    async def get(self) -> Any:
        while not self._messages:
            await _wait(self._waiters)
        return self._messages.pop(0)


class Gate:
    """Open or closed, and waiting until open: the part of `asyncio.Event` uvicorn uses for
    flow control (`set`, `clear`, `is_set`, `wait`). Open nearly always, so a wait usually
    returns at once without making anything."""

    __slots__ = ("_open", "_waiters")

    def __init__(self) -> None:
        self._open = True
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._open

    def set(self) -> None:
        self._open = True
        _wake(self._waiters)

    def clear(self) -> None:
        self._open = False

    async def wait(self) -> bool:
        if not self._open:
            await _wait(self._waiters)
        return True


async def _wait(waiters: list[asyncio.Future[None]]) -> None:
    """Until the next `_wake` of `waiters`."""
    waiter = asyncio.get_running_loop().create_future()
    waiters.append(waiter)
    try:
        await waiter
    finally:
        if waiter in waiters:
            waiters.remove(waiter)


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    """Wake every waiter: each looks again at what it waits for (one getter in practice)."""
    while waiters:
        waiter = waiters.pop()
        if not waiter.done():
            waiter.set_result(None)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, keeping less for each open connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = Gate()  # type: ignore[assignment]

    def start_keepalive(self) -> None:
        # uvicorn calls this once, right after it has sent the accepting response: the
        # handshake is done, and only its own code read the request and response. (Here
        # rather than around `send`, which every message of the connection goes through.)
        # websockets' parser keeps the request for the connection's life (a local of its
        # generator), so its headers are emptied too; the app's scope has its own copy.
        super().start_keepalive()
        self.request.headers.clear()
        del self.request, self.response
