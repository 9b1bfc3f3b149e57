"""Pages of tasks and the opaque cursors that point into them."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import orjson

from db.tasks import Task
from resolvers.errors import FieldError, InvalidInput

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    has_next_page: bool
    has_previous_page: bool


def page_size(first: int | None) -> int:
    if first is None:
        return DEFAULT_PAGE_SIZE
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise InvalidInput(
            [FieldError("first", f"first must be between 0 and {MAX_PAGE_SIZE}", "range")]
        )
    return first


def encode_cursor(task: Task) -> str:
    """The keyset position (created_at, id) of a task, opaque to clients."""
    raw = orjson.dumps([task.created_at.isoformat(), task.id])
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        created_at, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode("ascii")))
        return datetime.fromisoformat(created_at), int(task_id)
    except (ValueError, TypeError, binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError):
        raise InvalidInput([FieldError("after", "after is not a valid cursor", "cursor")]) from None
