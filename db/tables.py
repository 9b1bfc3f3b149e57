"""The tasks table as SQLAlchemy Core metadata; migrations are the source of truth for DDL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
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
