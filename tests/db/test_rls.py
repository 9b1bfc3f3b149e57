"""Row-level security: each statement names its owner first and sees only that owner's tasks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import func, select

from db import tasks as task_queries
from db.engine import Database, DatabaseConfig
from db.statements import compiled
from db.tables import tasks
from resolvers.domain import DEFAULT_ORDER, NO_FILTER

APP_ROLE = "taskql_app"


@pytest.fixture
async def seeded(clean_database: str) -> str:
    """The tasks of alice (two) and bob (one), written by the superuser, who bypasses RLS."""
    conn = await asyncpg.connect(clean_database)
    try:
        await conn.execute(
            "INSERT INTO tasks (owner_id, title) VALUES "
            "('alice', 'alice 1'), ('alice', 'alice 2'), ('bob', 'bob secret')"
        )
    finally:
        await conn.close()
    return clean_database


@pytest.fixture
async def database(seeded: str) -> AsyncIterator[Database]:
    """The app's pool as RLS=true configures it: every session acts as the app role."""
    database = await Database.open(DatabaseConfig(url=seeded, role=APP_ROLE))
    yield database
    await database.close()


async def _all_titles(url: str) -> list[str]:
    """Every task's title, read by the superuser."""
    conn = await asyncpg.connect(url)
    try:
        return [row["title"] for row in await conn.fetch("SELECT title FROM tasks ORDER BY id")]
    finally:
        await conn.close()


async def test_the_apps_sessions_act_as_a_role_that_cannot_bypass_row_security(
    database: Database,
) -> None:
    async with database.connect() as conn:
        assert await conn.fetchval("SELECT current_user") == APP_ROLE
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
        # Autocommit: each statement is its own transaction, so nothing spans two requests.
        assert not conn.is_in_transaction()


async def test_a_read_that_forgets_its_owner_filter_sees_only_the_viewers_rows(
    database: Database,
) -> None:
    # Built the way db/tasks.py builds reads, but without `owner_id = ...` in the query.
    titles = compiled(task_queries.as_viewer(select(tasks.c.title).order_by(tasks.c.id)))
    count = compiled(task_queries.as_viewer(select(func.count().label("n")).select_from(tasks)))
    async with database.connect() as conn:
        assert [row[0] for row in await titles.fetch(conn, owner_id="alice")] == [
            "alice 1",
            "alice 2",
        ]
        assert await count.fetchval(conn, owner_id="bob") == 1
        assert await count.fetchval(conn, owner_id="mallory") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT count(*) FROM tasks",
        "UPDATE tasks SET title = 'mine now' RETURNING id",
        "DELETE FROM tasks RETURNING id",
    ],
)
async def test_a_statement_that_names_no_owner_touches_nothing(
    database: Database, seeded: str, statement: str
) -> None:
    async with database.connect() as conn:
        rows = await conn.fetch(statement)
    assert rows in ([], [(0,)])
    assert await _all_titles(seeded) == ["alice 1", "alice 2", "bob secret"]


async def test_the_owner_setting_ends_with_its_statement(database: Database) -> None:
    async with database.connect() as conn:
        listed = await task_queries.select_tasks(
            conn, owner_id="alice", filters=NO_FILTER, order=DEFAULT_ORDER
        )
        assert [row["title"] for row in listed] == ["alice 1", "alice 2"]
        # The same session, next statement: no owner, so no rows.
        assert await conn.fetchval("SELECT current_setting('app.user_id', true)") in ("", None)
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 0


async def test_a_transaction_that_names_its_owner_sees_and_changes_only_its_rows(
    database: Database, seeded: str
) -> None:
    # The policy itself, as a pooler-mode transaction uses it: even statements without an
    # owner filter stay within the owner's rows.
    async with database.connect() as conn, conn.transaction():
        await conn.execute("SELECT set_config('app.user_id', 'alice', true)")
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 2
        assert await conn.execute("UPDATE tasks SET title = 'mine now'") == "UPDATE 2"
        deleted = await conn.fetch("DELETE FROM tasks RETURNING owner_id")
        assert {row["owner_id"] for row in deleted} == {"alice"}
    assert await _all_titles(seeded) == ["bob secret"]


@pytest.mark.parametrize(
    "statement",
    [
        # As db/tasks.py inserts, with someone else's id in place of the viewer's.
        "INSERT INTO tasks (owner_id, title) SELECT 'bob', 'planted' "
        "FROM (SELECT set_config('app.user_id', 'alice', true) OFFSET 0) AS viewer",
        "SELECT set_config('app.user_id', 'alice', true); UPDATE tasks SET owner_id = 'bob'",
    ],
)
async def test_writing_a_row_for_someone_else_is_refused(
    database: Database, seeded: str, statement: str
) -> None:
    with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="row-level security"):
        async with database.connect() as conn, conn.transaction():
            await conn.execute(statement)
    assert await _all_titles(seeded) == ["alice 1", "alice 2", "bob secret"]


