"""Input rules for tasks, shared by both doors so GraphQL and REST reject the same things."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from db.tables import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from db.tasks import TaskFilter
from resolvers.errors import FieldError, InvalidInput

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


def _due_date(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and "\x00" not in value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Invalid(
                "must be an ISO 8601 date-time such as 2026-12-31T17:00:00Z", "datetime_parsing"
            ) from None
    else:
        raise _Invalid("must be an ISO 8601 date-time string or null", "datetime_type")
    # A date-time without an offset is taken to be UTC, the way most JSON APIs read it.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _Invalid("is out of range", "datetime_range") from None
