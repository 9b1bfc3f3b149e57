"""Listing tasks through both doors: cursor paging in every order, filters, REST parameters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.support.graphql import graphql, seed_tasks
from tests.support.listing import BASE, expected_ids, task_rows

Auth = Callable[[str], dict[str, str]]
ORDERS = [
    (field, direction)
    for field in ("CREATED_AT", "DUE_DATE", "TITLE", "UPDATED_AT")
    for direction in ("ASC", "DESC")
]
NOW = datetime.now(UTC)

PAGE = """
query Page($first: Int, $after: String, $last: Int, $before: String,
           $filter: TaskFilter, $orderBy: TaskOrder) {
  tasks(first: $first, after: $after, last: $last, before: $before,
        filter: $filter, orderBy: $orderBy) {
    totalCount
    edges { cursor node { id } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


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


@pytest.fixture
async def seeded(clean_database: str) -> tuple[list[Any], list[int]]:
    rows = task_rows(300, seed=4)
    ids = await seed_tasks(clean_database, "alice", rows)
    await seed_tasks(clean_database, "bob", task_rows(40, seed=5))
    return rows, ids


@pytest.mark.parametrize(("field", "direction"), ORDERS)
async def test_pages_cover_every_task_once_in_order_both_ways(
    client: httpx.AsyncClient,
    auth: Auth,
    seeded: tuple[list[Any], list[int]],
    field: str,
    direction: str,
) -> None:
    rows, ids = seeded
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
    client: httpx.AsyncClient, auth: Auth, seeded: tuple[list[Any], list[int]]
) -> None:
    rows, ids = seeded
    body = await graphql(client, "{ tasks { totalCount nodes { id } } }", headers=auth("alice"))
    nodes = body["data"]["tasks"]["nodes"]
    assert [int(n["id"]) for n in nodes] == expected_ids(rows, ids, "CREATED_AT", "ASC")[:50]
    assert body["data"]["tasks"]["totalCount"] == 300


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("first: 101", "first must be between 0 and 100"),
        ("last: -1", "last must be between 0 and 100"),
        ("first: 2, last: 2", "Use first/after or last/before, not both"),
        ('after: "bm9wZQ"', "after is not a cursor of this listing's order"),
    ],
)
async def test_bad_paging_arguments_are_invalid_input(
    client: httpx.AsyncClient, auth: Auth, arguments: str, message: str
) -> None:
    response = await client.post(
        "/graphql",
        json={"query": f"{{ tasks({arguments}) {{ totalCount }} }}"},
        headers=auth("alice"),
    )
    error = response.json()["errors"][0]
    assert (error["message"], error["extensions"]["code"]) == (message, "BAD_USER_INPUT")


async def test_a_cursor_of_another_order_is_refused(
    client: httpx.AsyncClient, auth: Auth, seeded: tuple[list[Any], list[int]]
) -> None:
    body = await graphql(client, PAGE, {"first": 1}, headers=auth("alice"))
    cursor = body["data"]["tasks"]["pageInfo"]["endCursor"]
    response = await client.post(
        "/graphql",
        json={
            "query": PAGE,
            "variables": {"first": 1, "after": cursor, "orderBy": {"field": "TITLE"}},
        },
        headers=auth("alice"),
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


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


async def test_rest_without_parameters_lists_every_task_oldest_first(
    client: httpx.AsyncClient, auth: Auth, seeded: tuple[list[Any], list[int]]
) -> None:
    rows, ids = seeded
    response = await client.get("/api/alice/tasks", headers=auth("alice"))
    assert [task["id"] for task in response.json()] == expected_ids(rows, ids, "CREATED_AT", "ASC")
    assert response.headers["X-Total-Count"] == "300"


@pytest.mark.parametrize(
    ("sort", "field", "direction"),
    [
        ("due_date", "DUE_DATE", "ASC"),
        ("-due_date", "DUE_DATE", "DESC"),
        ("-created_at", "CREATED_AT", "DESC"),
        ("title", "TITLE", "ASC"),
        ("-updated_at", "UPDATED_AT", "DESC"),
    ],
)
async def test_rest_sorts_and_pages_with_limit_and_offset(
    client: httpx.AsyncClient,
    auth: Auth,
    seeded: tuple[list[Any], list[int]],
    sort: str,
    field: str,
    direction: str,
) -> None:
    rows, ids = seeded
    response = await client.get(
        "/api/alice/tasks",
        params={"sort": sort, "limit": "20", "offset": "35", "completed": "false"},
        headers=auth("alice"),
    )
    incomplete = [(row, i) for row, i in zip(rows, ids, strict=True) if not row[2]]
    expected = expected_ids(
        [r for r, _ in incomplete], [i for _, i in incomplete], field, direction
    )
    assert [task["id"] for task in response.json()] == expected[35:55]
    assert response.headers["X-Total-Count"] == str(len(incomplete))


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"limit": "ten"},
            [
                {
                    "loc": ["query", "limit"],
                    "msg": "Input should be a valid integer, unable to parse string as an integer",
                    "type": "int_parsing",
                }
            ],
        ),
        (
            {"limit": "101", "offset": "-1"},
            [
                {
                    "loc": ["query", "limit"],
                    "msg": "Input should be less than or equal to 100",
                    "type": "less_than_equal",
                },
                {
                    "loc": ["query", "offset"],
                    "msg": "Input should be greater than or equal to 0",
                    "type": "greater_than_equal",
                },
            ],
        ),
        (
            {"completed": "maybe"},
            [
                {
                    "loc": ["query", "completed"],
                    "msg": "Input should be a valid boolean, unable to interpret input",
                    "type": "bool_parsing",
                }
            ],
        ),
        (
            # Past PostgreSQL's bigint, which OFFSET is.
            {"offset": str(2**63)},
            [
                {
                    "loc": ["query", "offset"],
                    "msg": f"Input should be less than or equal to {2**63 - 1}",
                    "type": "less_than_equal",
                }
            ],
        ),
        ({"sort": "priority"}, "literal_error"),
        ({"due_before": "soon"}, "datetime_parsing"),
        ({"q": "a\x00b"}, "string_nul"),
    ],
)
async def test_rest_refuses_bad_parameters_like_fastapi(
    client: httpx.AsyncClient, auth: Auth, params: dict[str, str], detail: Any
) -> None:
    response = await client.get("/api/alice/tasks", params=params, headers=auth("alice"))
    assert response.status_code == 422
    body = response.json()["detail"]
    if isinstance(detail, str):
        name = next(iter(params))
        assert [(d["loc"], d["type"]) for d in body] == [(["query", name], detail)]
    else:
        assert body == detail