async def test_the_write_functions_act_for_the_owner_they_name(
    database: Database, seeded: str
) -> None:
    async with database.connect() as conn:
        [bob_task] = await task_queries.select_tasks(
            conn, owner_id="bob", filters=NO_FILTER, order=DEFAULT_ORDER
        )
        for owner_id in ("alice", "mallory"):
            assert (
                await task_queries.toggle_task(conn, owner_id=owner_id, task_id=bob_task["id"])
                is None
            )
            assert not await task_queries.delete_task(
                conn, owner_id=owner_id, task_id=bob_task["id"]
            )
        toggled = await task_queries.toggle_task(conn, owner_id="bob", task_id=bob_task["id"])
    assert toggled is not None
    assert toggled.task is not None
    assert toggled.task[3]  # completed
    assert await _all_titles(seeded) == ["alice 1", "alice 2", "bob secret"]


@pytest.mark.parametrize(
    "owner_id", ["o'brien", "back\\slash", "'); DROP TABLE tasks; --", "Zoë Ω"]
)
async def test_any_owner_id_names_exactly_that_owner(database: Database, owner_id: str) -> None:
    async with database.connect() as conn:
        created = await task_queries.insert_task(
            conn, owner_id=owner_id, title="x", description="", due_date=None, completed=False
        )
        listed = await task_queries.select_tasks(
            conn, owner_id=owner_id, filters=NO_FILTER, order=DEFAULT_ORDER
        )
        assert created.task is not None
        assert [row["id"] for row in listed] == [created.task[0]]
        assert await task_queries.count_tasks(conn, owner_id="alice", filters=NO_FILTER) == 2


async def test_without_a_role_the_login_acts_and_the_owner_filter_is_the_guard(
    seeded: str,
) -> None:
    # RLS=false: no role is taken, and this superuser login bypasses the policy.
    database = await Database.open(DatabaseConfig(url=seeded))
    try:
        async with database.connect() as conn:
            assert await conn.fetchval("SELECT current_user") != APP_ROLE
            assert await conn.fetchval("SELECT count(*) FROM tasks") == 3
            listed = await task_queries.select_tasks(
                conn, owner_id="alice", filters=NO_FILTER, order=DEFAULT_ORDER
            )
            assert [row["title"] for row in listed] == ["alice 1", "alice 2"]
    finally:
        await database.close()


@pytest.fixture
async def awkward_role(seeded: str) -> AsyncIterator[str]:
    """A role like the app's whose name needs quoting, as DB_APP_ROLE may name one."""
    name = f"app 'o\\role {uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(seeded)
    quoted = '"' + name.replace('"', '""') + '"'
    try:
        await conn.execute(f"CREATE ROLE {quoted} NOLOGIN")
        await conn.execute(f"GRANT SELECT ON tasks TO {quoted}")
        await conn.execute(f"GRANT {quoted} TO current_user")
        yield name
    finally:
        await conn.execute(f"REVOKE ALL ON tasks FROM {quoted}")
        await conn.execute(f"DROP ROLE {quoted}")
        await conn.close()


@pytest.mark.parametrize("pooler", [True, False])
async def test_the_role_is_taken_whatever_its_name(
    seeded: str, awkward_role: str, pooler: bool
) -> None:
    # Behind a pooler each transaction takes it (its name travels as a literal); directly,
    # each session does.
    database = await Database.open(DatabaseConfig(url=seeded, role=awkward_role, pooler=pooler))
    try:
        async with database.connect() as conn:
            assert await conn.fetchval("SELECT current_user") == awkward_role
            assert conn.is_in_transaction() is pooler
            listed = await task_queries.select_tasks(
                conn, owner_id="alice", filters=NO_FILTER, order=DEFAULT_ORDER
            )
            assert [row["title"] for row in listed] == ["alice 1", "alice 2"]
    finally:
        await database.close()


async def test_behind_a_pooler_the_role_ends_with_the_transaction(seeded: str) -> None:
    database = await Database.open(DatabaseConfig(url=seeded, role=APP_ROLE, pooler=True))
    try:
        async with database.connect() as conn:
            assert await conn.fetchval("SELECT current_user") == APP_ROLE
        # The connection's session, outside the transaction: a pooler would hand it on.
        async with database._mode.pool.acquire() as raw:
            assert await raw.fetchval("SELECT current_user") != APP_ROLE
    finally:
        await database.close()
