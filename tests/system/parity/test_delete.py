"""Deleting a task through either door: gone for every operation, the others kept."""

from __future__ import annotations

import pytest

from tests.support.doors import Caller, Door, create

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_delete_removes_the_task(door: Door, alice: Caller) -> None:
    kept = await create(door, alice, title="kept")
    doomed = await create(door, alice, title="doomed")

    deleted = await door.delete(alice, doomed.id)

    assert deleted.kind == "ok"
    assert deleted.status == (204 if door.name == "rest" else 200)
    assert (await door.get(alice, doomed.id)).kind == "not_found"
    assert (await door.delete(alice, doomed.id)).kind == "not_found"
    assert (await door.toggle(alice, doomed.id)).kind == "not_found"
    assert (await door.update(alice, doomed.id, {"title": "back"})).kind == "not_found"
    assert [t.id for t in (await door.list(alice)).tasks] == [kept.id]
