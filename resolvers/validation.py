"""Input rules for tasks, shared by both doors so GraphQL and REST reject the same things."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from resolvers.domain import TaskFilter
from resolvers.errors import FieldError, InvalidInput

# A title is 1-255 characters once trimmed; a description is bounded too (PostgreSQL text
# would take a gigabyte).
TITLE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 10_000

_LABELS = {
    "title": "Title",
    "description": "Description",
    "due_date": "Due date",
    "completed": "Completed",
    "due_before": "Due before",
    "due_after": "Due after",
    "search": "Search",
}


@dataclass(frozen=True, slots=True)
class NewTask:
    title: str
    description: str
    due_date: datetime | None
    completed: bool


def validate_new_task(data: Mapping[str, Any]) -> NewTask:
    """A task to create from untrusted input; raises InvalidInput listing every bad field."""
    errors: list[FieldError] = []
    if "title" not in data:
        errors.append(FieldError("title", "Title is required", "missing"))
    values = _validate_fields(data, errors)
    if errors:
        raise InvalidInput(errors)
    return NewTask(
        title=values["title"],
        description=values.get("description", ""),
        due_date=values.get("due_date"),
        completed=values.get("completed", False),
    )


def validate_task_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    """The columns to change from a partial update: absent fields are left alone."""
    errors: list[FieldError] = []
    values = _validate_fields(data, errors)
    if errors:
        raise InvalidInput(errors)
    return values


def validate_task_filter(
    *,
    completed: bool | None = None,
    due_before: Any = None,
    due_after: Any = None,
    overdue: bool | None = None,
    search: Any = None,
) -> TaskFilter:
    """A listing filter from untrusted input: dates read like due_date, search is text."""
    errors: list[FieldError] = []
    checks: dict[str, tuple[Any, Callable[[Any], Any]]] = {
        "due_before": (due_before, _due_date),
        "due_after": (due_after, _due_date),
        "search": (search, _search),
    }
    values: dict[str, Any] = {}
    for name, (value, check) in checks.items():
        try:
            values[name] = check(value)
        except _Invalid as invalid:
            message = f"{_LABELS[name]} {invalid.message}"
            errors.append(FieldError(name, message, invalid.kind, location="query"))
    if errors:
        raise InvalidInput(errors)
    return TaskFilter(completed=completed, overdue=overdue, **values)


def validate_bulk_filter(filters: TaskFilter | None, *, all_tasks: bool) -> TaskFilter:
    """The tasks a bulk change acts on: those matching `filters`, or every task only when the
    request says so with `all_tasks`; an empty filter alone is refused, never read as "all"."""
    given = filters is not None and _has_condition(filters)
    if all_tasks and given:
        raise InvalidInput(
            [
                FieldError(
                    "all",
                    "all acts on every task and cannot be combined with a filter",
                    "all_with_filter",
                    location="query",
                )
            ]
        )
    if all_tasks:
        return TaskFilter()
    if filters is None or not given:
        raise InvalidInput(
            [
                FieldError(
                    "filter",
                    "No filter given: name at least one condition, or ask for every task "
                    "explicitly (REST: all=true; GraphQL: all: ALL_TASKS)",
                    "empty_filter",
                    location="query",
                )
            ]
        )
    return filters


def _has_condition(filters: TaskFilter) -> bool:
    # An empty search matches every task, so it is no condition either.
    return bool(filters.search) or any(
        value is not None
        for value in (filters.completed, filters.due_before, filters.due_after, filters.overdue)
    )


def validate_completion(data: Mapping[str, Any]) -> bool:
    """The `completed` value of a bulk completion body, the only field it may have."""
    errors = [
        FieldError(name, "Only completed can be set on many tasks at once", "extra_forbidden")
        for name in data
        if name != "completed"
    ]
    if "completed" not in data:
        errors.append(FieldError("completed", "Completed is required", "missing"))
    else:
        try:
            _completed(data["completed"])
        except _Invalid as invalid:
            message = f"{_LABELS['completed']} {invalid.message}"
            errors.append(FieldError("completed", message, invalid.kind))
    if errors:
        raise InvalidInput(errors)
    return bool(data["completed"])


def _validate_fields(data: Mapping[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    checks = {
        "title": _title,
        "description": _description,
        "due_date": _due_date,
        "completed": _completed,
    }
    for name, check in checks.items():
        if name not in data:
            continue
        try:
            values[name] = check(data[name])
        except _Invalid as invalid:
            errors.append(FieldError(name, f"{_LABELS[name]} {invalid.message}", invalid.kind))
    return values


class _Invalid(Exception):
    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def _text(value: Any) -> str:
    """A string that PostgreSQL can store as text."""
    if not isinstance(value, str):
        raise _Invalid("must be a string", "string_type")
    if "\x00" in value:
        raise _Invalid("must not contain NUL characters", "string_nul")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\ud800") cannot be stored as UTF-8.
        raise _Invalid("must be valid Unicode text", "string_unicode") from None
    return value


def _at_most(value: str, max_length: int) -> str:
    if len(value) > max_length:
        raise _Invalid(f"must be at most {max_length} characters", "string_too_long")
    return value


# What a title is trimmed of: the characters str.strip() removes, named one by one so that
# the OpenAPI document can state the same set (`\s` differs between regex dialects).
TITLE_WHITESPACE = "".join(chr(code) for code in range(0x3001) if chr(code).isspace())


def _title(value: Any) -> str:
    if value is None:
        raise _Invalid("must not be null", "string_type")
    title = _text(value).strip(TITLE_WHITESPACE)
    if not title:
        raise _Invalid("must not be blank", "string_too_short")
    return _at_most(title, TITLE_MAX_LENGTH)


def _description(value: Any) -> str:
    # Clearing the description with null is what legacy clients do.
    return "" if value is None else _at_most(_text(value), DESCRIPTION_MAX_LENGTH)


def _search(value: Any) -> str | None:
    # Longer than any description, it could match nothing anyway.
    return None if value is None else _at_most(_text(value), DESCRIPTION_MAX_LENGTH)


def _completed(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false", "bool_type")
    return value


# The years a due date may be written in. asyncpg stores the first instant of year 1 and the last
# of year 9999 (UTC) as -infinity and infinity, and an offset can move either year out of Python's
# range; a year's margin at each end keeps every accepted due date an ordinary instant.
MIN_DUE_YEAR, MAX_DUE_YEAR = 2, 9998
# The forms a due date may be written in, as one regular expression that means the same in
# Python and in ECMAScript (the OpenAPI document's dialect), so that the document states exactly
# what is accepted: a calendar date (midnight UTC), or a date and a time of day to the minute,
# second or fraction (`T`, `t` or a space between them), with an optional UTC offset (none: UTC).
# Python's fromisoformat alone would also take week dates, `20261231` and any separator.
_YEAR = (
    "(?:000[2-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
)
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]+)?)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):?[0-5][0-9])"
DUE_DATE_PATTERN = f"^{_DATE}(?:[Tt ]{_TIME}{_OFFSET}?)?$"
_DUE_DATE = re.compile(DUE_DATE_PATTERN)


def _due_date(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        parsed = _parse_due_date(value)
    else:
        raise _Invalid("must be a date or date-time string, or null", "datetime_type")
    _check_due_year(parsed.year)
    # A date-time without an offset is taken to be UTC, the way most JSON APIs read it.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_due_date(text: str) -> datetime:
    if _DUE_DATE.fullmatch(text) is not None:
        # fromisoformat wants `T` and `Z` in capitals, and reads everything else the pattern admits.
        return datetime.fromisoformat(text.upper())
    # Only to tell a client whose date is fine but for its year which rule it broke.
    with suppress(ValueError):
        _check_due_year(datetime.fromisoformat(text.upper()).year)
    raise _Invalid(
        "must be a date such as 2026-12-31 or a date-time such as 2026-12-31T17:00:00Z",
        "datetime_parsing",
    )


def _check_due_year(year: int) -> None:
    if not MIN_DUE_YEAR <= year <= MAX_DUE_YEAR:
        raise _Invalid(
            f"must fall within the years {MIN_DUE_YEAR:04} to {MAX_DUE_YEAR}", "datetime_range"
        )
