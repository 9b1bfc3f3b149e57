"""The tasks connection: Relay pages walk every task once; bad page arguments are refused."""

from __future__ import annotations

import httpx
import pytest

from tests.support.doors import Caller, GraphQLDoor, create
from tests.support.graphql import post_graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_graphql_pagination_walks_every_task_once(
    http: httpx.AsyncClient, alice: Caller, bob: Caller
) -> None:
    door = GraphQLDoor(http)
    created = [(await create(door, alice, title=f"task {n}")).id for n in range(7)]
    await create(door, bob, title="not alice's")
    query = """query($after: String) { tasks(first: 3, after: $after) {
        totalCount
        edges { cursor node { id } }
        nodes { id }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    } }"""

    seen: list[int] = []
    pages: list[bool] = []
    after = None
    for _ in range(5):
        response = await post_graphql(http, query, {"after": after}, alice.headers)
        connection = response.json()["data"]["tasks"]
        assert connection["totalCount"] == 7
        nodes = [int(node["id"]) for node in connection["nodes"]]
        assert [int(edge["node"]["id"]) for edge in connection["edges"]] == nodes
        page_info = connection["pageInfo"]
        assert page_info["startCursor"] == connection["edges"][0]["cursor"]
        assert page_info["endCursor"] == connection["edges"][-1]["cursor"]
        seen += nodes
        pages.append(page_info["hasNextPage"])
        if not page_info["hasNextPage"]:
            break
        after = page_info["endCursor"]

    assert seen == created
    assert pages == [True, True, False]


async def test_graphql_pagination_edges(http: httpx.AsyncClient, alice: Caller) -> None:
    empty = await post_graphql(
        http,
        "{ tasks(first: 5) { totalCount nodes { id } pageInfo { hasNextPage endCursor } } }",
        headers=alice.headers,
    )
    assert empty.json()["data"]["tasks"] == {
        "totalCount": 0,
        "nodes": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None},
    }

    for first, after in [(-1, None), (101, None), (5, "not-a-cursor"), (5, "WzFd")]:
        response = await post_graphql(
            http,
            "query($first: Int, $after: String) {"
            " tasks(first: $first, after: $after) { totalCount } }",
            {"first": first, "after": after},
            alice.headers,
        )
        body = response.json()
        assert body["data"] is None, (first, after)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", (first, after)
