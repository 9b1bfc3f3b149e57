"""Fixtures: a real PostgreSQL, the real ASGI app with its lifespan, and real signed tokens."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest

import main
from db.embedded import start_embedded_postgres
from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade

PROJECT_DIR = Path(__file__).resolve().parent.parent
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256"


def _admin_url() -> Iterator[str]:
    configured = os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    # No server configured: the embedded one, kept in .data so later runs start warm.
    server = start_embedded_postgres(PROJECT_DIR / ".data" / "test-postgres")
    try:
        yield server.url
    finally:
        server.stop()


def database_url_for(admin_url: str, name: str) -> str:
    """The admin URL pointing at another database on the same server."""
    scheme, _, rest = admin_url.partition("://")
    authority, _, path = rest.partition("/")
    query = path.partition("?")[2]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


async def _create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = database_url_for(admin_url, name)
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def admin_database_url() -> Iterator[str]:
    """A URL with the right to create databases on the test server."""
    yield from _admin_url()


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A freshly migrated database of this test session's own."""
    name = f"taskql_test_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(_create_database(admin_database_url, name))
    try:
        yield url
    finally:
        asyncio.run(_drop_database(admin_database_url, name))


@pytest.fixture
async def clean_database(database_url: str) -> str:
    """The session database with no tasks (and no rate-limit buckets) in it, so each test
    starts from nothing."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE tasks, rate_limits RESTART IDENTITY")
    finally:
        await conn.close()
    return database_url


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the session's database as the server's superuser, whom row-level
    security does not bind: it sees and changes every owner's rows."""
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


def make_settings(database_url: str, **overrides: str) -> main.Settings:
    env = {"DATABASE_URL": database_url, "JWT_SECRET": JWT_SECRET, **overrides}
    return main.read_settings(env)


@pytest.fixture
def settings(clean_database: str) -> main.Settings:
    return make_settings(clean_database)


@pytest.fixture
async def client(settings: main.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the real app, its lifespan running as under a server."""
    async with app_client(settings) as http:
        yield http


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


def hs256_token(user_id: object, *, secret: str = JWT_SECRET, **claims: Any) -> str:
    """A real HS256 token; `claims` override or add to sub/exp (pass exp=None to drop it)."""
    now = int(time.time())
    payload: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + 600}
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.fixture
def auth() -> Callable[[str], dict[str, str]]:
    """Authorization headers for a user id."""

    def headers(user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {hs256_token(user_id)}"}

    return headers
