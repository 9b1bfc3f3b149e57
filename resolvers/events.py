"""Task events as both doors serve them: what happened, the task as it is now, and a cursor."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from db.tasks import Row
from resolvers.domain import Task, task_from_row
from resolvers.errors import FieldError, InvalidInput

EventKind = Literal["created", "updated", "completion_toggled", "deleted", "resync"]
# A cursor is an event's position in its owner's stream, in decimal (a bigint: 19 digits at
# most); one past the stream's head gets a resync.
CURSOR_PATTERN = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One change to one of the viewer's tasks, or a resync.

    A resync says that events after the client's cursor are no longer kept (or that the
    cursor is not from this stream): the client refetches its tasks, then continues from
    this event's cursor. It carries no task.
    """

    kind: EventKind
    position: int
    task_id: int | None
    # The task as this change left it; None for a deletion and a resync.
    task: Task | None
    version: int | None
    recorded_at: datetime | None

    @property
    def cursor(self) -> str:
        """What a client sends back (`after`, Last-Event-ID) to resume after this event."""
        return str(self.position)


def event_from_row(row: Row) -> TaskEvent:
    """An event of db.events: position, kind, the task's columns, recorded_at."""
    kind: Any = row[1]
    task = None if kind == "deleted" else task_from_row(row[2:10])
    return TaskEvent(kind, row[0], row[2], task, row[9], row[10])


def resync_event(position: int) -> TaskEvent:
    return TaskEvent("resync", position, None, None, None, None)


def parse_cursor(cursor: str | None, *, field: str, location: str = "query") -> int | None:
    """The position a client's cursor names; None when it sent none (live events only)."""
    if cursor is None:
        return None
    if CURSOR_PATTERN.fullmatch(cursor) is None:
        message = "A cursor is the `cursor` (SSE `id`) of an event of this stream, or 0"
        raise InvalidInput([FieldError(field, message, "cursor_format", location)])
    return int(cursor)
