"""Alembic migrations on fresh databases: up to head, down to base, up again, and the CLI."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.engine import DatabaseConfig, create_engine
from db.tables import metadata
from tests.support.cli import PROJECT_DIR, cli_environment, run_cli
from tests.support.databases import empty_database

HEAD = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()

EXPECTED_COLUMNS = [
    # name, type, nullable, default, identity
    ("id", "bigint", "NO", None, "ALWAYS"),
    ("owner_id", "text", "NO", None, None),
    ("title", "text", "NO", None, None),
    ("description", "text", "NO", "''::text", None),
    ("completed", "boolean", "NO", "false", None),
    ("due_date", "timestamp with time zone", "YES", None, None),
    ("created_at", "timestamp with time zone", "NO", "now()", None),
    ("updated_at", "timestamp with time zone", "NO", "now()", None),
    ("version", "integer", "NO", "1", None),
]


@pytest.fixture
async def fresh_url(admin_database_url: str) -> AsyncIterator[str]:
    async with empty_database(admin_database_url, "taskql_migrations") as url:
        yield url


@pytest.fixture
async def engine(fresh_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseConfig(url=fresh_url, pool_size=2))
    try:
        yield engine
    finally:
        await engine.dispose()


async def _columns(url: str) -> list[tuple[object, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """SELECT column_name, data_type, is_nullable, column_default, identity_generation
               FROM information_schema.columns
               WHERE table_schema = 'public' AND table_name = 'tasks'
               ORDER BY ordinal_position"""
        )
    finally:
        await conn.close()
    return [tuple(row) for row in rows]


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


async def _indexes(url: str) -> dict[str, str]:
    rows = await _fetch(url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'")
    return {row["indexname"]: row["indexdef"] for row in rows}


async def _table_exists(url: str) -> bool:
    [row] = await _fetch(url, "SELECT to_regclass('public.tasks') IS NOT NULL AS present")
    return bool(row["present"])


def test_developers_alembic_ini_names_the_packaged_scripts() -> None:
    # `alembic revision` (alembic.ini) must write where `taskql migrate` reads.
    developers = ScriptDirectory.from_config(Config(str(PROJECT_DIR / "alembic.ini")))
    packaged = ScriptDirectory.from_config(migrate.alembic_config())
    assert Path(developers.dir).resolve() == Path(packaged.dir).resolve() == migrate.MIGRATIONS_DIR
    assert developers.get_current_head() == HEAD


async def test_upgrade_to_head_creates_the_tasks_table(engine: AsyncEngine, fresh_url: str) -> None:
    assert HEAD is not None
    assert not await _table_exists(fresh_url)
    assert await migrate.current_revision(engine) is None

    await migrate.upgrade(engine)

    assert await migrate.current_revision(engine) == HEAD
    assert await _columns(fresh_url) == EXPECTED_COLUMNS
    indexes = await _indexes(fresh_url)
    # One index per supported list order, each led by the owner.
    assert set(indexes) == {
        "tasks_pkey",
        "tasks_owner_created_idx",
        "tasks_owner_updated_idx",
        "tasks_owner_title_idx",
        "tasks_owner_due_asc_idx",
        "tasks_owner_due_desc_idx",
    }
    assert indexes["tasks_owner_created_idx"].endswith(
        "ON public.tasks USING btree (owner_id, created_at, id)"
    )
    assert indexes["tasks_pkey"].endswith("USING btree (id)")
    checks = await _fetch(
        fresh_url,
        "SELECT conname FROM pg_constraint WHERE conrelid = 'tasks'::regclass AND contype = 'c'",
    )
    assert {row["conname"] for row in checks} == {"tasks_title_length", "tasks_description_length"}


async def test_the_migrated_schema_matches_the_table_metadata(engine: AsyncEngine) -> None:
    await migrate.upgrade(engine)

    def differences(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_the_database_enforces_the_text_limits(engine: AsyncEngine, fresh_url: str) -> None:
    await migrate.upgrade(engine)
    conn = await asyncpg.connect(fresh_url)
    try:
        for title, description in [("", ""), ("t" * 256, ""), ("t", "d" * 10_001)]:
            with pytest.raises(asyncpg.CheckViolationError):
                await conn.execute(
                    "INSERT INTO tasks (owner_id, title, description) VALUES ('a', $1, $2)",
                    title,
                    description,
                )
        row = await conn.fetchrow(
            "INSERT INTO tasks (owner_id, title) VALUES ('a', $1) RETURNING *", "\U0001f600" * 255
        )
        assert (row["description"], row["completed"], row["version"]) == ("", False, 1)
        with pytest.raises(asyncpg.GeneratedAlwaysError):
            await conn.execute("INSERT INTO tasks (id, owner_id, title) VALUES (7, 'a', 't')")
    finally:
        await conn.close()


async def test_downgrade_to_base_and_upgrade_again(engine: AsyncEngine, fresh_url: str) -> None:
    await migrate.upgrade(engine)

    await migrate.downgrade(engine, "base")

    assert not await _table_exists(fresh_url)
    assert await _indexes(fresh_url) == {}
    assert await migrate.current_revision(engine) is None

    await migrate.upgrade(engine)

    assert await _columns(fresh_url) == EXPECTED_COLUMNS
    assert await migrate.current_revision(engine) == HEAD
    assert await _fetch(fresh_url, "SELECT * FROM tasks") == []


async def test_upgrading_an_up_to_date_database_keeps_its_data(
    engine: AsyncEngine, fresh_url: str
) -> None:
    await migrate.upgrade(engine)
    await _fetch(fresh_url, "INSERT INTO tasks (owner_id, title) VALUES ('a', 'kept')")

    await migrate.upgrade(engine)

    rows = await _fetch(fresh_url, "SELECT title FROM tasks")
    assert [row["title"] for row in rows] == ["kept"]


@pytest.mark.slow
async def test_concurrent_upgrades_take_turns(fresh_url: str) -> None:
    # Several workers starting at once each migrate; the advisory lock makes that safe.
    engines = [create_engine(DatabaseConfig(url=fresh_url, pool_size=1)) for _ in range(3)]
    try:
        await asyncio.gather(*(migrate.upgrade(engine) for engine in engines))
        assert [await migrate.current_revision(engine) for engine in engines] == [HEAD] * 3
    finally:
        for engine in engines:
            await engine.dispose()
    assert await _columns(fresh_url) == EXPECTED_COLUMNS


@pytest.mark.slow
async def test_migrate_cli_upgrades_and_downgrades(fresh_url: str, tmp_path: Path) -> None:
    # Migrating needs the database alone: no way to verify tokens, no development secret.
    env = cli_environment(DATABASE_URL=fresh_url, DATA_DIR=str(tmp_path))

    status, stdout, stderr = await run_cli("migrate", env=env)
    assert status == 0, stderr
    assert stdout.strip() == f"database at revision {HEAD}"
    assert await _columns(fresh_url) == EXPECTED_COLUMNS

    status, stdout, stderr = await run_cli("migrate", "base", "--down", env=env)
    assert status == 0, stderr
    assert stdout.strip() == "database at revision None"
    assert not await _table_exists(fresh_url)
    assert _files(tmp_path) == []


@pytest.mark.slow
async def test_migrate_cli_prefers_the_migration_url(fresh_url: str) -> None:
    # The app's URL may be a pooler; migrations go through the direct one when it is given.
    env = cli_environment(
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/unreachable",
        DATABASE_MIGRATION_URL=fresh_url,
        DB_CONNECT_TIMEOUT="2",
    )

    status, stdout, stderr = await run_cli("migrate", env=env)

    assert status == 0, stderr
    assert stdout.strip() == f"database at revision {HEAD}"
    assert await _table_exists(fresh_url)


@pytest.mark.slow
async def test_migrate_cli_with_only_the_migration_url_writes_nothing_else(
    fresh_url: str, tmp_path: Path
) -> None:
    env = cli_environment(DATABASE_MIGRATION_URL=fresh_url, DATA_DIR=str(tmp_path))

    status, stdout, stderr = await run_cli("migrate", env=env)

    assert status == 0, stderr
    assert stdout.strip() == f"database at revision {HEAD}"
    assert _files(tmp_path) == []


def _files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


async def _events_with_a_purged_past(url: str) -> None:
    """At 0008: owners a (3 events, the first purged), b (2) and c (1, purged)."""
    create = "SELECT taskql_create_task($1, 't', '', NULL, false, NULL, NULL)"
    conn = await asyncpg.connect(url)
    try:
        for owner, count in (("a", 3), ("b", 2), ("c", 1)):
            for _ in range(count):
                await conn.execute(create, owner)
        await conn.execute("DELETE FROM task_events WHERE owner_id = 'a' AND position = 1")
        await conn.execute("DELETE FROM task_events WHERE owner_id = 'c'")
    finally:
        await conn.close()


async def test_0009_keeps_every_cursor_and_what_the_purge_removed(
    engine: AsyncEngine, fresh_url: str
) -> None:
    """Positions stay, the sequence starts past them, and an owner whose oldest events were
    purged (0005's streams show it by the counter) keeps a resync for cursors before them."""
    await migrate.upgrade(engine, "0008")
    await _events_with_a_purged_past(fresh_url)
    await migrate.upgrade(engine)
    create = "SELECT taskql_create_task($1, 't', '', NULL, false, NULL, NULL)"
    conn = await asyncpg.connect(fresh_url)
    try:
        purges = await conn.fetch("SELECT * FROM task_stream_purges ORDER BY owner_id")
        assert [tuple(row) for row in purges] == [("a", 1), ("c", 1)]
        await conn.execute(create, "b")
        newest_of_b = "SELECT max(position) FROM task_events WHERE owner_id = 'b'"
        assert await conn.fetchval(newest_of_b) > 3

        await migrate.downgrade(engine, "0008")
        streams = await conn.fetch("SELECT owner_id, position FROM task_streams ORDER BY owner_id")
        newest = await conn.fetchval("SELECT max(position) FROM task_events")
        assert [tuple(row) for row in streams] == [("a", 3), ("b", newest), ("c", 1)]
        await conn.execute(create, "c")
        assert (
            await conn.fetchval("SELECT max(position) FROM task_events WHERE owner_id = 'c'") == 2
        )
    finally:
        await conn.close()


async def test_0009_reads_every_owners_events_when_its_tables_owner_is_no_superuser(
    engine: AsyncEngine, fresh_url: str
) -> None:
    """On Neon the migrating role owns the tables and is no superuser, so FORCE ROW LEVEL
    SECURITY binds it too: 0009 must still see every owner's events to move them, both ways."""
    await migrate.upgrade(engine, "0008")
    await _events_with_a_purged_past(fresh_url)
    role = f"taskql_migrator_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(fresh_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER")
        await admin.execute(f"GRANT CREATE ON SCHEMA public TO {role}")
        await admin.execute(
            f"""DO $$ DECLARE item record; BEGIN
                FOR item IN SELECT c.relname, c.relkind FROM pg_class c
                    JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'public' AND c.relkind = 'r' LOOP
                    -- A table's identity sequence goes with it.
                    EXECUTE format('ALTER TABLE %I OWNER TO {role}', item.relname);
                END LOOP;
                FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                    JOIN pg_namespace n ON n.oid = p.pronamespace
                    WHERE n.nspname = 'public' LOOP
                    EXECUTE format('ALTER FUNCTION %s OWNER TO {role}', item.signature);
                END LOOP;
            END $$"""
        )
        as_owner = create_engine(
            DatabaseConfig(url=fresh_url.replace("postgres@", f"{role}@", 1), pool_size=1)
        )
        try:
            await migrate.upgrade(as_owner)
        finally:
            await as_owner.dispose()
        purges = await admin.fetch("SELECT * FROM task_stream_purges ORDER BY owner_id")
        assert [tuple(row) for row in purges] == [("a", 1), ("c", 1)]
        assert await admin.fetchval("SELECT last_value FROM task_event_positions") == 3
        forced = await admin.fetch(
            "SELECT relname FROM pg_class WHERE relforcerowsecurity "
            "AND relname IN ('task_events', 'task_stream_purges') ORDER BY 1"
        )
        assert [row["relname"] for row in forced] == ["task_events", "task_stream_purges"]

        as_owner = create_engine(
            DatabaseConfig(url=fresh_url.replace("postgres@", f"{role}@", 1), pool_size=1)
        )
        try:
            await migrate.downgrade(as_owner, "0008")
        finally:
            await as_owner.dispose()
        streams = await admin.fetch("SELECT * FROM task_streams ORDER BY owner_id")
        assert [tuple(row) for row in streams] == [("a", 3), ("b", 2), ("c", 1)]
    finally:
        await admin.execute(f"REASSIGN OWNED BY {role} TO postgres")
        await admin.execute(f"DROP OWNED BY {role}")
        await admin.execute(f"DROP ROLE {role}")
        await admin.close()
