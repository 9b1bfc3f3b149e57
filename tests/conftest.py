"""Fixtures: a real PostgreSQL, the real ASGI app with its lifespan, and real signed tokens.

Only fixtures live here; the helpers they use, and that tests import, are in tests/support.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

import main
from db.embedded import start_embedded_postgres
from tests.support.app import app_client, make_settings
from tests.support.cli import PROJECT_DIR
from tests.support.databases import create_migrated_database, drop_database
from tests.support.doors import Caller, new_caller
from tests.support.graphql import seed_tasks
from tests.support.listing import task_rows
from tests.support.tokens import hs256_token


@pytest.fixture(scope="session")
def admin_database_url() -> Iterator[str]:
    """A URL with the right to create databases on the test server."""
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


@pytest.fixture(scope="session")
def database_url(admin_database_url: str) -> Iterator[str]:
    """A freshly migrated database of this test session's own."""
    name = f"taskql_test_{uuid.uuid4().hex[:12]}"
    url = asyncio.run(create_migrated_database(admin_database_url, name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(admin_database_url, name))


@pytest.fixture
async def clean_database(database_url: str) -> str:
    """The session database with no tasks (and no rate-limit buckets) in it, so each test
    starts from nothing."""
    conn = await asyncpg.connect(database_url)
    try:
        # DELETE rather than TRUNCATE: on tables this small it takes about 1 ms where
        # TRUNCATE, which makes new files, takes 20, and nearly every test pays it.
        await conn.execute(
            "DELETE FROM tasks; DELETE FROM rate_limits;"
            " SELECT setval(pg_get_serial_sequence('tasks', 'id'), 1, false)"
        )
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


@pytest.fixture
def settings(clean_database: str) -> main.Settings:
    return make_settings(clean_database)


@pytest.fixture
async def client(settings: main.Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the real app, its lifespan running as under a server."""
    async with app_client(settings) as http:
        yield http


@pytest.fixture
def auth() -> Callable[[str], dict[str, str]]:
    """Authorization headers for a user id."""

    def headers(user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {hs256_token(user_id)}"}

    return headers


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """One app for the whole module: its tests keep apart by acting as users of their own.

    Being the module's, it lives in the module's event loop, and so must the tests that use it:
    `pytest.mark.asyncio(loop_scope="module")`.
    """
    async with app_client(make_settings(database_url)) as client:
        yield client


@pytest.fixture
def alice() -> Caller:
    """A user of the test's own, with a valid token."""
    return new_caller("alice")


@pytest.fixture
def bob() -> Caller:
    """Another user of the test's own, with a valid token."""
    return new_caller("bob")


@pytest.fixture
async def listing(clean_database: str) -> tuple[list[Any], list[int]]:
    """300 tasks of alice's with ties in every order (and 40 of bob's): alice's rows and ids."""
    rows = task_rows(300, seed=4)
    ids = await seed_tasks(clean_database, "alice", rows)
    await seed_tasks(clean_database, "bob", task_rows(40, seed=5))
    return rows, ids
