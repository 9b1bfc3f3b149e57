"""server/websocket.py: the lean WebSocket protocol, alone and under a real uvicorn server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import websockets
from starlette.types import Receive, Scope, Send
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from server.websocket import Gate, Inbox, LeanWebSocketProtocol
from tests.support.live import eventually, served


async def test_an_inbox_hands_out_messages_in_order_and_waits_for_the_next() -> None:
    inbox = Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert inbox.qsize() == 2
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    waiting = asyncio.create_task(inbox.get())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    inbox.put_nowait(3)
    assert await asyncio.wait_for(waiting, 1) == 3


async def test_a_cancelled_get_leaves_the_inbox_working_for_the_next() -> None:
    inbox = Inbox()
    first, second = asyncio.create_task(inbox.get()), asyncio.create_task(inbox.get())
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0)
    inbox.put_nowait("message")
    assert await asyncio.wait_for(second, 1) == "message"
    assert first.cancelled()


async def test_a_gate_lets_waiters_through_only_while_open() -> None:
    gate = Gate()
    assert gate.is_set()
    assert await asyncio.wait_for(gate.wait(), 1)
    gate.clear()
    waiting = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    gate.set()
    assert await asyncio.wait_for(waiting, 1)


class Recorded:
    """An ASGI app that accepts a WebSocket, answers `then`, and keeps the server's
    protocol object (the owner of the `send` it was given) and what it received."""

    def __init__(self, then: Callable[..., Awaitable[None]]) -> None:
        self.then = then
        self.protocols: list[Any] = []
        self.received: list[Any] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        self.protocols.append(getattr(send, "__self__", None))
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await self.then(self, scope, receive, send)


async def echo_headers_then_messages(
    app: Recorded, scope: Scope, receive: Receive, send: Send
) -> None:
    # After the handshake, the scope still has the request's headers.
    agent = dict(scope["headers"])[b"user-agent"].decode()
    await send({"type": "websocket.send", "text": agent})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": f"echo {message['text']}"})
    app.received.append(message)


async def test_an_open_connection_keeps_no_handshake_and_serves_messages_in_order() -> None:
    app = Recorded(echo_headers_then_messages)
    with served(app) as url:
        ws_url = url.replace("http", "ws")
        async with websockets.connect(ws_url, user_agent_header="lean-test") as socket:
            assert await socket.recv() == "lean-test"
            for n in range(50):
                await socket.send(str(n))
            assert [await socket.recv() for _ in range(50)] == [f"echo {n}" for n in range(50)]
            [protocol] = app.protocols
            assert isinstance(protocol, LeanWebSocketProtocol)
            kept = [type(value) for value in vars(protocol).values()]
            assert Inbox in kept
            assert Gate in kept
            for heavy in (asyncio.Queue, asyncio.Event, Request, Response):
                assert heavy not in kept
        await eventually(lambda: app.received)
    assert [message["type"] for message in app.received] == ["websocket.disconnect"]


async def flood(app: Recorded, scope: Scope, receive: Receive, send: Send) -> None:
    for n in range(400):
        await send({"type": "websocket.send", "bytes": n.to_bytes(2, "big") * 32_768})
    await send({"type": "websocket.close", "code": 1000})


async def test_a_client_that_does_not_read_pauses_the_sender_until_it_does() -> None:
    app = Recorded(flood)
    with served(app) as url:
        ws_url = url.replace("http", "ws")
        async with websockets.connect(ws_url, max_size=None, max_queue=1) as socket:
            # 26 MB against the socket's buffers: the transport must pause writing.
            await eventually(lambda: app.protocols and not app.protocols[0].writable.is_set(), 10)
            async with asyncio.timeout(20):
                received = [message async for message in socket]
    assert [int.from_bytes(message[:2], "big") for message in received] == list(range(400))


async def refuse(app: Recorded, scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.close", "code": 4403, "reason": "no"})


async def test_a_close_after_accepting_reaches_the_client_with_its_code() -> None:
    app = Recorded(refuse)
    with served(app) as url:
        async with websockets.connect(url.replace("http", "ws")) as socket:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(socket.recv(), 5)
            assert socket.protocol.close_rcvd is not None
            assert socket.protocol.close_rcvd.code == 4403


async def refuse_before_accepting(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.close"})


async def test_a_refused_handshake_is_a_403() -> None:
    with served(refuse_before_accepting) as url, pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url.replace("http", "ws"))
    assert refused.value.response.status_code == 403
