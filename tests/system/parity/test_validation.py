"""Invalid input is refused through either door with the same fields and messages."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.doors import Caller, Door, Problem, create, current

pytestmark = pytest.mark.asyncio(loop_scope="module")


# Each invalid input with the field it is reported on and the message; both doors give the
# same message, because both call the same validation.
INVALID_INPUTS = [
    pytest.param({"description": "no title"}, "title", "Title is required", id="missing-title"),
    pytest.param({"title": None}, "title", "Title must not be null", id="null-title"),
    pytest.param({"title": ""}, "title", "Title must not be blank", id="blank-title"),
    pytest.param(
        {"title": " \t\n\u2003 "}, "title", "Title must not be blank", id="whitespace-title"
    ),
    pytest.param(
        {"title": "t" * 256}, "title", "Title must be at most 255 characters", id="title-256"
    ),
    pytest.param(
        {"title": "x", "description": "d" * 10_001},
        "description",
        "Description must be at most 10000 characters",
        id="description-10001",
    ),
    pytest.param(
        {"title": "a\x00b"}, "title", "Title must not contain NUL characters", id="nul-title"
    ),
    pytest.param(
        {"title": "x", "description": "nul\x00"},
        "description",
        "Description must not contain NUL characters",
        id="nul-description",
    ),
    pytest.param(
        {"title": "x", "due_date": "0001-01-01T00:00:00+01:00"},
        "due_date",
        "Due date must fall within the years 0002 to 9998",
        id="due-date-out-of-range",
    ),
]


@pytest.mark.parametrize(("body", "field", "message"), INVALID_INPUTS)
async def test_invalid_input_is_refused_on_create(
    door: Door, alice: Caller, body: dict[str, Any], field: str, message: str
) -> None:
    outcome = await door.create(alice, body)

    assert outcome.kind == "invalid"
    assert outcome.status == (422 if door.name == "rest" else 200)
    assert outcome.problems == (Problem(field, message),)
    assert (await door.list(alice)).tasks == ()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [p for p in INVALID_INPUTS if p.id != "missing-title"],
)
async def test_invalid_input_is_refused_on_update(
    door: Door, alice: Caller, body: dict[str, Any], field: str, message: str
) -> None:
    task = await create(door, alice, title="unchanged")

    outcome = await door.update(alice, task.id, body)

    assert outcome.kind == "invalid"
    assert outcome.problems == (Problem(field, message),)
    assert await current(door, alice, task.id) == task


async def test_every_invalid_field_is_reported_at_once(door: Door, alice: Caller) -> None:
    outcome = await door.create(
        alice, {"title": " ", "description": "d" * 10_001, "due_date": "9999-12-31T23:59:59-01:00"}
    )

    assert outcome.kind == "invalid"
    assert outcome.fields == {"title", "description", "due_date"}
    assert outcome.messages == [
        "Description must be at most 10000 characters",
        "Due date must fall within the years 0002 to 9998",
        "Title must not be blank",
    ]


async def test_a_malformed_due_date_is_refused(door: Door, alice: Caller) -> None:
    outcome = await door.create(alice, {"title": "x", "due_date": "next tuesday"})

    assert outcome.kind == "invalid"
    assert outcome.fields == {"due_date"}
    assert outcome.status == 422
    if door.name == "rest":
        assert outcome.messages == [
            "Due date must be a date such as 2026-12-31 or a date-time such as 2026-12-31T17:00:00Z"
        ]
    else:
        # GraphQL's DateTime scalar refuses it before any resolver runs: a request error.
        assert "DateTime" in outcome.messages[0]
    assert (await door.list(alice)).tasks == ()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"title": "t" * 255}, id="title-255"),
        pytest.param({"title": "é" * 255}, id="title-255-two-byte"),
        pytest.param({"title": "\U0001f600" * 255}, id="title-255-four-byte"),
        pytest.param({"title": "  " + "t" * 255 + "  "}, id="title-255-after-trimming"),
        pytest.param({"title": "x", "description": "d" * 10_000}, id="description-10000"),
        pytest.param({"title": "x", "description": "\U0001f600" * 10_000}, id="description-4b"),
    ],
)
async def test_input_at_the_limits_is_accepted(
    door: Door, alice: Caller, body: dict[str, Any]
) -> None:
    task = await create(door, alice, **body)

    assert task.title == body["title"].strip()
    assert task.description == body.get("description", "")
    assert await current(door, alice, task.id) == task
