"""A real uvicorn server on a free 127.0.0.1 port, run from a thread, for real clients; and
waiting on its state from the test."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

import main
from server.serve import WEBSOCKET_OPTIONS


@contextmanager
def live_server(settings: main.Settings) -> Iterator[str]:
    """The app of `settings` served over TCP with its lifespan; yields the base URL.

    A thread with its own event loop, so that blocking clients (a browser driver) and async
    ones (gql, httpx) can both talk to it from the test.
    """
    with served(main.create_app(settings)) as url:
        yield url


@contextmanager
def served(app: ASGIApp) -> Iterator[str]:
    """Any ASGI app served over TCP on a free port from a thread; yields the base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, **WEBSOCKET_OPTIONS
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def eventually(condition: Callable[[], object], seconds: float = 5) -> None:
    """Until `condition()` is true: state of the server's thread, which no event reports."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {seconds} s")


def awaiting(task: asyncio.Task[Any]) -> list[str]:
    """The qualified names of the coroutines a suspended task is in, outermost first."""
    names = []
    coroutine: Any = task.get_coro()
    while coroutine is not None and hasattr(coroutine, "cr_code"):
        names.append(coroutine.cr_code.co_qualname)
        coroutine = coroutine.cr_await
    return names
