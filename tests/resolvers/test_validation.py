"""The due-date rule of resolvers/validation.py: its pattern (which the OpenAPI document states)
admits exactly the due dates the parser accepts, in Python's and in JSON Schema's regex dialect."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, date, datetime

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resolvers.errors import InvalidInput
from resolvers.validation import (
    DUE_DATE_PATTERN,
    MAX_DUE_YEAR,
    MIN_DUE_YEAR,
    validate_task_filter,
)

# What JSON Schema validators (and schemathesis) do with the document's pattern.
DOCUMENTED = jsonschema_rs.validator_for({"type": "string", "pattern": DUE_DATE_PATTERN})
# Both ends of the year range, and years around each of the Gregorian leap-year rules: every
# fourth year, but not every hundredth (1900, 2100), but every four-hundredth (2000, 2400).
YEARS = [
    *range(6),
    *(year for century in (1900, 2000, 2100, 2400) for year in range(century - 5, century + 6)),
    *range(9994, 10_000),
]


def accepted(text: str) -> datetime | None:
    """The instant a due_before filter reads from `text`, None when it is refused."""
    try:
        return validate_task_filter(due_before=text).due_before
    except InvalidInput:
        return None


def calendar_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def test_the_pattern_admits_the_calendar_dates_of_the_allowed_years_and_nothing_else() -> None:
    for year, month, day in itertools.product(YEARS, range(13 + 1), range(32 + 1)):
        text = f"{year:04d}-{month:02d}-{day:02d}"
        real = calendar_date(year, month, day)
        valid = real is not None and MIN_DUE_YEAR <= year <= MAX_DUE_YEAR
        assert (re.fullmatch(DUE_DATE_PATTERN, text) is not None) == valid, text
        assert DOCUMENTED.is_valid(text) == valid, text
        midnight = datetime(year, month, day, tzinfo=UTC) if valid else None
        assert accepted(text) == midnight, text


@pytest.mark.slow
@given(st.from_regex(DUE_DATE_PATTERN, fullmatch=True))
def test_whatever_the_pattern_admits_is_accepted_as_the_instant_it_names(text: str) -> None:
    assert DOCUMENTED.is_valid(text)
    instant = accepted(text)
    assert instant is not None, text
    written = datetime.fromisoformat(text.upper())
    if written.tzinfo is None:
        written = written.replace(tzinfo=UTC)
    assert instant == written
    assert instant.tzinfo == UTC


# Near misses of the grammar: each one edit away from a valid due date.
NEAR_MISSES = st.builds(
    lambda valid, position, character: valid[:position] + character + valid[position + 1 :],
    st.sampled_from(["2026-12-31", "2026-12-31T17:00:00Z", "2024-02-29 00:00:00.5+01:00"]),
    st.integers(0, 30),
    st.sampled_from([*"0123456789-:+ TtZz.,W\n", "", "12", "\u0661"]),
)


@pytest.mark.slow
@given(st.one_of(st.text(max_size=40), NEAR_MISSES))
def test_anything_the_pattern_refuses_is_refused(text: str) -> None:
    documented = re.fullmatch(DUE_DATE_PATTERN, text) is not None
    assert DOCUMENTED.is_valid(text) == documented, text
    assert (accepted(text) is not None) == documented, text


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-12-31", datetime(2026, 12, 31, tzinfo=UTC)),
        ("2026-12-31T17:00", datetime(2026, 12, 31, 17, tzinfo=UTC)),
        ("2026-12-31 17:00:05", datetime(2026, 12, 31, 17, 0, 5, tzinfo=UTC)),
        ("2026-12-31t17:00:05.25z", datetime(2026, 12, 31, 17, 0, 5, 250_000, tzinfo=UTC)),
        ("2026-12-31T18:00:00+01:00", datetime(2026, 12, 31, 17, tzinfo=UTC)),
        ("2026-12-31T12:00:00-0500", datetime(2026, 12, 31, 17, tzinfo=UTC)),
        # Beyond microseconds, fractions are cut off.
        ("2026-12-31T17:00:00.1234567891Z", datetime(2026, 12, 31, 17, 0, 0, 123_456, tzinfo=UTC)),
        # The ends of the range, with the offsets that carry them furthest.
        ("0002-01-01T00:00:00+23:59", datetime(1, 12, 31, 0, 1, tzinfo=UTC)),
        (
            "9998-12-31T23:59:59.999999-23:59",
            datetime(9999, 1, 1, 23, 58, 59, 999_999, tzinfo=UTC),
        ),
    ],
)
def test_due_dates_name_these_instants(text: str, instant: datetime) -> None:
    assert DOCUMENTED.is_valid(text)
    assert accepted(text) == instant
