"""rest_compat/listing.py: the list route's filters, sort and paging; bad ones are 422."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from resolvers.domain import DEFAULT_ORDER, TaskFilter
from resolvers.pagination import PageRequest
from rest_compat.listing import LIST_WITHOUT_PARAMETERS, parse_list_query
from tests.support.graphql import seed_tasks
from tests.support.listing import BASE, expected_ids

Auth = Callable[[str], dict[str, str]]


async def test_rest_without_parameters_lists_every_task_oldest_first(
    client: httpx.AsyncClient, auth: Auth, listing: tuple[list[Any], list[int]]
) -> None:
    rows, ids = listing
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
    listing: tuple[list[Any], list[int]],
    sort: str,
    field: str,
    direction: str,
) -> None:
    rows, ids = listing
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


async def test_rest_offset_at_the_largest_bigint_is_an_empty_page(
    client: httpx.AsyncClient, auth: Auth, listing: tuple[list[Any], list[int]]
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


def test_a_listing_without_a_query_string_is_every_task_in_the_default_order() -> None:
    # The route answers an empty query string with this constant instead of parsing it.
    assert parse_list_query({}) == LIST_WITHOUT_PARAMETERS
    assert LIST_WITHOUT_PARAMETERS.filters == TaskFilter()
    assert LIST_WITHOUT_PARAMETERS.order == DEFAULT_ORDER
    assert LIST_WITHOUT_PARAMETERS.page == PageRequest()
