"""The tasks table as SQLAlchemy Core metadata; migrations are the source of truth for DDL."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)

TITLE_MAX_LENGTH = 255
DESCRIPTION_MAX_LENGTH = 10_000

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
