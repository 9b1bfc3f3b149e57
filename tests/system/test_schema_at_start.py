"""`python main.py serve` checks the schema before it takes traffic, as operators run it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest

import main
from db import migrate
from tests.support.cli import PROJECT_DIR, cli_environment, run_cli
from tests.support.databases import empty_database, migrate_to, set_revision
from tests.support.servers import free_port
from tests.support.tokens import JWT_SECRET, hs256_token

HEAD = migrate.expected_schema(main.MIGRATE_COMMAND).head
START_SECONDS = 60.0


@pytest.fixture
async def unmigrated(admin_database_url: str) -> AsyncIterator[str]:
    async with empty_database(admin_database_url, "taskql_start") as url:
        yield url


def _serve_environment(database_url: str, **variables: str) -> dict[str, str]:
    return cli_environment(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        HOST="127.0.0.1",
        PORT=str(free_port()),
        DB_POOL_SIZE="2",
        **variables,
    )


def _messages(stderr: str) -> list[str]:
    """The log's messages (LOG_FORMAT is json with DATABASE_URL set); fails on other lines."""
    return [json.loads(line)["message"] for line in stderr.splitlines() if line.strip()]


async def _refusal(database_url: str, **variables: str) -> str:
    """The one line `serve` says before it exits with status 3."""
    status, _stdout, stderr = await run_cli(
        "serve", env=_serve_environment(database_url, **variables)
    )
    assert status == main.EXIT_DATABASE_NOT_READY, stderr
    refusals = [m for m in _messages(stderr) if m.startswith("refusing to start")]
    assert len(refusals) == 1, stderr
    assert "Traceback" not in stderr
    return refusals[0]


@pytest.mark.slow
async def test_serve_refuses_an_unmigrated_database_once_for_all_workers(
    unmigrated: str,
) -> None:
    said = await _refusal(unmigrated, WORKERS="2")
    assert said == (
        f"refusing to start: the database has no schema (no alembic_version); the code needs "
        f"{HEAD}: run `taskql migrate` (or set MIGRATE_ON_START=true)"
    )


@pytest.mark.slow
async def test_serve_refuses_a_database_behind_the_code(unmigrated: str) -> None:
    await migrate_to(unmigrated, "0003")
    said = await _refusal(unmigrated)
    assert f"the database schema is at revision 0003, behind the code's {HEAD}" in said
    assert "run `taskql migrate`" in said


@pytest.mark.slow
async def test_serve_refuses_a_database_ahead_of_the_code(unmigrated: str) -> None:
    await migrate_to(unmigrated)
    await set_revision(unmigrated, "from_newer_code")
    said = await _refusal(unmigrated, MIGRATE_ON_START="true")
    assert "at revision from_newer_code, which this code does not know" in said
    assert f"`taskql migrate {HEAD} --down`" in said
    assert "MIGRATE_ON_START" not in said  # it would not help


@dataclass
class Instance:
    """A running `main.py serve`, its base URL and its log."""

    process: asyncio.subprocess.Process
    base_url: str
    log: Path

    def messages(self) -> list[str]:
        return _messages(self.log.read_text())


@asynccontextmanager
async def _serving(log: Path, env: dict[str, str]) -> AsyncIterator[Instance]:
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "main.py", "serve", cwd=PROJECT_DIR, env=env, stdout=out, stderr=out
        )
    instance = Instance(process, f"http://127.0.0.1:{env['PORT']}", log)
    try:
        yield instance
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _readiness(http: httpx.AsyncClient, instance: Instance) -> httpx.Response:
    """The first /readyz answer of a starting server."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if instance.process.returncode is not None:
            pytest.fail(
                f"serve exited ({instance.process.returncode}):\n{instance.log.read_text()}"
            )
        try:
            return await http.get(f"{instance.base_url}/readyz")
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    pytest.fail(f"serve did not answer after {START_SECONDS}s:\n{instance.log.read_text()}")


async def _waiting_for_the_migration_lock(conn: asyncpg.Connection, count: int) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objid = $1 AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())",
            migrate._MIGRATION_LOCK_KEY,
        )
        if waiting == count:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{count} instances did not come to wait for the migration lock")


@pytest.mark.slow
async def test_two_instances_migrating_on_start_together(unmigrated: str, tmp_path: Path) -> None:
    # The test holds the migrations' lock until both instances, having found the schema
    # behind, wait for it: then they start together whatever the machine's load.
    holder = await asyncpg.connect(unmigrated)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", migrate._MIGRATION_LOCK_KEY)
        env = _serve_environment(unmigrated, MIGRATE_ON_START="true")
        async with (
            _serving(tmp_path / "a.log", env) as a,
            _serving(tmp_path / "b.log", {**env, "PORT": str(free_port())}) as b,
            httpx.AsyncClient(timeout=10) as http,
        ):
            await _waiting_for_the_migration_lock(holder, 2)
            await holder.execute("SELECT pg_advisory_unlock($1)", migrate._MIGRATION_LOCK_KEY)
            headers = {"Authorization": f"Bearer {hs256_token('alice')}"}
            for instance in (a, b):
                assert (await _readiness(http, instance)).status_code == 200
                created = await http.post(
                    f"{instance.base_url}/api/alice/tasks", json={"title": "t"}, headers=headers
                )
                assert created.status_code == 201, created.text
                listed = await http.post(
                    f"{instance.base_url}/graphql",
                    json={"query": "{ tasks { totalCount } }"},
                    headers=headers,
                )
                assert listed.status_code == 200, listed.text
                assert listed.json()["data"]["tasks"]["totalCount"] >= 1
            said = a.messages() + b.messages()
    finally:
        await holder.close()
    # One got the lock first and migrated; the other then found nothing left to do.
    assert said.count(f"migrated the database schema from nothing to {HEAD}") == 1, said
    assert said.count(f"database schema at revision {HEAD}, nothing to migrate") == 1, said


@pytest.mark.slow
async def test_serve_starts_while_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/taskql"
    env = _serve_environment(url, DB_CONNECT_TIMEOUT="1")
    async with _serving(tmp_path / "serve.log", env) as instance, httpx.AsyncClient() as http:
        response = await _readiness(http, instance)
        assert response.status_code == 503
        assert response.json()["reason"] == "database unreachable"
        said = instance.messages()
    assert any(m.startswith("the database is unreachable: serving anyway") for m in said), said


@pytest.mark.parametrize(
    "variables",
    [
        {
            "DATABASE_URL": "postgresql://app@ep-x-pooler.example.com/tasks",
            "DATABASE_LISTEN_URL": "postgresql://app@ep-x.example.com/tasks",
        },
        {
            "DATABASE_URL": "postgresql://app@127.0.0.1/tasks",
            "DB_POOLER": "true",
            "DATABASE_LISTEN_URL": "postgresql://app@127.0.0.1/tasks",
        },
    ],
)
@pytest.mark.slow
async def test_migrating_on_start_through_a_pooler_is_a_configuration_error(
    variables: dict[str, str],
) -> None:
    env = _serve_environment(variables.pop("DATABASE_URL"), MIGRATE_ON_START="true", **variables)
    status, _stdout, stderr = await run_cli("serve", env=env)
    assert status == 2, stderr
    assert "MIGRATE_ON_START=true would migrate through a transaction pooler" in stderr
    assert "set DATABASE_MIGRATION_URL to the direct URL" in stderr
