"""/readyz: 200 only when requests can be served, otherwise 503 with the reason; never a 500."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

import main
from db import migrate
from db.engine import RECHECK_SECONDS
from tests.support.app import app_client, make_settings
from tests.support.databases import empty_database, migrate_to, set_revision
from tests.support.servers import free_port

HEAD = migrate.expected_schema(main.MIGRATE_COMMAND).head


@pytest.fixture
async def unmigrated(admin_database_url: str) -> AsyncIterator[str]:
    async with empty_database(admin_database_url, "taskql_health") as url:
        yield url


async def _unready(http: httpx.AsyncClient, reason: str) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 503, response.text
    assert response.json() == {"status": "unavailable", "reason": reason}
    assert response.headers["Retry-After"] == "2"


async def _ready_within(http: httpx.AsyncClient, seconds: float) -> float:
    """Seconds until /readyz said 200; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (await http.get("/readyz")).status_code == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    pytest.fail(f"/readyz not 200 after {seconds}s")


async def test_an_unreachable_database() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/taskql"
    async with app_client(make_settings(url, DB_CONNECT_TIMEOUT="1")) as http:
        await _unready(http, "database unreachable")


@pytest.mark.slow
async def test_a_database_without_schema_until_it_is_migrated(
    unmigrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    async with app_client(make_settings(unmigrated)) as http:
        for _ in range(3):
            await _unready(http, "schema behind")
        await migrate_to(unmigrated)
        # Checked again at most RECHECK_SECONDS later, without a restart.
        assert await _ready_within(http, RECHECK_SECONDS + 3) <= RECHECK_SECONDS + 1
    said = [r.getMessage() for r in caplog.records if "alembic_version" in r.getMessage()]
    assert said == [
        f"the database has no schema (no alembic_version); the code needs {HEAD}: "
        f"run `{main.MIGRATE_COMMAND}`"
    ]


async def test_a_database_behind_the_code(
    unmigrated: str, caplog: pytest.LogCaptureFixture
) -> None:
    await migrate_to(unmigrated, "0003")
    caplog.set_level(logging.ERROR)
    async with app_client(make_settings(unmigrated)) as http:
        await _unready(http, "schema behind")
    assert any(
        f"at revision 0003, behind the code's {HEAD}" in r.getMessage() for r in caplog.records
    )


async def test_a_database_ahead_of_the_code(unmigrated: str) -> None:
    await migrate_to(unmigrated)
    await set_revision(unmigrated, "from_newer_code")
    async with app_client(make_settings(unmigrated)) as http:
        await _unready(http, "schema ahead")


async def test_a_role_the_server_lacks(database_url: str) -> None:
    settings = make_settings(database_url, DB_APP_ROLE="taskql_no_such_role")
    async with app_client(settings) as http:
        await _unready(http, 'database misconfigured: role "taskql_no_such_role" does not exist')


async def test_migrate_on_start_migrates_a_database_found_behind_later(unmigrated: str) -> None:
    # As when the database was unreachable while `serve` started: a worker finds it behind.
    settings = make_settings(unmigrated, MIGRATE_ON_START="true")
    async with app_client(settings) as http:
        await _unready(http, "schema behind")
        await _ready_within(http, 30)
    conn = await asyncpg.connect(unmigrated)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == HEAD
    finally:
        await conn.close()
