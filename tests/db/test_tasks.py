"""db/tasks.py's listings: keyset pages in every order, filters, an index scan per order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from db.tasks import list_sql
from resolvers.domain import Position, TaskFilter, TaskOrder
from tests.support.graphql import graphql, seed_tasks
from tests.support.listing import BASE, PAGE, expected_ids, task_rows

Auth = Callable[[str], dict[str, str]]


ORDERS = [
    (field, direction)
    for field in ("CREATED_AT", "DUE_DATE", "TITLE", "UPDATED_AT")
    for direction in ("ASC", "DESC")
]


NOW = datetime.now(UTC)


async def walk(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    order: dict[str, str],
    backwards: bool = False,
    size: int = 37,
    filter: dict[str, Any] | None = None,
    between_pages: Callable[[], Any] | None = None,
) -> list[int]:
    """Every task id, page by page, in listing order; checks pageInfo on the way."""
    ids: list[int] = []
    cursor = None
    while True:
        variables: dict[str, Any] = {"orderBy": order, "filter": filter}
        variables.update(
            {"last": size, "before": cursor} if backwards else {"first": size, "after": cursor}
        )
        connection = (await graphql(client, PAGE, variables, headers=headers))["data"]["tasks"]
        page = [int(edge["node"]["id"]) for edge in connection["edges"]]
        info = connection["pageInfo"]
        more, came_from = (
            (info["hasPreviousPage"], info["hasNextPage"])
            if backwards
            else (info["hasNextPage"], info["hasPreviousPage"])
        )
        assert came_from == (cursor is not None)
        if page:
            assert info["startCursor"] == connection["edges"][0]["cursor"]
            assert info["endCursor"] == connection["edges"][-1]["cursor"]
        ids = page + ids if backwards else ids + page
        if not more:
            return ids
        cursor = info["startCursor"] if backwards else info["endCursor"]
        if between_pages is not None:
            await between_pages()


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_pages_cover_every_task_once_in_order_both_ways(
    client: httpx.AsyncClient,
    auth: Auth,
    listing: tuple[list[Any], list[int]],
    field: str,
    direction: str,
) -> None:
    rows, ids = listing
    expected = expected_ids(rows, ids, field, direction)
    order = {"field": field, "direction": direction}
    assert await walk(client, auth("alice"), order=order) == expected
    assert await walk(client, auth("alice"), order=order, backwards=True) == expected


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_paging_is_stable_under_inserts_between_pages(
    client: httpx.AsyncClient,
    auth: Auth,
    clean_database: str,
    field: str,
    direction: str,
) -> None:
    rows = task_rows(120, seed=6)
    ids = await seed_tasks(clean_database, "alice", rows)
    expected = expected_ids(rows, ids, field, direction)
    batch = iter(range(100))

    async def insert_some() -> None:
        # Land before and after the cursor in every order: extreme and middling values.
        await seed_tasks(clean_database, "alice", task_rows(6, seed=next(batch)))

    order = {"field": field, "direction": direction}
    walked = await walk(client, auth("alice"), order=order, size=25, between_pages=insert_some)
    assert len(walked) == len(set(walked))
    assert [task_id for task_id in walked if task_id in set(ids)] == expected


async def test_default_order_is_created_at_ascending_with_50_per_page(
    client: httpx.AsyncClient, auth: Auth, listing: tuple[list[Any], list[int]]
) -> None:
    rows, ids = listing
    body = await graphql(client, "{ tasks { totalCount nodes { id } } }", headers=auth("alice"))
    nodes = body["data"]["tasks"]["nodes"]
    assert [int(n["id"]) for n in nodes] == expected_ids(rows, ids, "CREATED_AT", "ASC")[:50]
    assert body["data"]["tasks"]["totalCount"] == 300


FILTER_ROWS = [
    # title, description, completed, due_date, created_at, updated_at
    ("Buy milk", "2% fat", False, NOW - timedelta(days=1), BASE, BASE),
    ("Buy MILK again", "", True, NOW - timedelta(days=1), BASE, BASE),
    ("Pay rent", "100% of it, on_time", False, NOW + timedelta(days=3), BASE, BASE),
    ("Call mum", "about milk", False, None, BASE, BASE),
    ("Read", "a_b", True, NOW + timedelta(days=10), BASE, BASE),
]


@pytest.mark.parametrize(
    ("task_filter", "titles"),
    [
        ({"search": "milk"}, {"Buy milk", "Buy MILK again", "Call mum"}),
        ({"search": "MiLk", "completed": False}, {"Buy milk", "Call mum"}),
        ({"search": "%"}, {"Buy milk", "Pay rent"}),
        ({"search": "_"}, {"Pay rent", "Read"}),
        ({"overdue": True}, {"Buy milk"}),
        ({"overdue": False}, {"Buy MILK again", "Pay rent", "Call mum", "Read"}),
        ({"completed": True}, {"Buy MILK again", "Read"}),
        ({"dueAfter": NOW.isoformat()}, {"Pay rent", "Read"}),
        (
            {"dueAfter": NOW.isoformat(), "dueBefore": (NOW + timedelta(days=5)).isoformat()},
            {"Pay rent"},
        ),
        ({"dueBefore": NOW.isoformat(), "completed": False, "search": "buy"}, {"Buy milk"}),
        ({}, {row[0] for row in FILTER_ROWS}),
    ],
)
async def test_filters_combine_with_and_in_both_doors(
    client: httpx.AsyncClient,
    auth: Auth,
    clean_database: str,
    task_filter: dict[str, Any],
    titles: set[str],
) -> None:
    await seed_tasks(clean_database, "alice", FILTER_ROWS)
    await seed_tasks(clean_database, "bob", FILTER_ROWS)
    body = await graphql(
        client,
        "query($f: TaskFilter) { tasks(filter: $f) { totalCount nodes { title } } }",
        {"f": task_filter},
        headers=auth("alice"),
    )
    connection = body["data"]["tasks"]
    assert {node["title"] for node in connection["nodes"]} == titles
    assert connection["totalCount"] == len(titles)

    names = {"search": "q", "dueAfter": "due_after", "dueBefore": "due_before"}
    params = {
        names.get(k, k): str(v).lower() if isinstance(v, bool) else v
        for k, v in task_filter.items()
    }
    response = await client.get("/api/alice/tasks", params=params, headers=auth("alice"))
    assert response.status_code == 200
    assert {task["title"] for task in response.json()} == titles
    assert response.headers["X-Total-Count"] == str(len(titles))


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


@pytest.mark.slow
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
