"""One function per task operation, shared by the GraphQL and REST doors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

from sqlalchemy.ext.asyncio import AsyncConnection

from db import tasks as task_queries
from db.tasks import Task
from resolvers.context import Context
from resolvers.errors import TaskNotFound, VersionConflict
from resolvers.pagination import TaskPage, decode_cursor, page_size
from resolvers.validation import validate_new_task, validate_task_changes

# PostgreSQL bigint: an id outside it cannot name a task, and would not encode.
_MAX_TASK_ID = 2**63 - 1


def _checked_id(task_id: int) -> int:
    if not 1 <= task_id <= _MAX_TASK_ID:
        raise TaskNotFound(task_id)
    return task_id


# PostgreSQL integer, the type of `version`: a REST If-Match can name any number.
_VERSION_RANGE = range(-(2**31), 2**31)


def _never_matches(expected_version: int | None) -> bool:
    """True for a version no task can have; it would not even encode as a query parameter."""
    return expected_version is not None and expected_version not in _VERSION_RANGE


async def create_task(ctx: Context, *, data: Mapping[str, Any]) -> Task:
    """Create a task for the viewer from untrusted input."""
    owner_id = ctx.viewer.user_id
    new = validate_new_task(data)
    async with ctx.connection() as conn:
        return await task_queries.insert_task(
            conn,
            owner_id=owner_id,
            title=new.title,
            description=new.description,
            due_date=new.due_date,
            completed=new.completed,
        )


async def list_tasks(ctx: Context) -> list[Task]:
    """All of the viewer's tasks, oldest first."""
    owner_id = ctx.viewer.user_id
    async with ctx.connection() as conn:
        return await task_queries.select_tasks(conn, owner_id=owner_id)


async def list_tasks_page(ctx: Context, *, first: int | None, after: str | None) -> TaskPage:
    """One page of the viewer's tasks after an opaque cursor, oldest first."""
    owner_id = ctx.viewer.user_id
    limit = page_size(first)
    position = decode_cursor(after) if after is not None else None
    async with ctx.connection() as conn:
        # One extra row tells whether another page follows without a second query.
        rows = await task_queries.select_tasks(
            conn, owner_id=owner_id, limit=limit + 1, after=position
        )
    return TaskPage(tasks=rows[:limit], has_next_page=len(rows) > limit, has_previous_page=False)


async def count_tasks(ctx: Context) -> int:
    """How many tasks the viewer has."""
    owner_id = ctx.viewer.user_id
    async with ctx.connection() as conn:
        return await task_queries.count_tasks(conn, owner_id=owner_id)


async def get_task(ctx: Context, *, task_id: int) -> Task:
    """The viewer's task with this id."""
    task: Task | None = await ctx.task_loader.load(_checked_id(task_id))
    if task is None:
        raise TaskNotFound(task_id)
    return task


async def update_task(
    ctx: Context,
    *,
    task_id: int,
    data: Mapping[str, Any],
    expected_version: int | None = None,
) -> Task:
    """Set the fields present in `data`; absent fields keep their value."""
    owner_id = ctx.viewer.user_id
    changes = validate_task_changes(data)
    task_id = _checked_id(task_id)
    async with ctx.connection() as conn:
        if not changes:
            task = await task_queries.select_task(conn, owner_id=owner_id, task_id=task_id)
            if task is None:
                raise TaskNotFound(task_id)
            _check_version(task, expected_version)
            return task
        if _never_matches(expected_version):
            await _explain_miss(conn, owner_id, task_id, expected_version)
        updated = await task_queries.update_task(
            conn,
            owner_id=owner_id,
            task_id=task_id,
            changes=changes,
            expected_version=expected_version,
        )
        if updated is None:
            await _explain_miss(conn, owner_id, task_id, expected_version)
        return updated


async def toggle_task(ctx: Context, *, task_id: int, expected_version: int | None = None) -> Task:
    """Flip the viewer's task between done and not done."""
    owner_id = ctx.viewer.user_id
    task_id = _checked_id(task_id)
    async with ctx.connection() as conn:
        if _never_matches(expected_version):
            await _explain_miss(conn, owner_id, task_id, expected_version)
        toggled = await task_queries.toggle_task(
            conn, owner_id=owner_id, task_id=task_id, expected_version=expected_version
        )
        if toggled is None:
            await _explain_miss(conn, owner_id, task_id, expected_version)
        return toggled


async def delete_task(ctx: Context, *, task_id: int, expected_version: int | None = None) -> None:
    """Delete the viewer's task."""
    owner_id = ctx.viewer.user_id
    task_id = _checked_id(task_id)
    async with ctx.connection() as conn:
        if _never_matches(expected_version):
            await _explain_miss(conn, owner_id, task_id, expected_version)
        deleted = await task_queries.delete_task(
            conn, owner_id=owner_id, task_id=task_id, expected_version=expected_version
        )
        if not deleted:
            await _explain_miss(conn, owner_id, task_id, expected_version)


def _check_version(task: Task, expected_version: int | None) -> None:
    if expected_version is not None and task.version != expected_version:
        raise VersionConflict(expected=expected_version, task=task)


async def _explain_miss(
    conn: AsyncConnection, owner_id: str, task_id: int, expected_version: int | None
) -> NoReturn:
    """A write matched no row: say whether the task is missing or has moved on.

    This read only explains the failure; the write itself was already atomic.
    """
    if expected_version is not None:
        current = await task_queries.select_task(conn, owner_id=owner_id, task_id=task_id)
        if current is not None:
            raise VersionConflict(expected=expected_version, task=current)
    raise TaskNotFound(task_id)
