"""Someone else's task, or no task at all, is not found through either door."""

from __future__ import annotations

import pytest

from tests.support.doors import OPERATIONS, Caller, Door, create, current, operate

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_another_users_task_is_not_found(
    door: Door, alice: Caller, bob: Caller, operation: str
) -> None:
    task = await create(door, alice, title="private", description="secret")

    outcome = await operate(door, bob, operation, task.id)

    assert outcome.kind == "not_found"
    assert outcome.status == (404 if door.name == "rest" else 200)
    # The owner sees the task exactly as it was.
    assert await current(door, alice, task.id) == task
    assert [t.id for t in (await door.list(alice)).tasks] == [task.id]


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize("task_id", [0, 2**31, 2**63 - 1, 2**63, 10**20])
async def test_a_task_id_that_names_no_task_is_not_found(
    door: Door, alice: Caller, operation: str, task_id: int
) -> None:
    outcome = await operate(door, alice, operation, task_id)

    assert outcome.kind == "not_found"
