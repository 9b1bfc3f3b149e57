"""Apply or revert Alembic migrations from code, one process at a time.

Alembic is configured here rather than by an alembic.ini, so that an installed package
migrates from any working directory: the scripts ship inside it (db/migrations). The
alembic.ini at the checkout's root only serves developers' `alembic revision`.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import DatabaseConfig, create_engine
from db.errors import translate
from db.schema import ExpectedSchema

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK_KEY = 0x7A5C_0001


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the migrations of this package, on `connection`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def expected_schema(migrate_command: str) -> ExpectedSchema:
    """The revision this code needs (the migrations' single head) and all it knows."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()  # raises if the migrations have several heads
    assert head is not None, "no migrations"
    known = frozenset(script.revision for script in scripts.walk_revisions())
    return ExpectedSchema(head=head, known=known, migrate_command=migrate_command)


Migrated = tuple[str | None, str | None]


def _run(connection: Connection, action: str, revision: str) -> Migrated:
    """Migrate under the lock; the revisions found once it was held, and left at the end."""
    # Workers that start together would otherwise race to create the same table.
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
    try:
        before = MigrationContext.configure(connection).get_current_revision()
        config = alembic_config(connection)
        if action == "upgrade":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        after = MigrationContext.configure(connection).get_current_revision()
        connection.commit()
        return before, after
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        connection.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> Migrated:
    """Bring the schema up to `revision`; the revisions before and after."""
    async with engine.connect() as conn:
        return await conn.run_sync(_run, "upgrade", revision)


async def downgrade(engine: AsyncEngine, revision: str = "base") -> Migrated:
    """Take the schema back to `revision`; the revisions before and after."""
    async with engine.connect() as conn:
        return await conn.run_sync(_run, "downgrade", revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return None if revision is None else str(revision)


async def upgrade_database(config: DatabaseConfig, revision: str = "head") -> None:
    """Bring the database `config` points at up to `revision`, with an engine of its own."""
    engine = create_engine(config)
    try:
        _log_migration(*await upgrade(engine, revision))
    finally:
        await engine.dispose()


async def check_schema(config: DatabaseConfig, *, migrate: bool) -> None:
    """Make sure the database `config` points at has the schema `config.schema` names, once,
    before serving: migrate it first if `migrate` and it is behind.

    Raises SchemaNotCurrent (behind without `migrate`, or ahead), DatabaseUnavailable or
    DatabaseMisconfigured (a refused login, a missing database).
    """
    expected = config.schema
    assert expected is not None
    engine = create_engine(config)
    try:
        found = await current_revision(engine)
        mismatch = expected.mismatch(found)
        if mismatch is not None and migrate and not mismatch.ahead:
            _log_migration(*await upgrade(engine))
            return
    except Exception as error:
        translated = translate(error)
        if translated is error:
            raise
        raise translated from error
    finally:
        await engine.dispose()
    if mismatch is not None:
        raise mismatch
    log.info("database schema at revision %s, as the code needs", found)


def _log_migration(before: str | None, after: str | None) -> None:
    if before == after:
        # Another process held the lock and did it (instances starting together).
        log.info("database schema at revision %s, nothing to migrate", after)
    else:
        log.info("migrated the database schema from %s to %s", before or "nothing", after)
