"""Throwaway databases on the test server, for tests that need one without the schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from tests.conftest import database_url_for


@asynccontextmanager
async def empty_database(admin_url: str, prefix: str = "taskql_empty") -> AsyncIterator[str]:
    """The URL of a new database with nothing in it (no migrations), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url_for(admin_url, name)
    finally:
        # FORCE: connections the test left open (a pool, a subprocess) must not block the drop.
        await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
