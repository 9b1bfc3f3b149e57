"""server/application.py: WebSockets reach their route past the HTTP middleware (real sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import websockets
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from server.application import Application
from tests.support.live import awaiting, served


class Recording:
    """Middleware that notes the type and path of every scope it is called with."""

    def __init__(self, app: ASGIApp, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            self.seen.append(f"{scope['type']} {scope['path']}")
        await self.app(scope, receive, send)


# The coroutines the echo endpoint's task is in while it waits for the client's message.
awaited: list[str] = []


def note_awaited(task: asyncio.Task[Any]) -> None:
    awaited[:] = awaiting(task)


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().call_soon(note_awaited, task)
    await websocket.send_text(f"echo {await websocket.receive_text()}")
    await websocket.close()


async def hello(_request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


def recorded_app(seen: list[str]) -> Application:
    return Application(
        routes=[Route("/hello", hello), WebSocketRoute("/echo", echo)],
        middleware=[Middleware(Recording, seen=seen)],
    )


def test_a_websocket_reaches_its_route_without_the_middleware() -> None:
    seen: list[str] = []
    with served(recorded_app(seen)) as url:
        assert httpx.get(f"{url}/hello").text == "hello"

        async def talk() -> str:
            async with websockets.connect(url.replace("http", "ws") + "/echo") as socket:
                await socket.send("hi")
                return str(await socket.recv())

        assert asyncio.run(talk()) == "echo hi"
    assert seen == ["http /hello"]


def test_the_layers_that_route_a_websocket_keep_no_frame_while_it_is_open() -> None:
    with served(recorded_app([])) as url:

        async def talk() -> None:
            async with websockets.connect(url.replace("http", "ws") + "/echo") as socket:
                await socket.send("hi")
                await socket.recv()

        asyncio.run(talk())
    assert "Starlette.__call__" in awaited  # the walk itself works
    assert "_WebSocketsDirect.__call__" not in awaited
    assert "WebSocketRoute.handle" not in awaited


def test_a_websocket_to_no_websocket_route_goes_through_the_middleware_and_is_refused() -> None:
    seen: list[str] = []
    with served(recorded_app(seen)) as url:

        async def connect() -> None:
            async with websockets.connect(url.replace("http", "ws") + "/hello"):
                pass

        with pytest.raises(websockets.InvalidStatus) as refused:
            asyncio.run(connect())
    assert refused.value.response.status_code == 403
    assert seen == ["websocket /hello"]
