"""resolvers/pagination.py: sizes out of range, mixed directions, foreign cursors refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.support.graphql import graphql
from tests.support.listing import PAGE

Auth = Callable[[str], dict[str, str]]


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
    client: httpx.AsyncClient, auth: Auth, listing: tuple[list[Any], list[int]]
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
