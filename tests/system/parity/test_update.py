"""Updating a task through either door: only the fields sent change."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from tests.support.doors import Caller, Door, create, current

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_update_sets_only_the_fields_sent(door: Door, alice: Caller) -> None:
    created = await create(
        door, alice, title="Old", description="keep me", due_date="2026-12-01T17:00:00Z"
    )

    renamed = await door.update(alice, created.id, {"title": "  New  "})
    assert renamed.kind == "ok"
    assert renamed.status == 200
    assert renamed.task == replace(
        created, title="New", version=2, updated_at=renamed.task.updated_at
    )
    assert renamed.task.updated_at > created.updated_at

    cleared = await door.update(alice, created.id, {"due_date": None})
    assert cleared.task.due_date is None
    assert (cleared.task.title, cleared.task.description) == ("New", "keep me")
    assert cleared.task.version == 3

    rest = await door.update(
        alice,
        created.id,
        {"description": None, "completed": True, "due_date": "2027-01-02T03:04:05Z"},
    )
    assert (rest.task.title, rest.task.description, rest.task.completed) == ("New", "", True)
    assert rest.task.due_date == datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert rest.task.created_at == created.created_at
    assert await current(door, alice, created.id) == rest.task


async def test_an_empty_update_changes_nothing(door: Door, alice: Caller) -> None:
    created = await create(door, alice, title="Stay")

    outcome = await door.update(alice, created.id, {})

    assert outcome.kind == "ok"
    assert outcome.task == created
    assert await current(door, alice, created.id) == created
