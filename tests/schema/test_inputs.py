"""schema/inputs.py: inputs built in one step equal Strawberry's own conversion of them."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import strawberry
from hypothesis import given, settings
from hypothesis import strategies as st

from schema.inputs import built_in_one_step


@strawberry.input
class Converted:
    title: str | None = strawberry.UNSET
    due_date: datetime | None = strawberry.UNSET
    on_day: date | None = None
    completed: bool | None = strawberry.UNSET
    count: int = 0
    share: float | None = strawberry.UNSET


@built_in_one_step
@strawberry.input
class OneStep(Converted):
    """The same fields, built in one step."""


RECEIVED: list[object] = []


def _seen(value: object) -> str:
    RECEIVED.append(value)
    return f"{type(value).__name__} {sorted(vars(value).items())!r}"


@strawberry.type
class Query:
    @strawberry.field
    def converted(self, input: Converted) -> str:
        return _seen(input)

    @strawberry.field
    def one_step(self, input: OneStep) -> str:
        return _seen(input)


SCHEMA = strawberry.Schema(query=Query)
DOCUMENT = """query ($c: Converted!, $o: OneStep!) { converted(input: $c) oneStep(input: $o) }"""
FIELDS = {
    "title": st.none() | st.text(max_size=5),
    "dueDate": st.none()
    | st.sampled_from(
        [
            "2026-12-02T08:30:00Z",
            "2026-12-02T08:30:00.250+05:30",
            datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-3))).isoformat(),
        ]
    ),
    "onDay": st.none() | st.just("2026-12-24"),
    "completed": st.none() | st.booleans(),
    "count": st.integers(-(2**31), 2**31 - 1),
    "share": st.none() | st.floats(allow_nan=False, allow_infinity=False),
}


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional=FIELDS))
def test_an_input_built_in_one_step_equals_strawberrys_conversion(value: dict[str, Any]) -> None:
    result = SCHEMA.execute_sync(DOCUMENT, variable_values={"c": value, "o": value})
    assert result.errors is None
    assert result.data is not None
    assert result.data["oneStep"] == result.data["converted"].replace("Converted", "OneStep", 1)


def test_a_datetime_arrives_parsed_and_a_left_out_field_keeps_its_default() -> None:
    document = '{ oneStep(input: {dueDate: "2026-12-02T08:30:00+01:00", count: 3}) }'
    assert SCHEMA.execute_sync(document).errors is None
    received = RECEIVED[-1]
    assert isinstance(received, OneStep)
    assert received.due_date == datetime(2026, 12, 2, 7, 30, tzinfo=UTC)
    assert (received.count, received.on_day) == (3, None)
    assert received.title is strawberry.UNSET
    assert received.completed is strawberry.UNSET


class Colour(enum.Enum):
    RED = "red"


@strawberry.input
class Nested:
    name: str


@pytest.mark.parametrize(
    "annotation", [list[str], Colour, Nested, strawberry.ID], ids=["list", "enum", "input", "ID"]
)
def test_a_field_that_is_not_a_plain_scalar_is_refused(annotation: Any) -> None:
    cls = type("WithOdd", (), {"__annotations__": {"odd": annotation}})
    with pytest.raises(TypeError, match=r"WithOdd\.odd is not a plain scalar"):
        built_in_one_step(strawberry.input(cls))


def test_an_output_type_is_refused() -> None:
    with pytest.raises(TypeError, match="not an input type"):
        built_in_one_step(strawberry.type(type("Out", (), {"__annotations__": {"name": str}})))
