"""Databases of the tests' own on the test server: migrated, or empty, or with a schema of
the test's own making."""

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
    await migrate_to(url)
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


async def migrate_to(url: str, revision: str = "head") -> None:
    """Apply the migrations to the database at `url`, up to `revision`."""
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await upgrade(engine, revision)
    finally:
        await engine.dispose()


async def set_revision(url: str, revision: str) -> None:
    """Make the database claim `revision` (one newer code would have left, say)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("UPDATE alembic_version SET version_num = $1", revision)
    finally:
        await conn.close()


@asynccontextmanager
async def failing_database(admin_url: str, owner_id: str) -> AsyncIterator[str]:
    """A migrated database where reading `owner_id`'s tasks raises an error nobody planned for
    (a row-level security policy calls a function that raises): the way to provoke an
    unexpected error through the real app, now that a missing schema has a meaning."""
    async with empty_database(admin_url, "taskql_failing") as url:
        await migrate_to(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                """
                CREATE FUNCTION taskql_test_failure() RETURNS boolean LANGUAGE plpgsql AS
                $$ BEGIN RAISE EXCEPTION 'a failure nobody planned for'; END $$;
                CREATE POLICY taskql_test_failure ON tasks AS RESTRICTIVE
                    USING (taskql_test_failure());
                """
            )
            # As superuser, which row-level security does not bind.
            await conn.execute("INSERT INTO tasks (owner_id, title) VALUES ($1, 'x')", owner_id)
        finally:
            await conn.close()
        yield url


async def _admin(admin_url: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
