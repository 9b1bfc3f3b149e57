"""Root Mutation: a version conflict comes back as a userError with the task as it is now."""

from __future__ import annotations

import httpx
import pytest

from tests.support.doors import Caller, GraphQLDoor, create
from tests.support.graphql import post_graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_graphql_a_version_conflict_returns_the_current_task(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    door = GraphQLDoor(http)
    task = await create(door, alice, title="v1")
    await door.update(alice, task.id, {"title": "v2"})

    response = await post_graphql(
        http,
        'mutation($id: ID!) { updateTask(id: $id, input: {title: "v3"}, expectedVersion: 1) {'
        " task { id title version } userErrors { field message code } } }",
        {"id": str(task.id)},
        alice.headers,
    )

    assert response.status_code == 200
    payload = response.json()["data"]["updateTask"]
    assert payload["task"] == {"id": str(task.id), "title": "v2", "version": 2}
    [error] = payload["userErrors"]
    assert (error["field"], error["code"]) == (["expectedVersion"], "VERSION_CONFLICT")
    assert error["message"].endswith("current version is 2")
