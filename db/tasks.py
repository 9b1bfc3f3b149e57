"""Every SQL statement on tasks; each one is scoped to a single owner, whom it names first.

Row-level security (migration 0003) reads the owner from `app.user_id`, set with
`set_config(..., true)` in the transaction that reads the rows. Doing that as
`BEGIN; set_config; statement; COMMIT` cost three round trips and 30-45% of throughput, so
each statement here sets the owner itself, first, in one round trip (measured in
bench/README.md, "Row-level security in one round trip"):

- reads go through `as_viewer`: the query becomes a LATERAL subquery of a one-row
  `set_config` subquery, which PostgreSQL can only run once that row exists; `OFFSET 0` on
  both sides keeps the planner from flattening them into one join with its own order;
- writes call PL/pgSQL functions (migrations 0004, 0005), because nothing orders the scan of
  an UPDATE or DELETE after a subquery: a function runs `set_config`, then its statements.

If a PostgreSQL release ever planned these differently, a statement would see no task at
all rather than someone else's: tests/db/test_rls.py fails closed on exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, Literal, NamedTuple, Protocol, TypeAlias

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    bindparam,
    func,
    literal_column,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from db.statements import Connection, Statement, compiled
from db.tables import due_date_key, tasks

# The columns a client writes, in the order the write functions of migration 0004 take them.
_WRITABLE_COLUMNS = ("title", "description", "due_date", "completed")
UPDATABLE_COLUMNS = frozenset(_WRITABLE_COLUMNS)

SortField = Literal["created_at", "due_date", "title", "updated_at"]
# What reads and writes return (an asyncpg Record): a task's columns in _COLUMNS' order, from
# which resolvers.domain.Task is made in one call.
Row: TypeAlias = Sequence[Any]


class ListFilter(Protocol):
    """What a listing's filter says (resolvers.domain.TaskFilter is one); None: no condition."""

    @property
    def completed(self) -> bool | None: ...
    @property
    def due_before(self) -> datetime | None: ...
    @property
    def due_after(self) -> datetime | None: ...
    @property
    def overdue(self) -> bool | None: ...
    @property
    def search(self) -> str | None: ...


class ListOrder(Protocol):
    """A listing's sort field and direction (resolvers.domain.TaskOrder is one); hashable,
    as compiled statements are cached by it."""

    @property
    def field(self) -> SortField: ...
    @property
    def descending(self) -> bool: ...
    def __hash__(self) -> int: ...


class ListPosition(Protocol):
    """A place in a listing: the sort field's value, then the task id."""

    @property
    def value(self) -> Any: ...
    @property
    def task_id(self) -> int: ...


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
# Every statement names its owner through this parameter.
_OWNER = bindparam("owner_id", type_=tasks.c.owner_id.type)
_TASK_ID = bindparam("task_id", type_=tasks.c.id.type)
_VERSION = bindparam("expected_version", type_=tasks.c.version.type)

_NO_OFFSET: ColumnElement[Any] = literal_column("0")
# The viewer: a one-row subquery that sets the owner for row-level security and yields it.
# OFFSET 0 keeps PostgreSQL from merging it into the statement, which would copy set_config
# to wherever the owner is used instead of running it once, first.
_VIEWER = (
    select(func.set_config(literal_column("'app.user_id'"), _OWNER, true()).label("owner_id"))
    .offset(_NO_OFFSET)
    .subquery("viewer")
)
_VIEWER_OWNER = _VIEWER.c.owner_id


def as_viewer(query: Select[Any], *, offset: ColumnElement[Any] = _NO_OFFSET) -> Select[Any]:
    """`query`, run only once the viewer has set its owner.

    It becomes a LATERAL subquery that refers to the viewer row (by checking that the row
    names the owner, which it always does), so PostgreSQL can only run it with that row in
    hand, after set_config. Its OFFSET (0 unless paging by offset) keeps the planner from
    merging it into the join, where it could read tasks first. The rows keep the subquery's
    order: there is one viewer row, so nothing reorders them.
    """
    scoped = query.where(_VIEWER_OWNER == _OWNER).offset(offset).lateral("scoped")
    return select(*scoped.c).select_from(_VIEWER.join(scoped, true()))


