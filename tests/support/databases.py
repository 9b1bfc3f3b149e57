"""Databases of the tests' own on the test server: migrated, or empty without the schema."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade


def database_url_for(admin_url: str, name: str) -> str:
    """The admin URL pointing at another database on the same server."""
    scheme, _, rest = admin_url.partition("://")
    authority, _, path = rest.partition("/")
    query = path.partition("?")[2]
    return f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")


async def create_migrated_database(admin_url: str, name: str) -> str:
    """A new database `name`, migrated to head; its URL."""
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    url = database_url_for(admin_url, name)
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


async def drop_database(admin_url: str, name: str) -> None:
    """Drop `name` if it exists, ending its sessions (a pool or subprocess the test left open)."""
    await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def empty_database(admin_url: str, prefix: str = "taskql_empty") -> AsyncIterator[str]:
    """The URL of a new database with nothing in it (no migrations), dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield database_url_for(admin_url, name)
    finally:
        await drop_database(admin_url, name)


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
