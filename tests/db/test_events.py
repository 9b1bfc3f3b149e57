"""Reading event streams (db/events.py) under row-level security, as the app's role does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from db import events
from db.engine import Database
from tests.support.app import make_settings
from tests.support.streams import new_user, recorded_cursors


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    opened = await Database.open(
        make_settings(database_url, DB_POOL_SIZE="2").database(database_url)
    )
    try:
        yield opened
    finally:
        await opened.close()


async def _write(database_url: str, owner: str, count: int) -> list[int]:
    """`count` created tasks of the owner's; their events' positions."""
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
    return [int(cursor) for cursor in await recorded_cursors(database_url, owner)]


async def test_an_owner_reads_only_their_own_events(database: Database, database_url: str) -> None:
    alice, bob = new_user(), new_user()
    alices_positions = await _write(database_url, alice, 3)
    bobs_positions = await _write(database_url, bob, 1)
    async with database.connect() as conn:
        alices = await events.select_events_after(conn, owner_id=alice, after=0, limit=10)
        bobs = await events.select_events_after(conn, owner_id=bob, after=0, limit=10)
    assert [row[0] for row in alices] == alices_positions
    assert [row[3] for row in alices] == ["t0", "t1", "t2"]
    assert [row[0] for row in bobs] == bobs_positions
    # One sequence numbers everyone's events: they grow, and Bob's came after Alice's.
    assert alices_positions == sorted(set(alices_positions))
    assert bobs_positions[0] > alices_positions[-1]


async def test_every_event_yet_to_commit_comes_after_the_head(
    database: Database, database_url: str
) -> None:
    owner = new_user()
    [last] = await _write(database_url, owner, 1)
    async with database.connect() as conn:
        head = await events.select_stream_head(conn, owner_id=owner)
        nobodys = await events.select_stream_head(conn, owner_id=new_user())
    following = (await _write(database_url, owner, 1))[-1]
    assert last <= head < following
    assert last <= nobodys < following


async def test_the_head_waits_for_the_owners_writes_in_flight(
    database: Database, database_url: str
) -> None:
    """A write holds its owner's stream lock from its position to its commit: a head read
    meanwhile would be past a position not yet visible, and the stream would skip it."""
    owner, other = new_user(), new_user()
    writer = await asyncpg.connect(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await writer.execute(
            "SELECT taskql_create_task($1, 'in flight', '', NULL, false, NULL, NULL)", owner
        )
        async with database.connect() as conn, database.connect() as other_conn:
            head = asyncio.create_task(events.select_stream_head(conn, owner_id=owner))
            # Another owner's head does not wait.
            await asyncio.wait_for(events.select_stream_head(other_conn, owner_id=other), 5)
            await asyncio.sleep(0.3)
            assert not head.done()
            await transaction.commit()
            position = await asyncio.wait_for(head, 5)
        in_flight = await writer.fetchval(
            "SELECT position FROM task_events WHERE owner_id = $1", owner
        )
    finally:
        await writer.close()
    assert position >= in_flight


async def test_after_a_position_and_a_limit_page_through_a_stream(
    database: Database, database_url: str
) -> None:
    owner = new_user()
    positions = await _write(database_url, owner, 5)
    async with database.connect() as conn:
        page = await events.select_events_after(conn, owner_id=owner, after=positions[1], limit=2)
    assert [row[0] for row in page] == positions[2:4]


async def test_the_purge_records_the_last_position_it_removed_per_owner(
    database: Database, database_url: str
) -> None:
    purged, kept = new_user(), new_user()
    purged_positions = await _write(database_url, purged, 2)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SET ROLE taskql_app")
        cut_off = await conn.fetchval("SELECT now() + interval '1 second'")
        await conn.execute("SELECT taskql_purge($1, now() - interval '1 day')", cut_off)
    finally:
        await conn.close()
    await _write(database_url, kept, 1)
    async with database.connect() as conn:
        assert await events.select_purged_through(conn, owner_id=purged) == purged_positions[-1]
        assert await events.select_purged_through(conn, owner_id=kept) == 0


async def test_the_app_role_sees_no_event_without_naming_its_owner(
    database: Database, database_url: str
) -> None:
    await _write(database_url, new_user(), 2)
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT count(*) FROM task_events") == 0
        assert await conn.fetchval("SELECT count(*) FROM task_stream_purges") == 0
