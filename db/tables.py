"""The tables as SQLAlchemy Core metadata; migrations are the source of truth for DDL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Double,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    literal_column,
    text,
)

metadata = MetaData()

tasks = Table(
    "tasks",
    metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    # The auth service owns users; we keep only its opaque user id (the JWT's `sub`).
    Column("owner_id", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, server_default=text("''")),
    Column("completed", Boolean, nullable=False, server_default=text("false")),
    Column("due_date", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Index("tasks_owner_created_idx", "owner_id", "created_at", "id"),
)

_INFINITY: ColumnElement[Any] = literal_column("'infinity'::timestamptz")
_MINUS_INFINITY: ColumnElement[Any] = literal_column("'-infinity'::timestamptz")


def due_date_key(due_date: ColumnElement[Any], *, descending: bool) -> ColumnElement[Any]:
    """The due date as a sort key that puts tasks without one last in either direction.

    Mapping NULL to +/-infinity gives each direction a total order that one index serves
    and one row comparison pages through; migration 0002 indexes exactly these expressions.
    """
    return func.coalesce(due_date, _MINUS_INFINITY if descending else _INFINITY)


# One index per supported order of one owner's tasks (migration 0002); descending orders
# scan them backwards.
Index("tasks_owner_updated_idx", tasks.c.owner_id, tasks.c.updated_at, tasks.c.id)
Index("tasks_owner_title_idx", tasks.c.owner_id, tasks.c.title, tasks.c.id)
Index(
    "tasks_owner_due_asc_idx",
    tasks.c.owner_id,
    due_date_key(tasks.c.due_date, descending=False),
    tasks.c.id,
)
Index(
    "tasks_owner_due_desc_idx",
    tasks.c.owner_id,
    due_date_key(tasks.c.due_date, descending=True),
    tasks.c.id,
)


def _task_snapshot() -> list[Column[Any]]:
    """The task as one change left it (only id and version for a deletion), in Task's order."""
    return [
        Column("task_id", BigInteger),
        Column("title", Text),
        Column("description", Text),
        Column("completed", Boolean),
        Column("due_date", DateTime(timezone=True)),
        Column("task_created_at", DateTime(timezone=True)),
        Column("task_updated_at", DateTime(timezone=True)),
        Column("version", Integer),
    ]


# Per owner, the last event position the purge removed (migration 0009): a cursor before it is
# past retention.
task_stream_purges = Table(
    "task_stream_purges",
    metadata,
    Column("owner_id", Text, primary_key=True),
    Column("purged_through", BigInteger, nullable=False),
)

# One row per committed change, written by the same statement as the change. Positions come
# from one sequence (migration 0009): they grow in each owner's stream, with gaps.
task_events = Table(
    "task_events",
    metadata,
    Column("owner_id", Text, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("kind", Text, nullable=False),
    *_task_snapshot(),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("task_events_recorded_idx", "recorded_at"),
)

# A write's idempotency key with the request's fingerprint and the outcome to replay.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("fingerprint", Text, nullable=False),
    *_task_snapshot(),
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("idempotency_keys_recorded_idx", "recorded_at"),
)

# Each user's rate-limit bucket (migration 0006): the tokens it held at `counted_at`. Unlogged:
# losing it to a crash only refills the buckets.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("owner_id", Text, primary_key=True),
    Column("tokens", Double, nullable=False),
    Column("counted_at", DateTime(timezone=True), nullable=False),
    prefixes=["UNLOGGED"],
)

# GraphQL documents by the SHA-256 of their text (migration 0007): learnt from clients
# (automatic persisted queries) or registered from a frontend's manifest at deploy time.
persisted_documents = Table(
    "persisted_documents",
    metadata,
    Column("hash", Text, primary_key=True),
    Column("document", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("registered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
