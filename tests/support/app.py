"""The real app under test: settings read as in production, served in-process with its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

import main
from tests.support.tokens import JWT_SECRET

# What a browser asks for when it opens a page.
BROWSER = {"Accept": "text/html,application/xhtml+xml"}


def make_settings(database_url: str, **overrides: str) -> main.Settings:
    """The settings `main.read_settings` makes of this environment: the test secret, `overrides`."""
    env = {"DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, **overrides}
    return main.read_settings(env)


@asynccontextmanager
async def app_client(settings: main.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan running, its state handed to each request as uvicorn does."""
    async with running_app(settings) as (http, _state):
        yield http


@asynccontextmanager
async def running_app(
    settings: main.Settings,
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any]]]:
    """A client for the app, and the lifespan state (database, ...) its requests receive."""
    app = main.create_app(settings)
    async with app.router.lifespan_context(app) as state:

        async def app_with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=app_with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http, dict(state or {})


async def log_request_statements(state: dict[str, Any], logger: Any) -> None:
    """Call `logger` with each statement the app's requests send from now on.

    The retention janitor is stopped first: its purge (once a minute, the first at a random
    moment) would otherwise land in a test's count of a request's statements now and then.
    """
    await state["janitor"].stop()
    state["database"].log_statements(logger)
