"""The domain's types: a task, and how to choose and order a listing of them.

Both doors see tasks only through these types. The storage layer (`db.tasks`) builds its
statements from any object with these attributes and returns plain rows, which become
`Task`s here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple


class Task(NamedTuple):
    """A stored task as the domain sees it.

    A named tuple rather than a frozen dataclass: made from a row in one C call
    (`Task._make`), where a frozen dataclass sets each field through object.__setattr__
    (a list of 20 tasks took about 4% of a worker's time that way).
    """

    id: int
    title: str
    description: str
    completed: bool
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


# A row of `db.tasks` (its columns are in Task's field order) as a Task.
task_from_row = Task._make

SortField = Literal["created_at", "due_date", "title", "updated_at"]


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which of the owner's tasks to list; every condition given must hold."""

    completed: bool | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None
    # Due in the past and not completed.
    overdue: bool | None = None
    # Case-insensitive substring of the title or the description; wildcards are literal.
    search: str | None = None


@dataclass(frozen=True, slots=True)
class TaskOrder:
    """A sort field and direction; the id breaks ties, undated tasks come last either way."""

    field: SortField = "created_at"
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Position:
    """A task's place in an order: its value of the sort field, then its id."""

    value: Any
    task_id: int


NO_FILTER = TaskFilter()


class TaskCounts(NamedTuple):
    """How many tasks there are in all and in each state (overdue ones are also active)."""

    all: int
    active: int
    completed: int
    overdue: int


DEFAULT_ORDER = TaskOrder()


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A write's Idempotency-Key, scoped to its user, and the fingerprint of the request that
    carried it: a retry with the same key and fingerprint replays the first one's outcome."""

    key: str
    fingerprint: str
