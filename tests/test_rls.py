"""Row-level security: a query that forgets its owner filter still sees only the viewer's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.engine import Database, DatabaseConfig, RowScope
from resolvers.auth import Principal
from resolvers.context import Context, RowSecurityConfig

APP_ROLE = "taskql_app"


@pytest.fixture
async def database(clean_database: str) -> AsyncIterator[Database]:
    """The tasks of alice (two) and bob (one), written by the superuser, who bypasses RLS."""
    conn = await asyncpg.connect(clean_database)
    try:
        await conn.execute(
            "INSERT INTO tasks (owner_id, title) VALUES "
            "('alice', 'alice 1'), ('alice', 'alice 2'), ('bob', 'bob secret')"
        )
    finally:
        await conn.close()
    database = await Database.open(DatabaseConfig(url=clean_database))
    yield database
    await database.close()


def alice_context(database: Database, *, enabled: bool = True) -> Context:
    return Context(
        database=database,
        principal=Principal("alice"),
        row_security=RowSecurityConfig(enabled=enabled),
    )


async def test_the_apps_connection_sees_only_the_viewers_rows(database: Database) -> None:
    # Every statement here forgets the owner filter on purpose.
    async with alice_context(database).connection() as conn:
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
        titles = [row["title"] for row in await conn.fetch("SELECT title FROM tasks ORDER BY id")]
        assert titles == ["alice 1", "alice 2"]
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 2
        assert await conn.execute("UPDATE tasks SET title = 'mine now'") == "UPDATE 2"
        deleted = await conn.fetch("DELETE FROM tasks RETURNING owner_id")
        assert {row["owner_id"] for row in deleted} == {"alice"}
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT title FROM tasks") == "bob secret"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO tasks (owner_id, title) VALUES ('bob', 'planted')",
        "UPDATE tasks SET owner_id = 'bob'",
    ],
)
async def test_writing_a_row_for_someone_else_is_refused(
    database: Database, statement: str
) -> None:
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="row-level security"):
        async with alice_context(database).connection() as conn:
            await conn.execute(statement)


async def test_without_an_owner_the_role_sees_nothing(database: Database) -> None:
    async with database.connect() as conn:
        await conn.execute(f"SET ROLE {APP_ROLE}")
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
        await conn.execute("RESET ROLE")


async def test_the_owner_setting_ends_with_its_transaction(database: Database) -> None:
    async with database.connect(RowScope("alice", APP_ROLE)) as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 2
        connection_id = await conn.fetchval("SELECT pg_backend_pid()")
    # The same pooled connection, used next without a scope.
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT pg_backend_pid()") == connection_id
        assert await conn.fetchval("SELECT current_setting('app.user_id', true)") in ("", None)
        assert await conn.fetchval("SELECT current_user") != APP_ROLE


@pytest.mark.parametrize(
    "owner_id", ["o'brien", "back\\slash", "'); DROP TABLE tasks; --", "Zoë Ω"]
)
async def test_any_owner_id_is_set_literally(database: Database, owner_id: str) -> None:
    # The owner travels as a literal in the BEGIN round trip: it must arrive unchanged.
    async with database.connect(RowScope(owner_id, APP_ROLE)) as conn:
        assert await conn.fetchval("SELECT current_setting('app.user_id')") == owner_id
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 3


async def test_the_app_role_cannot_bypass_row_security(database: Database) -> None:
    async with database.connect() as conn:
        row = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = $1",
            APP_ROLE,
        )
        assert tuple(row) == (False, False, False)
        forced = await conn.fetchval(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
            "WHERE oid = 'tasks'::regclass"
        )
        assert forced is True


async def test_disabled_row_security_uses_autocommit(database: Database) -> None:
    async with alice_context(database, enabled=False).connection() as conn:
        assert await conn.fetchval("SELECT current_user") != APP_ROLE
        assert not conn.is_in_transaction()
        # The superuser login bypasses RLS: only the queries' own owner filter protects data.
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 3
