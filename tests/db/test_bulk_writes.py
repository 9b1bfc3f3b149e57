"""The bulk write functions of migration 0007, called as the application's role: they act on
their owner's tasks only, whatever ids they are handed, and refuse more than the maximum."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.support.graphql import seed_tasks


@pytest.fixture
async def app_role(clean_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection acting as taskql_app, bound by row-level security like the app's."""
    conn = await asyncpg.connect(clean_database)
    await conn.execute("SET ROLE taskql_app")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.mark.slow
async def test_another_owners_ids_change_nothing(
    clean_database: str, app_role: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    [bobs] = await seed_tasks(clean_database, "bob", [("bob's", "", False, None, now, now)])

    completed = await app_role.fetch(
        "SELECT * FROM taskql_set_tasks_completion('alice', true, ARRAY[$1]::bigint[], 10)", bobs
    )
    deleted = await app_role.fetch(
        "SELECT * FROM taskql_delete_tasks('alice', ARRAY[$1]::bigint[], 10)", bobs
    )

    assert (completed, deleted) == ([], [])
    admin = await asyncpg.connect(clean_database)
    try:
        row = await admin.fetchrow("SELECT completed, version FROM tasks WHERE id = $1", bobs)
        events = await admin.fetchval(
            "SELECT count(*) FROM task_events WHERE owner_id = 'bob' AND task_id = $1", bobs
        )
    finally:
        await admin.close()
    assert (row["completed"], row["version"], events) == (False, 1, 0)


async def test_more_ids_than_the_maximum_is_one_refusal_row(
    clean_database: str, app_role: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    ids = await seed_tasks(
        clean_database, "alice", [(f"t{n}", "", False, None, now, now) for n in range(3)]
    )

    refused = await app_role.fetch(
        "SELECT too_many, id FROM taskql_delete_tasks('alice', $1::bigint[], 2)", ids
    )
    allowed = await app_role.fetch(
        "SELECT too_many, id FROM taskql_delete_tasks('alice', $1::bigint[], 3)", ids
    )

    assert [tuple(row) for row in refused] == [(True, None)]
    assert sorted(tuple(row) for row in allowed) == [(False, task_id) for task_id in ids]
