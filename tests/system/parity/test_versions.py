"""Versions through either door: a stale one is a conflict, concurrent writers lose nothing."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.doors import Caller, Door, create, current

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.mark.parametrize("operation", ["update", "toggle", "delete"])
async def test_a_stale_version_is_a_conflict_and_changes_nothing(
    door: Door, alice: Caller, operation: str
) -> None:
    task = await create(door, alice)
    moved = (await door.toggle(alice, task.id)).task

    if operation == "update":
        outcome = await door.update(alice, task.id, {"title": "lost update"}, version=1)
    elif operation == "toggle":
        outcome = await door.toggle(alice, task.id, version=1)
    else:
        outcome = await door.delete(alice, task.id, version=1)

    assert outcome.kind == "conflict"
    assert outcome.current_version == 2
    assert outcome.status == (412 if door.name == "rest" else 200)
    assert await current(door, alice, task.id) == moved


async def test_a_matching_version_is_applied(door: Door, alice: Caller) -> None:
    task = await create(door, alice)

    updated = await door.update(alice, task.id, {"title": "checked"}, version=1)
    toggled = await door.toggle(alice, task.id, version=2)
    deleted = await door.delete(alice, task.id, version=3)

    assert (updated.kind, toggled.kind, deleted.kind) == ("ok", "ok", "ok")
    assert (updated.task.version, toggled.task.version) == (2, 3)
    assert (await door.get(alice, task.id)).kind == "not_found"


async def test_concurrent_toggles_are_never_lost(door: Door, alice: Caller) -> None:
    task = await create(door, alice)

    outcomes = await asyncio.gather(*(door.toggle(alice, task.id) for _ in range(10)))

    assert {o.kind for o in outcomes} == {"ok"}
    assert sorted(o.task.version for o in outcomes) == list(range(2, 12))
    final = await current(door, alice, task.id)
    assert (final.version, final.completed) == (11, False)


async def test_concurrent_updates_of_one_version_let_exactly_one_win(
    door: Door, alice: Caller
) -> None:
    task = await create(door, alice)

    outcomes = await asyncio.gather(
        *(door.update(alice, task.id, {"title": f"writer {n}"}, version=1) for n in range(5))
    )

    winners = [o for o in outcomes if o.kind == "ok"]
    assert len(winners) == 1
    assert sorted(o.kind for o in outcomes) == ["conflict"] * 4 + ["ok"]
    assert await current(door, alice, task.id) == winners[0].task
