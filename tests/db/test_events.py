"""Reading event streams (db/events.py) under row-level security, as the app's role does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from db import events
from db.engine import Database
from tests.support.app import make_settings
from tests.support.streams import new_user


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = await Database.open(
        make_settings(database_url, DB_POOL_SIZE="2").database(database_url)
    )
    try:
        yield opened
    finally:
        await opened.close()


async def _write(database_url: str, owner: str, count: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for number in range(count):
            await conn.execute(
                "SELECT taskql_create_task($1, $2, '', NULL, false, NULL, NULL)",
                owner,
                f"t{number}",
            )
    finally:
        await conn.close()


async def test_an_owner_reads_only_their_own_events(database: Database, database_url: str) -> None:
    alice, bob = new_user(), new_user()
    await _write(database_url, alice, 3)
    await _write(database_url, bob, 1)
    async with database.connect() as conn:
        alices = await events.select_events_after(conn, owner_id=alice, after=0, limit=10)
        bobs = await events.select_events_after(conn, owner_id=bob, after=0, limit=10)
        heads = [await events.select_stream_head(conn, owner_id=o) for o in (alice, bob)]
        nobody = await events.select_stream_head(conn, owner_id=new_user())
    assert [row[0] for row in alices] == [1, 2, 3]
    assert [row[3] for row in alices] == ["t0", "t1", "t2"]
    assert [row[0] for row in bobs] == [1]
    assert (heads, nobody) == ([3, 1], 0)


async def test_after_a_position_and_a_limit_page_through_a_stream(
    database: Database, database_url: str
) -> None:
    owner = new_user()
    await _write(database_url, owner, 5)
    async with database.connect() as conn:
        page = await events.select_events_after(conn, owner_id=owner, after=2, limit=2)
    assert [row[0] for row in page] == [3, 4]


async def test_the_app_role_sees_no_event_without_naming_its_owner(
    database: Database, database_url: str
) -> None:
    await _write(database_url, new_user(), 2)
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT count(*) FROM task_events") == 0
        assert await conn.fetchval("SELECT count(*) FROM task_streams") == 0
