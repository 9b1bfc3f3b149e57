"""Every SQL statement on tasks; each one is scoped to a single owner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from db.tables import tasks

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
    limit: int | None = None,
    after: tuple[datetime, int] | None = None,
) -> list[Task]:
    """The owner's tasks oldest first, optionally after a (created_at, id) keyset position."""
    query = select(*_COLUMNS).where(tasks.c.owner_id == owner_id)
    if after is not None:
        query = query.where(tuple_(tasks.c.created_at, tasks.c.id) > tuple_(*after))
    query = query.order_by(tasks.c.created_at, tasks.c.id)
    if limit is not None:
        query = query.limit(limit)
    result = await conn.execute(query)
    return [_task(row) for row in result]


async def count_tasks(conn: AsyncConnection, *, owner_id: str) -> int:
    result = await conn.execute(
        select(func.count()).select_from(tasks).where(tasks.c.owner_id == owner_id)
    )
    return int(result.scalar_one())


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
