"""One function per task operation, shared by the GraphQL and REST doors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NoReturn

from db import tasks as task_queries
from db.statements import Connection
from db.tasks import BulkOutcome, Row, WriteOutcome
from resolvers.context import Context
from resolvers.domain import (
    DEFAULT_ORDER,
    NO_FILTER,
    IdempotencyKey,
    Task,
    TaskCounts,
    TaskFilter,
    TaskOrder,
    task_from_row,
)
from resolvers.errors import IdempotencyKeyReused, TaskNotFound, TooManyTasks, VersionConflict
from resolvers.pagination import EVERYTHING, PageRequest, TaskPage
from resolvers.validation import (
    validate_bulk_filter,
    validate_new_task,
    validate_task_changes,
)

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


async def create_task(
    ctx: Context, *, data: Mapping[str, Any], idempotency: IdempotencyKey | None = None
) -> Task:
    """Create a task for the viewer from untrusted input."""
    owner_id = ctx.viewer.user_id
    new = validate_new_task(data)
    async with ctx.connection() as conn:
        outcome = await task_queries.insert_task(
            conn,
            owner_id=owner_id,
            title=new.title,
            description=new.description,
            due_date=new.due_date,
            completed=new.completed,
            idempotency=idempotency,
        )
    return task_from_row(_written(ctx, outcome, owner_id))


async def list_tasks(
    ctx: Context,
    *,
    filters: TaskFilter = NO_FILTER,
    order: TaskOrder = DEFAULT_ORDER,
    page: PageRequest = EVERYTHING,
) -> TaskPage:
    """The viewer's tasks that match `filters`, in `order`, sliced as `page` asks."""
    owner_id = ctx.viewer.user_id
    # One extra row tells whether more tasks follow, without a second query.
    limit = None if page.limit is None else page.limit + 1
    async with ctx.connection() as conn:
        rows = await task_queries.select_tasks(
            conn,
            owner_id=owner_id,
            filters=filters,
            order=order,
            after=page.cursor,
            backwards=page.backwards,
            limit=limit,
            offset=page.offset,
        )
    tasks = list(map(task_from_row, rows))
    has_more = page.limit is not None and len(tasks) > page.limit
    if has_more:
        del tasks[page.limit :]
    if page.backwards:
        tasks.reverse()
    return TaskPage(tasks=tasks, has_more=has_more, filters=filters, order=order, request=page)


async def page_has_next(ctx: Context, *, page: TaskPage) -> bool:
    """Whether matching tasks follow the page in listing order."""
    return await _tasks_behind(ctx, page) if page.request.backwards else page.has_more


async def page_has_previous(ctx: Context, *, page: TaskPage) -> bool:
    """Whether matching tasks precede the page in listing order."""
    return page.has_more if page.request.backwards else await _tasks_behind(ctx, page)


async def _tasks_behind(ctx: Context, page: TaskPage) -> bool:
    """Whether tasks lie behind the page's cursor, the way the page did not walk.

    Only asked for when a client selects it, since it costs a query; the cursor's own
    task counts, as it is not on the page.
    """
    cursor = page.request.cursor
    if cursor is None:
        return False
    owner_id = ctx.viewer.user_id
    async with ctx.connection() as conn:
        return await task_queries.task_exists_from(
            conn,
            owner_id=owner_id,
            filters=page.filters,
            order=page.order,
            position=cursor,
            backwards=not page.request.backwards,
        )


async def count_tasks(ctx: Context, *, filters: TaskFilter = NO_FILTER) -> int:
    """How many of the viewer's tasks match `filters`."""
    owner_id = ctx.viewer.user_id
    async with ctx.connection() as conn:
        return await task_queries.count_tasks(conn, owner_id=owner_id, filters=filters)


async def count_tasks_by_state(ctx: Context, *, filters: TaskFilter = NO_FILTER) -> TaskCounts:
    """How many of the viewer's tasks match `filters`, in all and in each state."""
    owner_id = ctx.viewer.user_id
    async with ctx.connection() as conn:
        counts = await task_queries.count_tasks_by_state(conn, owner_id=owner_id, filters=filters)
    return TaskCounts(*counts)


async def set_tasks_completion(
    ctx: Context, *, filters: TaskFilter | None, all_tasks: bool = False, completed: bool
) -> list[Task]:
    """Set completion on every one of the viewer's tasks that matches, atomically; the tasks
    that changed, by id (those already in that state are left alone)."""

    async def change(
        conn: Connection, owner_id: str, selected: TaskFilter, max_tasks: int
    ) -> BulkOutcome:
        return await task_queries.set_tasks_completion(
            conn, owner_id=owner_id, filters=selected, completed=completed, max_tasks=max_tasks
        )

    return list(map(task_from_row, await _bulk(ctx, filters, all_tasks, change)))


