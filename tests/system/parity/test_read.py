"""Reading tasks through either door: the caller's list, one task, the same task seen by both."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from tests.support.doors import Caller, Door, GraphQLDoor, RestDoor, create, current, new_caller

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_list_returns_only_the_callers_tasks_oldest_first(
    door: Door, alice: Caller, bob: Caller
) -> None:
    alices = [await create(door, alice, title=f"alice {n}") for n in range(3)]
    bobs = [await create(door, bob, title="bob 0")]

    alice_list = await door.list(alice)
    bob_list = await door.list(bob)
    nobody_list = await door.list(new_caller())

    assert alice_list.kind == bob_list.kind == nobody_list.kind == "ok"
    assert alice_list.status == 200
    assert [t.id for t in alice_list.tasks] == [t.id for t in alices]
    assert [t.title for t in alice_list.tasks] == ["alice 0", "alice 1", "alice 2"]
    assert [replace(t, version=None) for t in bob_list.tasks] == [
        replace(t, version=None) for t in bobs
    ]
    assert nobody_list.tasks == ()


async def test_get_returns_the_task(door: Door, alice: Caller) -> None:
    created = await create(door, alice, title="Read", description="a book")

    outcome = await door.get(alice, created.id)

    assert outcome.kind == "ok"
    assert outcome.status == 200
    assert outcome.task == created


async def test_a_task_is_the_same_through_both_doors(http: httpx.AsyncClient) -> None:
    alice = new_caller("alice")
    rest, graphql = RestDoor(http), GraphQLDoor(http)
    from_rest = await create(rest, alice, title="via REST", due_date="2026-12-01T17:00:00Z")
    from_graphql = await create(graphql, alice, title="via GraphQL", description="d")
    await rest.toggle(alice, from_graphql.id)
    await graphql.toggle(alice, from_rest.id)

    for task_id in (from_rest.id, from_graphql.id):
        assert await current(rest, alice, task_id) == await current(graphql, alice, task_id)
    rest_list = (await rest.list(alice)).tasks
    graphql_list = (await graphql.list(alice)).tasks
    assert rest_list == tuple(replace(t, version=None) for t in graphql_list)
    assert [t.id for t in rest_list] == [from_rest.id, from_graphql.id]
