"""Root Query: the viewer is the token's subject; an ID that names no task finds none."""

from __future__ import annotations

import httpx
import pytest

from tests.support.doors import Caller, GraphQLDoor, create, new_caller
from tests.support.graphql import post_graphql

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_graphql_viewer_is_the_tokens_subject(http: httpx.AsyncClient) -> None:
    alice = new_caller("alice")

    response = await post_graphql(http, "{ viewer { id } }", headers=alice.headers)

    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"id": alice.user_id}}}


@pytest.mark.parametrize("task_id", ["abc", "", "-1", "1.0", " 1", "99999999999999999999"])
async def test_graphql_an_id_that_names_no_task(
    http: httpx.AsyncClient, alice: Caller, task_id: str
) -> None:
    await create(GraphQLDoor(http), alice)
    response = await post_graphql(
        http,
        """query($id: ID!) { task(id: $id) { id } }""",
        {"id": task_id},
        alice.headers,
    )
    mutations = await post_graphql(
        http,
        """mutation($id: ID!) {
          updateTask(id: $id, input: {title: "x"}) { task { id } userErrors { field code } }
          toggleTaskCompletion(id: $id) { task { id } userErrors { field code } }
          deleteTask(id: $id) { deletedTaskId userErrors { field code } }
        }""",
        {"id": task_id},
        alice.headers,
    )

    assert response.json() == {"data": {"task": None}}
    not_found = [{"field": ["id"], "code": "NOT_FOUND"}]
    assert mutations.json() == {
        "data": {
            "updateTask": {"task": None, "userErrors": not_found},
            "toggleTaskCompletion": {"task": None, "userErrors": not_found},
            "deleteTask": {"deletedTaskId": None, "userErrors": not_found},
        }
    }