async def delete_tasks(
    ctx: Context, *, filters: TaskFilter | None, all_tasks: bool = False
) -> list[int]:
    """Delete every one of the viewer's tasks that matches, atomically; their ids, in order."""

    async def change(
        conn: Connection, owner_id: str, selected: TaskFilter, max_tasks: int
    ) -> BulkOutcome:
        return await task_queries.delete_tasks(
            conn, owner_id=owner_id, filters=selected, max_tasks=max_tasks
        )

    return [row[0] for row in await _bulk(ctx, filters, all_tasks, change)]


async def _bulk(
    ctx: Context,
    filters: TaskFilter | None,
    all_tasks: bool,
    change: Callable[[Connection, str, TaskFilter, int], Awaitable[BulkOutcome]],
) -> list[Row]:
    """Run one bulk change on the tasks the request names; refuse it whole past the maximum."""
    owner_id = ctx.viewer.user_id
    selected = validate_bulk_filter(filters, all_tasks=all_tasks)
    async with ctx.connection() as conn:
        outcome = await change(conn, owner_id, selected, ctx.bulk_max_tasks)
    if outcome.too_many:
        raise TooManyTasks(ctx.bulk_max_tasks)
    if outcome.tasks and ctx.hub is not None:
        # Committed, with one event per changed task: live streams are woken to read them.
        ctx.hub.changed(owner_id)
    return outcome.tasks


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
    idempotency: IdempotencyKey | None = None,
) -> Task:
    """Set the fields present in `data`; absent fields keep their value."""
    changes = validate_task_changes(data)
    if not changes:
        # Nothing to write: the task as it is, under the same rules as a write. Nothing is
        # stored with a key either, so a retry reads the task again (never a replay).
        ctx.replayed = False
        task = await get_task(ctx, task_id=task_id)
        _check_version(task, expected_version)
        return task

    async def update(conn: Connection, owner_id: str, checked_id: int) -> WriteOutcome | None:
        return await task_queries.update_task(
            conn,
            owner_id=owner_id,
            task_id=checked_id,
            changes=changes,
            expected_version=expected_version,
            idempotency=idempotency,
        )

    return task_from_row(await _write(ctx, task_id, expected_version, update))


async def toggle_task(
    ctx: Context,
    *,
    task_id: int,
    expected_version: int | None = None,
    idempotency: IdempotencyKey | None = None,
) -> Task:
    """Flip the viewer's task between done and not done."""

    async def toggle(conn: Connection, owner_id: str, checked_id: int) -> WriteOutcome | None:
        return await task_queries.toggle_task(
            conn,
            owner_id=owner_id,
            task_id=checked_id,
            expected_version=expected_version,
            idempotency=idempotency,
        )

    return task_from_row(await _write(ctx, task_id, expected_version, toggle))


async def delete_task(
    ctx: Context,
    *,
    task_id: int,
    expected_version: int | None = None,
    idempotency: IdempotencyKey | None = None,
) -> None:
    """Delete the viewer's task."""

    async def delete(conn: Connection, owner_id: str, checked_id: int) -> WriteOutcome | None:
        return await task_queries.delete_task(
            conn,
            owner_id=owner_id,
            task_id=checked_id,
            expected_version=expected_version,
            idempotency=idempotency,
        )

    await _write(ctx, task_id, expected_version, delete)


async def _write(
    ctx: Context,
    task_id: int,
    expected_version: int | None,
    write: Callable[[Connection, str, int], Awaitable[WriteOutcome | None]],
) -> Row:
    """Run one atomic conditional write on the viewer's task; explain it if it matched nothing.

    The row is the task as written (its id and version alone, for a deletion).
    """
    owner_id = ctx.viewer.user_id
    checked_id = _checked_id(task_id)
    async with ctx.connection() as conn:
        if _never_matches(expected_version):
            await _explain_miss(conn, owner_id, checked_id, expected_version)
        outcome = await write(conn, owner_id, checked_id)
        if outcome is None:
            await _explain_miss(conn, owner_id, checked_id, expected_version)
    return _written(ctx, outcome, owner_id)


def _written(ctx: Context, outcome: WriteOutcome, owner_id: str) -> Row:
    """The written (or replayed) task's row; a key used before for another request is refused.

    Called once the write committed: its event is in the owner's stream, and live streams
    are woken to read it (a replay recorded nothing new).
    """
    if outcome.key_reused:
        raise IdempotencyKeyReused()
    assert outcome.task is not None
    ctx.replayed = outcome.replayed
    if ctx.hub is not None and not outcome.replayed:
        ctx.hub.changed(owner_id)
    return outcome.task


def _check_version(task: Task, expected_version: int | None) -> None:
    if expected_version is not None and task.version != expected_version:
        raise VersionConflict(expected=expected_version, task=task)


async def _explain_miss(
    conn: Connection, owner_id: str, task_id: int, expected_version: int | None
) -> NoReturn:
    """A write matched no row: say whether the task is missing or has moved on.

    This read only explains the failure; the write itself was already atomic.
    """
    if expected_version is not None:
        current = await task_queries.select_task(conn, owner_id=owner_id, task_id=task_id)
        if current is not None:
            raise VersionConflict(expected=expected_version, task=task_from_row(current))
    raise TaskNotFound(task_id)