def _written_values() -> list[ColumnElement[Any]]:
    """Parameters for the writable columns, named after them."""
    return [bindparam(name, type_=tasks.c[name].type) for name in _WRITABLE_COLUMNS]


_SELECT_ONE = compiled(
    as_viewer(select(*_COLUMNS).where(tasks.c.owner_id == _OWNER, tasks.c.id == _TASK_ID))
)
_SELECT_BY_ID = compiled(
    as_viewer(
        select(*_COLUMNS).where(
            tasks.c.owner_id == _OWNER,
            tasks.c.id == func.any(bindparam("task_ids", type_=ARRAY(BigInteger))),
        )
    )
)


async def select_task(conn: Connection, *, owner_id: str, task_id: int) -> Row | None:
    row: Row | None = await _SELECT_ONE.fetchrow(conn, owner_id=owner_id, task_id=task_id)
    return row


async def select_tasks_by_id(
    conn: Connection, *, owner_id: str, task_ids: Sequence[int]
) -> list[Row]:
    """The owner's tasks among `task_ids`, in no particular order; others' ids match nothing."""
    return await _SELECT_BY_ID.fetch(conn, owner_id=owner_id, task_ids=list(task_ids))


async def select_tasks(
    conn: Connection,
    *,
    owner_id: str,
    filters: ListFilter,
    order: ListOrder,
    after: ListPosition | None = None,
    backwards: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> list[Row]:
    """The owner's tasks matching `filters`, in `order` (reversed when walking `backwards`)."""
    sql, arguments = list_sql(
        owner_id=owner_id,
        filters=filters,
        order=order,
        after=after,
        backwards=backwards,
        limit=limit,
        offset=offset,
    )
    return list(await conn.fetch(sql, *arguments))


def list_sql(
    *,
    owner_id: str,
    filters: ListFilter,
    order: ListOrder,
    after: ListPosition | None = None,
    backwards: bool = False,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[str, list[Any]]:
    """The SQL and arguments select_tasks runs (EXPLAIN them to see a listing's plan)."""
    statement = _list_statement(
        _filter_shape(filters),
        order,
        keyset=after is not None,
        backwards=backwards,
        inclusive=False,
        limited=limit is not None,
        offset=bool(offset),
    )
    values = _list_values(owner_id, filters, after)
    return statement.sql, statement.arguments({**values, "limit": limit, "offset": offset})


async def task_exists_from(
    conn: Connection,
    *,
    owner_id: str,
    filters: ListFilter,
    order: ListOrder,
    position: ListPosition,
    backwards: bool,
) -> bool:
    """Whether a matching task sits at `position` or beyond it in the walking direction."""
    statement = _exists_statement(_filter_shape(filters), order, backwards=backwards)
    found = await statement.fetchval(conn, **_list_values(owner_id, filters, position))
    return found is not None


async def count_tasks(conn: Connection, *, owner_id: str, filters: ListFilter) -> int:
    statement = _count_statement(_filter_shape(filters))
    return int(await statement.fetchval(conn, **_list_values(owner_id, filters, None)))


# Which filters a listing uses: the statement's shape, each compiled once and cached.
_FilterShape = tuple[bool, bool, bool, bool | None, bool]


def _filter_shape(filters: ListFilter) -> _FilterShape:
    return (
        filters.completed is not None,
        filters.due_before is not None,
        filters.due_after is not None,
        filters.overdue,
        bool(filters.search),
    )


def _list_values(owner_id: str, filters: ListFilter, after: ListPosition | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "owner_id": owner_id,
        "completed": filters.completed,
        "due_before": filters.due_before,
        "due_after": filters.due_after,
    }
    if filters.search:
        values["pattern"] = "%" + _escape_like(filters.search) + "%"
    if after is not None:
        values["after_value"] = after.value
        values["after_id"] = after.task_id
    return values


def _escape_like(text: str) -> str:
    """The text matched literally by LIKE: its wildcards and the escape character escaped."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def task_list_query(
    filter_shape: _FilterShape,
    order: ListOrder,
    *,
    keyset: bool,
    backwards: bool,
    inclusive: bool,
    limited: bool,
) -> Select[Any]:
    """The one query every task listing runs: filter, keyset, order, limit.

    With `keyset`, only tasks past the position (after_value, after_id) in the walking
    direction are listed (and the task at it too when `inclusive`). Each order has an
    index (migration 0002).
    """
    walk_descending = order.descending != backwards
    column = tasks.c[order.field]
    key = _sort_key(order, column)
    query = select(*_COLUMNS).where(*_matching(filter_shape))
    if keyset:
        mine = tuple_(key, tasks.c.id)
        value = bindparam("after_value", type_=column.type)
        theirs = tuple_(_sort_key(order, value), bindparam("after_id", type_=tasks.c.id.type))
        if walk_descending:
            query = query.where(mine <= theirs if inclusive else mine < theirs)
        else:
            query = query.where(mine >= theirs if inclusive else mine > theirs)
    if walk_descending:
        query = query.order_by(key.desc(), tasks.c.id.desc())
    else:
        query = query.order_by(key.asc(), tasks.c.id.asc())
    if limited:
        query = query.limit(bindparam("limit", type_=BigInteger))
    return query


@cache
def _list_statement(
    filter_shape: _FilterShape,
    order: ListOrder,
    *,
    keyset: bool,
    backwards: bool,
    inclusive: bool,
    limited: bool,
    offset: bool,
) -> Statement:
    query = task_list_query(
        filter_shape,
        order,
        keyset=keyset,
        backwards=backwards,
        inclusive=inclusive,
        limited=limited,
    )
    skipped = bindparam("offset", type_=BigInteger) if offset else _NO_OFFSET
    return compiled(as_viewer(query, offset=skipped))


@cache
def _exists_statement(
    filter_shape: _FilterShape, order: ListOrder, *, backwards: bool
) -> Statement:
    query = task_list_query(
        filter_shape,
        order,
        keyset=True,
        backwards=backwards,
        inclusive=True,
        limited=False,
    )
    # The first such task's id, or no row at all.
    return compiled(as_viewer(query.with_only_columns(tasks.c.id).limit(1)))


@cache
def _count_statement(filter_shape: _FilterShape) -> Statement:
    query = select(func.count().label("count")).select_from(tasks).where(*_matching(filter_shape))
    return compiled(as_viewer(query))


def _is_overdue() -> ColumnElement[bool]:
    """Due in the past and not completed; `due_date IS NOT NULL` first, so that an undated
    task is "not overdue", not unknown."""
    return tasks.c.due_date.is_not(None) & (tasks.c.due_date < func.now()) & ~tasks.c.completed


class StateCounts(NamedTuple):
    """How many of the matching tasks there are in all, and in each state."""

    all: int
    active: int
    completed: int
    overdue: int


async def count_tasks_by_state(
    conn: Connection, *, owner_id: str, filters: ListFilter
) -> StateCounts:
    """Every count in one statement: one scan of the owner's matching tasks."""
    statement = _state_counts_statement(_filter_shape(filters))
    row = await statement.fetchrow(conn, **_list_values(owner_id, filters, None))
    return StateCounts(*row)


@cache
def _state_counts_statement(filter_shape: _FilterShape) -> Statement:
    completed = tasks.c.completed
    counts: list[ColumnElement[Any]] = [
        func.count().label("all"),
        func.count().filter(~completed).label("active"),
        func.count().filter(completed).label("completed"),
        func.count().filter(_is_overdue()).label("overdue"),
    ]
    query = select(*counts).select_from(tasks).where(*_matching(filter_shape))
    return compiled(as_viewer(query))


def _sort_key(order: ListOrder, value: ColumnElement[Any]) -> ColumnElement[Any]:
    """`value` (a column, or a cursor's value) as the sort key of `order`."""
    if order.field == "due_date":
        return due_date_key(value, descending=order.descending)
    return value


def _matching(filter_shape: _FilterShape) -> list[ColumnElement[bool]]:
    completed, due_before, due_after, overdue, search = filter_shape
    clauses = [tasks.c.owner_id == _OWNER]
    if completed:
        clauses.append(tasks.c.completed == bindparam("completed", type_=tasks.c.completed.type))
    if due_before:
        clauses.append(tasks.c.due_date < bindparam("due_before", type_=tasks.c.due_date.type))
    if due_after:
        clauses.append(tasks.c.due_date > bindparam("due_after", type_=tasks.c.due_date.type))
    if overdue is not None:
        clauses.append(_is_overdue() if overdue else ~_is_overdue())
    if search:
        pattern = bindparam("pattern", type_=tasks.c.title.type)
        clauses.append(
            tasks.c.title.ilike(pattern, escape="/")
            | tasks.c.description.ilike(pattern, escape="/")
        )
    return clauses


# The writes: functions of migration 0005. Each sets the owner first, claims the request's
# idempotency key when it has one, changes the task, records the event in the owner's stream
# and keeps the outcome with the key: one statement, one round trip, its own transaction.
# Why functions: PostgreSQL orders nothing between the parts of one UPDATE or DELETE, so
# the planner could scan `tasks` before set_config ran (see migration 0004).


class WriteOutcome(NamedTuple):
    """What a write function did: the task's row (id and version only, for a deletion), or
    a replay of what an earlier request with the same key did, or nothing (key_reused)."""

    task: Row | None
    replayed: bool
    # The key was used before with another request; nothing was written.
    key_reused: bool


def _write(function: Any) -> Statement:
    """SELECT the outcome columns of a write function: replayed, key_reused, then the task."""
    rows = function.table_valued("replayed", "key_reused", *(column.name for column in _COLUMNS))
    return compiled(select(*rows.c))


_KEY = (
    bindparam("idempotency_key", type_=tasks.c.title.type),
    bindparam("fingerprint", type_=tasks.c.title.type),
)
_CREATE = _write(func.taskql_create_task(_OWNER, *_written_values(), *_KEY))
_UPDATE = _write(
    func.taskql_update_task(
        _OWNER,
        _TASK_ID,
        _VERSION,
        bindparam("changed", type_=ARRAY(tasks.c.title.type)),
        *_written_values(),
        *_KEY,
    )
)
_TOGGLE = _write(func.taskql_toggle_task(_OWNER, _TASK_ID, _VERSION, *_KEY))
_DELETE = _write(func.taskql_delete_task(_OWNER, _TASK_ID, _VERSION, *_KEY))


def _outcome(row: Row | None) -> WriteOutcome | None:
    if row is None:
        return None
    return WriteOutcome(task=None if row[1] else row[2:], replayed=row[0], key_reused=row[1])


class Idempotency(Protocol):
    """A write's idempotency key and the fingerprint of the request that carried it
    (resolvers.domain.IdempotencyKey is one)."""

    @property
    def key(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...


def _key_values(idempotency: Idempotency | None) -> dict[str, str | None]:
    if idempotency is None:
        return {"idempotency_key": None, "fingerprint": None}
    return {"idempotency_key": idempotency.key, "fingerprint": idempotency.fingerprint}


async def insert_task(
    conn: Connection,
    *,
    owner_id: str,
    title: str,
    description: str,
    due_date: datetime | None,
    completed: bool,
    idempotency: Idempotency | None = None,
) -> WriteOutcome:
    row = await _CREATE.fetchrow(
        conn,
        owner_id=owner_id,
        title=title,
        description=description,
        due_date=due_date,
        completed=completed,
        **_key_values(idempotency),
    )
    outcome = _outcome(row)
    assert outcome is not None  # a create always writes, or replays
    return outcome


async def update_task(
    conn: Connection,
    *,
    owner_id: str,
    task_id: int,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
    idempotency: Idempotency | None = None,
) -> WriteOutcome | None:
    """Apply `changes` atomically; None when no such task or the version did not match."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    row = await _UPDATE.fetchrow(
        conn,
        owner_id=owner_id,
        task_id=task_id,
        expected_version=expected_version,
        changed=sorted(changes),
        **{name: changes.get(name) for name in _WRITABLE_COLUMNS},
        **_key_values(idempotency),
    )
    return _outcome(row)


async def toggle_task(
    conn: Connection,
    *,
    owner_id: str,
    task_id: int,
    expected_version: int | None = None,
    idempotency: Idempotency | None = None,
) -> WriteOutcome | None:
    """Flip completion in one statement, so concurrent toggles never lose one another."""
    row = await _TOGGLE.fetchrow(
        conn,
        owner_id=owner_id,
        task_id=task_id,
        expected_version=expected_version,
        **_key_values(idempotency),
    )
    return _outcome(row)


async def delete_task(
    conn: Connection,
    *,
    owner_id: str,
    task_id: int,
    expected_version: int | None = None,
    idempotency: Idempotency | None = None,
) -> WriteOutcome | None:
    """Delete the task; None when no such task or the version did not match."""
    row = await _DELETE.fetchrow(
        conn,
        owner_id=owner_id,
        task_id=task_id,
        expected_version=expected_version,
        **_key_values(idempotency),
    )
    return _outcome(row)


# Bulk writes: the functions of migration 0007, given the ids that the statement itself selects
# with the listing's filter. The selection locks the tasks (FOR UPDATE, in id order, so two bulk
# writes never deadlock; single writes lock one task, then the owner's stream row, as the bulk
# function does after them) and reads at most one more than the maximum, which the function
# then refuses whole. A task that changed while the selection waited for its lock is checked
# against the filter again (PostgreSQL re-evaluates a locked row's conditions), so what is
# written is what matches when the write happens.


class BulkOutcome(NamedTuple):
    """What a bulk write did: the changed tasks in id order (id and version alone for a
    deletion), or nothing, when more tasks than the maximum matched (`too_many`)."""

    tasks: list[Row]
    too_many: bool


def _selected_ids(filter_shape: _FilterShape, *, completion_changes: bool) -> ColumnElement[Any]:
    """The ids of the owner's tasks matching the filter, locked: an array subquery."""
    query = select(tasks.c.id).where(*_matching(filter_shape))
    if completion_changes:
        query = query.where(tasks.c.completed.is_distinct_from(_NEW_COMPLETED))
    query = (
        query.order_by(tasks.c.id)
        .limit(bindparam("selected_limit", type_=BigInteger))
        .with_for_update(of=tasks)
    )
    return func.array(as_viewer(query).scalar_subquery())


_NEW_COMPLETED = bindparam("new_completed", type_=tasks.c.completed.type)
_MAX_TASKS = bindparam("max_tasks", type_=tasks.c.version.type)


def _bulk(function: Any) -> Statement:
    rows = function.table_valued("too_many", *(column.name for column in _COLUMNS))
    return compiled(select(*rows.c).order_by(rows.c.id))


@cache
def _set_completion_statement(filter_shape: _FilterShape) -> Statement:
    selected = _selected_ids(filter_shape, completion_changes=True)
    return _bulk(func.taskql_set_tasks_completion(_OWNER, _NEW_COMPLETED, selected, _MAX_TASKS))


@cache
def _delete_statement(filter_shape: _FilterShape) -> Statement:
    selected = _selected_ids(filter_shape, completion_changes=False)
    return _bulk(func.taskql_delete_tasks(_OWNER, selected, _MAX_TASKS))


async def set_tasks_completion(
    conn: Connection, *, owner_id: str, filters: ListFilter, completed: bool, max_tasks: int
) -> BulkOutcome:
    """Set completion on every matching task whose completion differs, all or none."""
    statement = _set_completion_statement(_filter_shape(filters))
    rows = await statement.fetch(
        conn, new_completed=completed, **_bulk_values(owner_id, filters, max_tasks)
    )
    return _bulk_outcome(rows)


async def delete_tasks(
    conn: Connection, *, owner_id: str, filters: ListFilter, max_tasks: int
) -> BulkOutcome:
    """Delete every matching task, all or none."""
    statement = _delete_statement(_filter_shape(filters))
    rows = await statement.fetch(conn, **_bulk_values(owner_id, filters, max_tasks))
    return _bulk_outcome(rows)


def _bulk_values(owner_id: str, filters: ListFilter, max_tasks: int) -> dict[str, Any]:
    # One more than the maximum is enough to know that there are too many.
    values = _list_values(owner_id, filters, None)
    return {**values, "selected_limit": max_tasks + 1, "max_tasks": max_tasks}


def _bulk_outcome(rows: list[Row]) -> BulkOutcome:
    if rows and rows[0][0]:
        return BulkOutcome(tasks=[], too_many=True)
    return BulkOutcome(tasks=[row[1:] for row in rows], too_many=False)
