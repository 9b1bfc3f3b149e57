"""A transaction pooler nobody announced is found by itself, against real PgBouncers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade
from db.pooler import behind_transaction_pooler
from tests.support.app import make_settings, running_app
from tests.support.servers import PgBouncer, ThrowawayPostgres, pgbouncer_binary, throwaway_postgres

DATABASE = "taskql"
USERS = [f"pooled-{n}" for n in range(6)]
# As many requests at once as in the report (61 of 120 answered 500 then).
CONCURRENT = 120
SWITCHED = "switched to pooler mode"

Headers = Callable[[str], dict[str, str]]


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of this module's own with a migrated `taskql` database."""
    servers = throwaway_postgres()
    postgres = next(servers)
    try:
        asyncio.run(_create_migrated_database(postgres))
        yield postgres
    finally:
        servers.close()


async def _create_migrated_database(postgres: ThrowawayPostgres) -> None:
    conn = await asyncpg.connect(postgres.url)
    try:
        await conn.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await conn.close()
    engine = create_engine(DatabaseConfig(url=_direct_url(postgres)))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _direct_url(postgres: ThrowawayPostgres) -> str:
    return postgres.url.rsplit("/", 1)[0] + f"/{DATABASE}"


@pytest.fixture
def binary() -> Path:
    found = pgbouncer_binary()
    if found is None:
        pytest.skip("pgbouncer not found: install it (apt-get install pgbouncer); .ci/run does")
    return found


@contextmanager
def _pgbouncer(server: ThrowawayPostgres, binary: Path, **config: Any) -> Iterator[PgBouncer]:
    """A PgBouncer on 127.0.0.1 in front of `server`: nothing in its URL says it pools."""
    pgbouncer = PgBouncer(binary, server_port=server.port, **config)
    try:
        yield pgbouncer
    finally:
        pgbouncer.stop()


@pytest.fixture
def bouncer(server: ThrowawayPostgres, binary: Path) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode."""
    with _pgbouncer(server, binary, pool_size=4) as pgbouncer:
        yield pgbouncer


async def _never() -> asyncpg.Connection:
    raise AssertionError("a second connection was opened")


async def test_a_direct_connection_is_known_without_a_second_connection(
    server: ThrowawayPostgres,
) -> None:
    conn = await asyncpg.connect(_direct_url(server))
    try:
        assert not await behind_transaction_pooler(conn, _never)
    finally:
        await conn.close()


@pytest.mark.parametrize(("pool_mode", "expected"), [("transaction", True), ("session", False)])
async def test_transaction_pooling_is_told_from_session_pooling(
    server: ThrowawayPostgres, binary: Path, pool_mode: str, expected: bool
) -> None:
    opened: list[asyncpg.Connection] = []
    with _pgbouncer(server, binary, pool_mode=pool_mode) as pgbouncer:
        url = pgbouncer.url(DATABASE)

        async def open_other() -> asyncpg.Connection:
            opened.append(await asyncpg.connect(url, statement_cache_size=0))
            return opened[-1]

        conn = await asyncpg.connect(url, statement_cache_size=0)
        try:
            assert await behind_transaction_pooler(conn, open_other) is expected
        finally:
            await conn.close()
    # Both are proxies announcing process ids of their own: only the second look decides.
    assert len(opened) == 1
    assert opened[0].is_closed()


@asynccontextmanager
async def _app(url: str, **env: str) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    settings = make_settings(url, DB_POOL_SIZE="20", **env)
    async with running_app(settings) as (http, state):
        yield http, state["database"]


async def _burst(http: httpx.AsyncClient, auth: Headers) -> list[int]:
    """CONCURRENT requests at once from a cold start: reads and writes, both doors."""
    query = {"query": "{ tasks(first: 5) { totalCount nodes { id } } }"}

    def one(n: int) -> Awaitable[httpx.Response]:
        user = USERS[n % len(USERS)]
        if n % 3 == 0:
            return http.post(f"/api/{user}/tasks", json={"title": f"t{n}"}, headers=auth(user))
        if n % 3 == 1:
            return http.get(f"/api/{user}/tasks", headers=auth(user))
        return http.post("/graphql", json=query, headers=auth(user))

    responses = await asyncio.gather(*(one(n) for n in range(CONCURRENT)))
    return [response.status_code for response in responses]


def _said(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


@pytest.mark.slow
async def test_an_unannounced_transaction_pooler_costs_no_request(
    bouncer: PgBouncer, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with _app(bouncer.url(DATABASE), DB_POOLER="auto") as (http, database):
        statuses = await _burst(http, auth)
        assert set(statuses) <= {200, 201}, statuses
        assert statuses.count(201) == CONCURRENT // 3
        assert (await http.get("/readyz")).status_code == 200
        assert database._mode.pooled  # type: ignore[attr-defined]
    [said] = _said(caplog, SWITCHED)
    assert "DB_POOLER=true" in said
    assert "same server session" in said


@pytest.mark.slow
async def test_a_pooler_refusing_statement_timeout_is_found_at_connect(
    server: ThrowawayPostgres, binary: Path, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # PgBouncer's default: it refuses the statement_timeout a direct connection sends.
    with _pgbouncer(server, binary, ignore_startup_parameters="") as pgbouncer:
        async with _app(pgbouncer.url(DATABASE), DB_POOLER="auto") as (http, _database):
            user = USERS[0]
            listed = await http.get(f"/api/{user}/tasks", headers=auth(user))
            assert listed.status_code == 200, listed.text
            created = await http.post(f"/api/{user}/tasks", json={"title": "t"}, headers=auth(user))
            assert created.status_code == 201, created.text
    [said] = _said(caplog, SWITCHED)
    assert "unsupported startup parameter" in said


@pytest.mark.slow
async def test_a_session_pooler_keeps_the_direct_mode(
    server: ThrowawayPostgres, binary: Path, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with _pgbouncer(server, binary, pool_mode="session", pool_size=30) as pgbouncer:
        async with _app(pgbouncer.url(DATABASE), DB_POOLER="auto") as (http, database):
            statuses = await _burst(http, auth)
            assert not database._mode.pooled  # type: ignore[attr-defined]
    assert set(statuses) <= {200, 201}, statuses
    assert _said(caplog, SWITCHED) == []


@pytest.mark.slow
async def test_with_db_pooler_false_lost_statements_get_503_and_are_said_once(
    bouncer: PgBouncer, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with _app(bouncer.url(DATABASE), DB_POOLER="false") as (http, database):
        statuses = [status for _ in range(3) for status in await _burst(http, auth)]
        assert not database._mode.pooled  # type: ignore[attr-defined]
    # The operator said there is no pooler: no switch, but no 500 either.
    assert 503 in statuses, statuses
    assert set(statuses) <= {200, 201, 503}, statuses
    [said] = _said(caplog, "DB_POOLER is false")
    assert "set DB_POOLER=true" in said
    assert _said(caplog, SWITCHED) == []
