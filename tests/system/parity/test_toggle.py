"""Toggling a task's completion through either door."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.doors import Caller, Door, create, current

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_toggle_twice_returns_to_the_original_state(door: Door, alice: Caller) -> None:
    created = await create(door, alice)

    once = await door.toggle(alice, created.id)
    twice = await door.toggle(alice, created.id)

    assert once.kind == twice.kind == "ok"
    assert once.status == 200
    assert (once.task.completed, once.task.version) == (True, 2)
    assert (twice.task.completed, twice.task.version) == (False, 3)
    assert twice.task == replace(created, version=3, updated_at=twice.task.updated_at)
    assert await current(door, alice, created.id) == twice.task
