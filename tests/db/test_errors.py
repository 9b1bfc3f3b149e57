"""Errors a real PostgreSQL raises, translated by cause: the client's input, an outage, or a
setup only an operator can fix."""

from __future__ import annotations

import asyncpg
import pytest

from db.errors import (
    DatabaseMisconfigured,
    DatabaseRejectedInput,
    DatabaseUnavailable,
    PoolerNotAnnounced,
    translate,
)
from tests.support.databases import database_url_for
from tests.support.servers import free_port


async def _error_of(url: str, *statements: str) -> BaseException:
    """What running `statements` one after the other on a new connection raises."""
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    except Exception as error:
        return error
    finally:
        await conn.close()
    raise AssertionError(f"{statements} raised nothing")


@pytest.mark.parametrize(
    ("statements", "cause", "fix"),
    [
        (["SELECT * FROM taskql_no_such_table"], "taskql_no_such_table", "apply the migrations"),
        (["SELECT taskql_no_such_function()"], "taskql_no_such_function", "apply the migrations"),
        (["SELECT taskql_no_such_column FROM tasks"], "taskql_no_such_column", "migrations"),
        (["SELECT * FROM taskql_no_such_schema.tasks"], "taskql_no_such_schema", "migrations"),
        # taskql_app may read tasks but not Alembic's table.
        (
            ["SET ROLE taskql_app", "SELECT * FROM alembic_version"],
            "permission denied",
            "grant it to DB_APP_ROLE",
        ),
    ],
)
async def test_server_side_faults_are_misconfiguration_not_input(
    database_url: str, statements: list[str], cause: str, fix: str
) -> None:
    translated = translate(await _error_of(database_url, *statements))
    assert type(translated) is DatabaseMisconfigured
    assert cause in translated.cause
    assert fix in translated.fix
    assert not translated.retryable
    assert translated.reason == f"database misconfigured: {translated.cause}"
    assert "\n" not in str(translated)  # one log line, without the server's HINT


async def test_a_missing_database_is_misconfiguration(admin_database_url: str) -> None:
    url = database_url_for(admin_database_url, "taskql_no_such_database")
    with pytest.raises(asyncpg.exceptions.InvalidCatalogNameError) as raised:
        await asyncpg.connect(url)
    translated = translate(raised.value)
    assert isinstance(translated, DatabaseMisconfigured)
    assert "DATABASE_URL names a database" in translated.fix


@pytest.mark.parametrize(
    "statements",
    [
        ["PREPARE taskql_twice AS SELECT 1", "PREPARE taskql_twice AS SELECT 1"],
        ["EXECUTE taskql_never_prepared"],
    ],
)
async def test_lost_prepared_statements_mean_an_unannounced_pooler(
    database_url: str, statements: list[str]
) -> None:
    translated = translate(await _error_of(database_url, *statements))
    assert isinstance(translated, PoolerNotAnnounced)
    assert translated.retryable
    assert translated.reason == "transaction pooler not announced"
    assert "set DB_POOLER=true" in translated.fix


async def test_a_value_the_database_refuses_is_still_the_clients(database_url: str) -> None:
    error = await _error_of(database_url, "SELECT 'not a date'::date")
    assert isinstance(translate(error), DatabaseRejectedInput)


async def test_a_row_refused_by_row_level_security_stays_a_bug(database_url: str) -> None:
    # Our writes always name their owner; a policy refusing one is a bug to be seen whole.
    error = await _error_of(
        database_url,
        "SET ROLE taskql_app",
        "INSERT INTO tasks (owner_id, title) SELECT 'bob', 'planted' "
        "FROM (SELECT set_config('app.user_id', 'alice', true) OFFSET 0) AS viewer",
    )
    assert isinstance(error, asyncpg.exceptions.InsufficientPrivilegeError)
    assert translate(error) is error


async def test_an_unreachable_server_is_an_outage() -> None:
    with pytest.raises(ConnectionRefusedError) as raised:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    assert isinstance(translate(raised.value), DatabaseUnavailable)
