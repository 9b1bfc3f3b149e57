"""Every supported order of one owner's task list is served by an index scan, without a sort."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from db.tasks import list_sql
from resolvers.domain import Position, TaskFilter, TaskOrder
from tests.support.graphql import seed_tasks
from tests.support.listing import task_rows

INDEX_BY_ORDER = {
    ("created_at", False): "tasks_owner_created_idx",
    ("created_at", True): "tasks_owner_created_idx",
    ("updated_at", False): "tasks_owner_updated_idx",
    ("updated_at", True): "tasks_owner_updated_idx",
    ("title", False): "tasks_owner_title_idx",
    ("title", True): "tasks_owner_title_idx",
    ("due_date", False): "tasks_owner_due_asc_idx",
    ("due_date", True): "tasks_owner_due_desc_idx",
}
CURSOR_VALUES = {
    "created_at": datetime(2026, 1, 2, tzinfo=UTC),
    "updated_at": datetime(2026, 1, 2, tzinfo=UTC),
    "title": "task025",
    "due_date": None,
}


@pytest.fixture(scope="module")
def analyzed(database_url: str) -> str:
    """Many owners, one of them with thousands of tasks, with fresh planner statistics."""
    asyncio.run(_seed_many_owners(database_url))
    return database_url


async def _seed_many_owners(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("TRUNCATE tasks RESTART IDENTITY")
        for owner in range(40):
            # owner7 is the busy user whose lists are explained.
            count = 5000 if owner == 7 else 200
            await seed_tasks(database_url, f"owner{owner}", task_rows(count, seed=owner))
        await conn.execute("ANALYZE tasks")
    finally:
        await conn.close()


async def explain(database_url: str, **arguments: object) -> str:
    sql, params = list_sql(owner_id="owner7", limit=51, **arguments)  # type: ignore[arg-type]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(f"EXPLAIN {sql}", *params)
    finally:
        await conn.close()
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize(("field", "descending"), list(INDEX_BY_ORDER))
@pytest.mark.parametrize("paged", [False, True], ids=["first-page", "after-cursor"])
@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
async def test_each_order_is_an_index_scan_without_a_sort(
    analyzed: str, field: str, descending: bool, paged: bool, backwards: bool
) -> None:
    position = Position(CURSOR_VALUES[field], 1000) if paged else None
    plan = await explain(
        analyzed,
        order=TaskOrder(field=field, descending=descending),  # type: ignore[arg-type]
        filters=TaskFilter(completed=False),
        after=position,
        backwards=backwards,
    )
    assert f"Index Scan Backward using {INDEX_BY_ORDER[field, descending]}" in plan or (
        f"Index Scan using {INDEX_BY_ORDER[field, descending]}" in plan
    ), plan
    assert "Sort" not in plan, plan
