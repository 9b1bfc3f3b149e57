"""Every SQL statement on tasks; each one is scoped to a single owner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import due_date_key, tasks

UPDATABLE_COLUMNS = frozenset({"title", "description", "due_date", "completed"})


@dataclass(frozen=True, slots=True)
class Task:
    """A stored task as the domain sees it."""

    id: int
    title: str
    description: str
    completed: bool
    due_date: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


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
DEFAULT_ORDER = TaskOrder()

_COLUMNS = (
    tasks.c.id,
    tasks.c.title,
    tasks.c.description,
    tasks.c.completed,
    tasks.c.due_date,
    tasks.c.created_at,
    tasks.c.updated_at,
    tasks.c.version,
)


def _task(row: Row[Any, Any, Any, Any, Any, Any, Any, Any]) -> Task:
    return Task(*row)


def _owned(owner_id: str, task_id: int) -> Any:
    return (tasks.c.owner_id == owner_id) & (tasks.c.id == task_id)


def _bumped() -> dict[str, Any]:
    """Every change moves the version and the timestamp in the statement that makes it."""
    return {"version": tasks.c.version + 1, "updated_at": func.now()}


async def insert_task(
    conn: AsyncConnection,
    *,
    owner_id: str,
    title: str,
    description: str,
    due_date: datetime | None,
    completed: bool,
) -> Task:
    result = await conn.execute(
        insert(tasks)
        .values(
            owner_id=owner_id,
            title=title,
            description=description,
            due_date=due_date,
            completed=completed,
        )
        .returning(*_COLUMNS)
    )
    return _task(result.one())


async def select_task(conn: AsyncConnection, *, owner_id: str, task_id: int) -> Task | None:
    result = await conn.execute(select(*_COLUMNS).where(_owned(owner_id, task_id)))
    row = result.first()
    return None if row is None else _task(row)


async def select_tasks_by_id(
    conn: AsyncConnection, *, owner_id: str, task_ids: Sequence[int]
) -> list[Task]:
    """The owner's tasks among `task_ids`, in no particular order; others' ids match nothing."""
    result = await conn.execute(
        select(*_COLUMNS).where(tasks.c.owner_id == owner_id, tasks.c.id.in_(task_ids))
    )
    return [_task(row) for row in result]


async def select_tasks(
    conn: AsyncConnection,
    *,
    owner_id: str,
    filters: TaskFilter = NO_FILTER,
    order: TaskOrder = DEFAULT_ORDER,
    after: Position | None = None,
    backwards: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[Task]:
    """The owner's tasks matching `filters`, in `order` (reversed when walking `backwards`)."""
    query = task_list_query(
        owner_id=owner_id,
        filters=filters,
        order=order,
        after=after,
        backwards=backwards,
        limit=limit,
        offset=offset,
    )
    result = await conn.execute(query)
    return [_task(row) for row in result]


async def task_exists_from(
    conn: AsyncConnection,
    *,
    owner_id: str,
    filters: TaskFilter,
    order: TaskOrder,
    position: Position,
    backwards: bool,
) -> bool:
    """Whether a matching task sits at `position` or beyond it in the walking direction."""
    query = task_list_query(
        owner_id=owner_id,
        filters=filters,
        order=order,
        after=position,
        backwards=backwards,
        inclusive=True,
        limit=1,
    )
    result = await conn.execute(select(query.exists()))
    return bool(result.scalar_one())


async def count_tasks(
    conn: AsyncConnection, *, owner_id: str, filters: TaskFilter = NO_FILTER
) -> int:
    result = await conn.execute(
        select(func.count()).select_from(tasks).where(*_matching(owner_id, filters))
    )
    return int(result.scalar_one())


def task_list_query(
    *,
    owner_id: str,
    filters: TaskFilter = NO_FILTER,
    order: TaskOrder = DEFAULT_ORDER,
    after: Position | None = None,
    backwards: bool = False,
    inclusive: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> Select[Any]:
    """The one statement every task listing runs: filter, keyset, order, limit.

    `after` is a keyset position: only tasks past it in the walking direction are listed
    (and the task at it too when `inclusive`). Each order has an index (migration 0002).
    """
    walk_descending = order.descending != backwards
    key = _sort_key(order, tasks.c[order.field])
    query = select(*_COLUMNS).where(*_matching(owner_id, filters))
    if after is not None:
        mine = tuple_(key, tasks.c.id)
        value = literal(after.value, tasks.c[order.field].type)
        theirs = tuple_(_sort_key(order, value), literal(after.task_id, tasks.c.id.type))
        if walk_descending:
            query = query.where(mine <= theirs if inclusive else mine < theirs)
        else:
            query = query.where(mine >= theirs if inclusive else mine > theirs)
    if walk_descending:
        query = query.order_by(key.desc(), tasks.c.id.desc())
    else:
        query = query.order_by(key.asc(), tasks.c.id.asc())
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return query


def _sort_key(order: TaskOrder, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`value` (a column, or a cursor's value) as the sort key of `order`."""
    if order.field == "due_date":
        return due_date_key(value, descending=order.descending)
    return value


def _matching(owner_id: str, filters: TaskFilter) -> list[ColumnElement[bool]]:
    clauses = [tasks.c.owner_id == owner_id]
    if filters.completed is not None:
        clauses.append(tasks.c.completed == filters.completed)
    if filters.due_before is not None:
        clauses.append(tasks.c.due_date < filters.due_before)
    if filters.due_after is not None:
        clauses.append(tasks.c.due_date > filters.due_after)
    if filters.overdue is not None:
        # `due_date IS NOT NULL` first, so that an undated task is "not overdue", not unknown.
        overdue = tasks.c.due_date.is_not(None) & (tasks.c.due_date < func.now())
        overdue = overdue & ~tasks.c.completed
        clauses.append(overdue if filters.overdue else ~overdue)
    if filters.search:
        clauses.append(
            tasks.c.title.icontains(filters.search, autoescape=True)
            | tasks.c.description.icontains(filters.search, autoescape=True)
        )
    return clauses


async def update_task(
    conn: AsyncConnection,
    *,
    owner_id: str,
    task_id: int,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Task | None:
    """Apply `changes` atomically; None when no such task or the version did not match."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    query = update(tasks).where(_owned(owner_id, task_id))
    if expected_version is not None:
        query = query.where(tasks.c.version == expected_version)
    result = await conn.execute(query.values(**changes, **_bumped()).returning(*_COLUMNS))
    row = result.first()
    return None if row is None else _task(row)


async def toggle_task(
    conn: AsyncConnection,
    *,
    owner_id: str,
    task_id: int,
    expected_version: int | None = None,
) -> Task | None:
    """Flip completion in one statement, so concurrent toggles never lose one another."""
    query = update(tasks).where(_owned(owner_id, task_id))
    if expected_version is not None:
        query = query.where(tasks.c.version == expected_version)
    result = await conn.execute(
        query.values(completed=~tasks.c.completed, **_bumped()).returning(*_COLUMNS)
    )
    row = result.first()
    return None if row is None else _task(row)


async def delete_task(
    conn: AsyncConnection,
    *,
    owner_id: str,
    task_id: int,
    expected_version: int | None = None,
) -> bool:
    """True when the task was deleted by this statement."""
    query = delete(tasks).where(_owned(owner_id, task_id))
    if expected_version is not None:
        query = query.where(tasks.c.version == expected_version)
    result = await conn.execute(query.returning(tasks.c.id))
    return result.first() is not None
