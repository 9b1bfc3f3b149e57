"""Slices of a task listing: page sizes, Relay-style arguments and opaque keyset cursors."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from resolvers.domain import Position, Task, TaskFilter, TaskOrder
from resolvers.errors import FieldError, InvalidInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Which slice of a listing to return; the default is every matching task."""

    limit: int | None = None
    offset: int = 0
    # Start past this task (exclusive), walking from the end when `backwards`.
    cursor: Position | None = None
    backwards: bool = False


EVERYTHING = PageRequest()


@dataclass(frozen=True, slots=True)
class TaskPage:
    """Tasks in listing order, and what it takes to tell whether more lie either side."""

    tasks: list[Task]
    # More matching tasks lie beyond this page in the walking direction.
    has_more: bool
    filters: TaskFilter
    order: TaskOrder
    request: PageRequest


def cursor_page(
    *,
    order: TaskOrder,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
) -> PageRequest:
    """The page that Relay's first/after (forwards) or last/before (backwards) ask for."""
    backwards = last is not None or before is not None
    if backwards and (first is not None or after is not None):
        raise _invalid("last", "Use first/after or last/before, not both", "pagination")
    if backwards:
        return PageRequest(
            limit=_page_size("last", last),
            cursor=None if before is None else decode_cursor(before, order=order, name="before"),
            backwards=True,
        )
    return PageRequest(
        limit=_page_size("first", first),
        cursor=None if after is None else decode_cursor(after, order=order, name="after"),
    )


def _page_size(name: str, size: int | None) -> int:
    if size is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= size <= MAX_PAGE_SIZE:
        raise _invalid(name, f"{name} must be between 0 and {MAX_PAGE_SIZE}", "range")
    return size


def encode_cursor(task: Task, order: TaskOrder) -> str:
    """The task's keyset position in `order` (sort field, its value, id), opaque to clients."""
    value = getattr(task, order.field)
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = orjson.dumps([order.field, value, task.id])
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str, *, order: TaskOrder, name: str) -> Position:
    """The position a cursor names; it must come from a listing sorted by the same field."""
    try:
        field, value, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        if field != order.field or type(task_id) is not int:
            raise ValueError(field)
        return Position(value=_sort_value(field, value), task_id=task_id)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        raise _invalid(name, f"{name} is not a cursor of this listing's order", "cursor") from None


def _sort_value(field: str, value: Any) -> Any:
    if field == "title":
        if not isinstance(value, str):
            raise TypeError(value)
        return value
    if value is None and field == "due_date":
        return None
    return datetime.fromisoformat(value)


def _invalid(name: str, message: str, kind: str) -> InvalidInput:
    return InvalidInput([FieldError(name, message, kind, location="query")])
