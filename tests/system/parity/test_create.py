"""Creating a task through either door: the task it returns, trimmed titles, UTC due dates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.doors import Caller, Door, create, current

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_create_returns_the_new_task_with_a_unique_id(door: Door, alice: Caller) -> None:
    body = {"title": "Buy milk", "description": "2 litres", "due_date": "2026-12-01T17:00:00Z"}
    first = await door.create(alice, body)
    second = await door.create(alice, {"title": "Buy bread"})

    assert first.kind == second.kind == "ok"
    assert first.status == (201 if door.name == "rest" else 200)
    task = first.task
    assert task.id > 0
    assert second.task.id != task.id
    assert (task.title, task.description, task.completed) == ("Buy milk", "2 litres", False)
    assert task.due_date == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert task.version == 1
    assert task.created_at == task.updated_at
    assert abs(task.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert second.task.description == ""
    assert second.task.due_date is None
    assert await current(door, alice, task.id) == task


async def test_create_trims_the_title_and_takes_every_field(door: Door, alice: Caller) -> None:
    task = await create(
        door, alice, title="  Buy milk \n", description=None, completed=True, due_date=None
    )

    assert (task.title, task.description, task.completed, task.due_date) == (
        "Buy milk",
        "",
        True,
        None,
    )


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-12-01T17:00:00Z", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01T18:30:00+01:30", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01T18:00:00+0100", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        # Without an offset a date-time is read as UTC, and a date is its midnight.
        ("2026-12-01T17:00:00", datetime(2026, 12, 1, 17, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
async def test_due_dates_are_stored_in_utc(
    door: Door, alice: Caller, sent: str, stored: datetime
) -> None:
    task = await create(door, alice, due_date=sent)

    assert task.due_date == stored
    assert (await current(door, alice, task.id)).due_date == stored
