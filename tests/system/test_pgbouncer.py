"""Behind a real PgBouncer in transaction pooling mode, as Neon's -pooler endpoint is."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

import main
from tests.support.app import app_client, make_settings
from tests.support.servers import (
    PgBouncer,
    ThrowawayPostgres,
    free_port,
    pgbouncer_binary,
    throwaway_postgres,
)

pytestmark = pytest.mark.slow

DATABASE = "taskql"
USERS = [f"user-{n}" for n in range(8)]
TASKS_PER_USER = 6

Headers = Callable[[str], dict[str, str]]


@dataclass(frozen=True)
class Pooled:
    """A PostgreSQL with a `taskql` database, and a PgBouncer in front of it."""

    server: ThrowawayPostgres
    bouncer: PgBouncer

    @property
    def direct_url(self) -> str:
        return self.server.url.rsplit("/", 1)[0] + f"/{DATABASE}"


@pytest.fixture(scope="module")
def pooled() -> Iterator[Pooled]:
    binary = pgbouncer_binary()
    if binary is None:
        pytest.skip("pgbouncer not found: install it (apt-get install pgbouncer); .ci/run does")
    servers = throwaway_postgres()
    server = next(servers)
    bouncer = PgBouncer(binary, server_port=server.port, pool_size=4)
    try:
        asyncio.run(_create_database(server.url))
        yield Pooled(server, bouncer)
    finally:
        bouncer.stop()
        servers.close()


async def _create_database(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def migrated(pooled: Pooled) -> Pooled:
    """Migrated by `main.py migrate` through DATABASE_MIGRATION_URL, as the README says."""
    mp = pytest.MonkeyPatch()
    # DATABASE_URL leads nowhere: migrating succeeds only through the migration URL.
    mp.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:{free_port()}/{DATABASE}")
    mp.setenv(
        "DATABASE_MIGRATION_URL",
        pooled.direct_url.replace("postgresql://", "postgres://")
        + "?sslmode=disable&channel_binding=disable&connect_timeout=5",
    )
    mp.setenv("JWT_SECRET", "unused-by-migrate")
    try:
        assert main.main(["migrate"]) == 0
    finally:
        mp.undo()
    return pooled


async def test_migrate_uses_the_direct_migration_url(migrated: Pooled) -> None:
    conn = await asyncpg.connect(migrated.direct_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM alembic_version") == 1
        assert await conn.fetchval("SELECT to_regclass('tasks') IS NOT NULL")
    finally:
        await conn.close()


def _pooled_url(bouncer: PgBouncer) -> str:
    """The pooled URL the way Neon prints one: postgres:// with libpq-only parameters."""
    url = bouncer.url(DATABASE).replace("postgresql://", "postgres://")
    return url + "?sslmode=disable&channel_binding=disable&application_name=taskql"


Outcome = int | str


async def _attempt(request: Awaitable[httpx.Response]) -> httpx.Response | str:
    """The response, or the error that escaped the app (the test transport re-raises those)."""
    try:
        return await request
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def _outcome(attempt: httpx.Response | str) -> Outcome:
    return attempt.status_code if isinstance(attempt, httpx.Response) else attempt


async def _mixed_workload(http: httpx.AsyncClient, auth: Headers) -> list[Outcome]:
    """Every operation, through both doors, for several users at once; each one's outcome."""

    async def one_user(user: str) -> list[httpx.Response | str]:
        base = f"/api/{user}/tasks"
        headers = auth(user)
        if_match = {**headers, "If-Match": '"1"'}
        query = {"query": "{ tasks(first: 50) { totalCount nodes { id version } } }"}
        created = await asyncio.gather(
            *(
                _attempt(http.post(base, json={"title": f"t{n}"}, headers=headers))
                for n in range(TASKS_PER_USER)
            )
        )
        ids = [r.json()["id"] for r in created if isinstance(r, httpx.Response) and r.is_success]
        changed = await asyncio.gather(
            *(_attempt(http.patch(f"{base}/{i}/complete", headers=headers)) for i in ids),
            *(
                _attempt(http.put(f"{base}/{i}", json={"title": "e"}, headers=if_match))
                for i in ids
            ),
            *(_attempt(http.get(f"{base}/{i}", headers=headers)) for i in ids),
            _attempt(http.get(base, headers=headers)),
            _attempt(http.post("/graphql", json=query, headers=headers)),
        )
        deleted = await asyncio.gather(
            *(_attempt(http.delete(f"{base}/{i}", headers=headers)) for i in ids)
        )
        return [*created, *changed, *deleted]

    per_user = await asyncio.gather(*(one_user(user) for user in USERS))
    return [_outcome(attempt) for attempts in per_user for attempt in attempts]


async def test_concurrent_mixed_operations_through_a_transaction_pooler(
    migrated: Pooled, auth: Headers
) -> None:
    settings = make_settings(
        _pooled_url(migrated.bouncer),
        DB_POOLER="true",
        DB_POOL_SIZE="20",
        DATABASE_LISTEN_URL=migrated.direct_url,
    )
    async with app_client(settings) as http:
        for _ in range(3):
            statuses = await _mixed_workload(http, auth)
            # A PUT with If-Match "1" loses to the toggle when the toggle gets in first.
            assert set(statuses) <= {200, 201, 204, 412}, statuses
            assert statuses.count(201) == len(USERS) * TASKS_PER_USER
            assert statuses.count(204) == len(USERS) * TASKS_PER_USER
        assert (await http.get("/readyz")).status_code == 200


async def test_without_pooler_mode_prepared_statements_break(
    migrated: Pooled, auth: Headers
) -> None:
    # The failure the pooler settings prevent: asyncpg's named statements land on servers that
    # never prepared them. If this ever passes cleanly, the test above proves nothing.
    settings = make_settings(_pooled_url(migrated.bouncer), DB_POOLER="false", DB_POOL_SIZE="20")
    async with app_client(settings) as http:
        outcomes = await _mixed_workload(http, auth)
    failures = [o for o in outcomes if not isinstance(o, int) or o >= 500]
    # Requests that lost their prepared statements are told to retry, never a 500.
    assert failures, outcomes
    assert set(failures) == {503}, outcomes
