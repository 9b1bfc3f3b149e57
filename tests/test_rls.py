"""Row-level security: a query that forgets its owner filter still sees only the viewer's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import DatabaseConfig, RowScope, connect, create_engine
from db.tables import tasks
from resolvers.auth import Principal
from resolvers.context import Context, RowSecurityConfig

APP_ROLE = "taskql_app"


@pytest.fixture
async def engine(clean_database: str) -> AsyncIterator[AsyncEngine]:
    """The tasks of alice (two) and bob (one), written by the superuser, who bypasses RLS."""
    conn = await asyncpg.connect(clean_database)
    try:
        await conn.execute(
            "INSERT INTO tasks (owner_id, title) VALUES "
            "('alice', 'alice 1'), ('alice', 'alice 2'), ('bob', 'bob secret')"
        )
    finally:
        await conn.close()
    engine = create_engine(DatabaseConfig(url=clean_database))
    yield engine
    await engine.dispose()


def alice_context(engine: AsyncEngine, *, enabled: bool = True) -> Context:
    return Context(
        engine=engine,
        principal=Principal("alice"),
        row_security=RowSecurityConfig(enabled=enabled),
    )


async def test_the_apps_connection_sees_only_the_viewers_rows(engine: AsyncEngine) -> None:
    async with alice_context(engine).connection() as conn:
        assert await conn.scalar(text("SELECT current_user")) == APP_ROLE
        # No owner filter at all: the policy supplies it.
        titles = (await conn.execute(select(tasks.c.title).order_by(tasks.c.id))).scalars().all()
        assert titles == ["alice 1", "alice 2"]
        assert await conn.scalar(select(func.count()).select_from(tasks)) == 2
        changed = await conn.execute(update(tasks).values(title="mine now"))
        assert changed.rowcount == 2
        deleted = await conn.execute(delete(tasks).returning(tasks.c.owner_id))
        assert set(deleted.scalars()) == {"alice"}
    async with connect(engine) as conn:
        assert await conn.scalar(select(tasks.c.title)) == "bob secret"


async def test_writing_a_row_for_someone_else_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(DBAPIError, match="row-level security"):
        async with alice_context(engine).connection() as conn:
            await conn.execute(insert(tasks).values(owner_id="bob", title="planted"))
    with pytest.raises(DBAPIError, match="row-level security"):
        async with alice_context(engine).connection() as conn:
            await conn.execute(update(tasks).values(owner_id="bob"))


async def test_without_an_owner_the_role_sees_nothing(engine: AsyncEngine) -> None:
    async with connect(engine) as conn:
        await conn.execute(text(f"SET ROLE {APP_ROLE}"))
        assert await conn.scalar(select(func.count()).select_from(tasks)) == 0
        await conn.execute(text("RESET ROLE"))


async def test_the_owner_setting_ends_with_its_transaction(engine: AsyncEngine) -> None:
    async with connect(engine, RowScope("alice", APP_ROLE)) as conn:
        assert await conn.scalar(select(func.count()).select_from(tasks)) == 2
        connection_id = await conn.scalar(text("SELECT pg_backend_pid()"))
    # The same pooled connection, next checkout: neither the owner nor the role is left over.
    async with connect(engine) as conn:
        assert await conn.scalar(text("SELECT pg_backend_pid()")) == connection_id
        assert await conn.scalar(text("SELECT current_setting('app.user_id', true)")) in ("", None)
        assert await conn.scalar(text("SELECT current_user")) != APP_ROLE


async def test_the_app_role_cannot_bypass_row_security(engine: AsyncEngine) -> None:
    async with connect(engine) as conn:
        row = (
            await conn.execute(
                text("SELECT rolsuper, rolbypassrls, rolcanlogin FROM pg_roles WHERE rolname = :r"),
                {"r": APP_ROLE},
            )
        ).one()
        assert tuple(row) == (False, False, False)
        forced = await conn.scalar(
            text(
                "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class "
                "WHERE oid = 'tasks'::regclass"
            )
        )
        assert forced is True


async def test_disabled_row_security_uses_autocommit(engine: AsyncEngine) -> None:
    async with alice_context(engine, enabled=False).connection() as conn:
        assert await conn.scalar(text("SELECT current_user")) != APP_ROLE
        # The superuser login bypasses RLS: only the queries' own owner filter protects data.
        assert await conn.scalar(select(func.count()).select_from(tasks)) == 3