async def test_openapi_describes_the_list_parameters(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {
        "completed",
        "overdue",
        "due_before",
        "due_after",
        "q",
        "sort",
        "limit",
        "offset",
    }
    assert "X-Total-Count" in listing["responses"]["200"]["headers"]


async def test_rest_offset_at_the_largest_bigint_is_an_empty_page(
    client: httpx.AsyncClient, auth: Auth, seeded: tuple[list[Any], list[int]]
) -> None:
    response = await client.get(
        "/api/alice/tasks", params={"offset": str(2**63 - 1)}, headers=auth("alice")
    )
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["X-Total-Count"] == "300"


# Due a second before, at, and a second after midnight UTC starting 2026-12-01.
AROUND_MIDNIGHT = [
    ("before", "", False, datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC), BASE, BASE),
    ("at", "", False, datetime(2026, 12, 1, tzinfo=UTC), BASE, BASE),
    ("after", "", False, datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC), BASE, BASE),
    ("undated", "", False, None, BASE, BASE),
]


@pytest.mark.parametrize(
    ("params", "titles"),
    [
        # A bare date is midnight UTC, as in a due_date body.
        ({"due_before": "2026-12-01"}, {"before"}),
        ({"due_after": "2026-12-01"}, {"after"}),
        # No offset: UTC.
        ({"due_before": "2026-12-01T00:00:01"}, {"before", "at"}),
        ({"due_after": "2026-11-30T23:59:59.5"}, {"at", "after"}),
        # An offset names the same instant in another zone.
        ({"due_before": "2026-12-01T01:00:01+01:00"}, {"before", "at"}),
        ({"due_after": "2026-11-30T19:00:00-05:00"}, {"after"}),
        ({"due_before": "2026-12-01 00:00:01+0000"}, {"before", "at"}),
        ({"due_before": "2026-12-01t00:01z"}, {"before", "at", "after"}),
        ({"due_after": "2026-11-30", "due_before": "2026-12-01T00:00:01Z"}, {"before", "at"}),
    ],
)
async def test_rest_due_filters_read_dates_and_date_times_alike(
    client: httpx.AsyncClient,
    auth: Auth,
    clean_database: str,
    params: dict[str, str],
    titles: set[str],
) -> None:
    await seed_tasks(clean_database, "alice", AROUND_MIDNIGHT)
    response = await client.get("/api/alice/tasks", params=params, headers=auth("alice"))
    assert response.status_code == 200, response.text
    assert {task["title"] for task in response.json()} == titles


@pytest.mark.parametrize(
    ("value", "message", "kind"),
    [
        *(
            (
                value,
                "Due before must be a date such as 2026-12-31 or a date-time such as "
                "2026-12-31T17:00:00Z",
                "datetime_parsing",
            )
            for value in [
                "",
                "soon",
                "2026-02-29",
                "2026-12-32",
                "2026-12-01T24:00",
                "2026-12-01T17",
                "2026-12-01T17:00:00+01",
                "2026-12-01T17:00:00.",
                "2026-W48-1",
                "20261201",
                "2026-12-01X17:00",
                " 2026-12-01",
                "2026-12-01\n",
                # Digits, but not ASCII ones (Arabic-Indic 2026).
                "\u0662\u0660\u0662\u0666-12-01",
            ]
        ),
        ("0001-12-31", "Due before must fall within the years 0002 to 9998", "datetime_range"),
        (
            "9999-01-01T00:00:00Z",
            "Due before must fall within the years 0002 to 9998",
            "datetime_range",
        ),
    ],
)
async def test_rest_due_filters_refuse_anything_else_saying_what_they_take(
    client: httpx.AsyncClient, auth: Auth, value: str, message: str, kind: str
) -> None:
    response = await client.get(
        "/api/alice/tasks", params={"due_before": value}, headers=auth("alice")
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": ["query", "due_before"], "msg": message, "type": kind}]
    }
