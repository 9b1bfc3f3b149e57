"""Migration 0009: taskql_keep_outcome becomes PL/pgSQL, and going back restores 0005's SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.engine import DatabaseConfig, create_engine
from tests.support.databases import empty_database


@pytest.fixture
async def engine(admin_database_url: str) -> AsyncIterator[tuple[AsyncEngine, str]]:
    async with empty_database(admin_database_url, "taskql_keep_outcome") as url:
        engine = create_engine(DatabaseConfig(url=url, pool_size=1))
        try:
            yield engine, url
        finally:
            await engine.dispose()


async def _language_and_keyed_write(url: str) -> tuple[str, list[object]]:
    """The function's language, and what a keyed create and its replay store and return."""
    conn = await asyncpg.connect(url)
    try:
        language = await conn.fetchval(
            "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
            "WHERE p.proname = 'taskql_keep_outcome'"
        )
        create = (
            "SELECT replayed, title, version FROM taskql_create_task("
            "'owner', 'kept', 'as written', NULL, false, 'key', 'fingerprint')"
        )
        first, replay = await conn.fetchrow(create), await conn.fetchrow(create)
        stored = await conn.fetchrow(
            "SELECT title, description, version FROM idempotency_keys WHERE key = 'key'"
        )
        await conn.execute("TRUNCATE tasks, task_events, task_streams, idempotency_keys")
    finally:
        await conn.close()
    return language, [tuple(first), tuple(replay), tuple(stored)]


async def test_keep_outcome_is_plpgsql_at_head_and_sql_before_with_the_same_effect(
    engine: tuple[AsyncEngine, str],
) -> None:
    migrations, url = engine
    await migrate.upgrade(migrations, "0009")
    at_head = await _language_and_keyed_write(url)
    await migrate.downgrade(migrations, "0005")
    before = await _language_and_keyed_write(url)
    expected = [(False, "kept", 1), (True, "kept", 1), ("kept", "as written", 1)]
    assert at_head == ("plpgsql", expected)
    assert before == ("sql", expected)
