"""DATABASE_URL as users paste it (Neon, libpq, Unix sockets) turned into what asyncpg accepts."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from db.engine import Database, DatabaseConfig, create_engine
from db.errors import DatabaseUnavailable
from db.url import is_pooler_host, translate_url
from tests.support.servers import free_port

NEON = (
    "postgresql://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/db"
    "?sslmode=require&channel_binding=require"
)


def test_a_neon_url_as_pasted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="db.url")

    target = translate_url(NEON)

    assert target.url == "postgresql+asyncpg://u:p@ep-x-pooler.eu-central-1.aws.neon.tech/db"
    assert target.connect_args == {"ssl": "require"}
    assert target.server_settings == {}
    assert target.host == "ep-x-pooler.eu-central-1.aws.neon.tech"
    assert is_pooler_host(target.host)
    # The dropped parameter is named in the log, so nobody wonders where it went.
    assert any("channel_binding" in record.getMessage() for record in caplog.records)


def test_a_neon_url_makes_an_engine_without_libpq_parameters() -> None:
    engine = create_engine(DatabaseConfig(url=NEON))

    assert engine.url.drivername == "postgresql+asyncpg"
    assert engine.url.host == "ep-x-pooler.eu-central-1.aws.neon.tech"
    assert engine.url.query == {}


@pytest.mark.parametrize(
    ("host", "pooled"),
    [
        ("ep-x-pooler.eu-central-1.aws.neon.tech", True),
        ("ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech", True),
        ("ep-x.eu-central-1.aws.neon.tech", False),
        ("db.pooler-example.com", False),
        ("127.0.0.1", False),
        ("", False),
    ],
)
def test_pooler_hosts_are_detected(host: str, pooled: bool) -> None:
    assert is_pooler_host(host) is pooled


@pytest.mark.parametrize(
    "scheme", ["postgres", "postgresql", "postgresql+asyncpg", "POSTGRESQL", "Postgres"]
)
def test_accepted_schemes(scheme: str) -> None:
    target = translate_url(f"{scheme}://u:p@db.example.com:6543/app")

    assert target.url == "postgresql+asyncpg://u:p@db.example.com:6543/app"
    assert target.host == "db.example.com"


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:p@db.example.com/app",
        "http://db.example.com/app",
        "postgresql+psycopg://u@db.example.com/app",
        "db.example.com/app",
        "",
    ],
)
def test_other_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="postgresql://"):
        translate_url(url)


def test_an_unknown_sslmode_is_refused() -> None:
    with pytest.raises(ValueError, match="sslmode"):
        translate_url("postgresql://u@db.example.com/app?sslmode=always")


@pytest.mark.parametrize(
    "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
)
def test_sslmode_becomes_asyncpgs_ssl(mode: str) -> None:
    assert translate_url(f"postgresql://u@h/app?sslmode={mode}").connect_args == {"ssl": mode}


def test_a_unix_socket_host_parameter_is_kept() -> None:
    target = translate_url("postgresql://postgres@/app?host=/var/run/postgresql&port=5433")

    url = make_url(target.url)
    assert url.query == {"host": "/var/run/postgresql", "port": "5433"}
    assert (url.host, url.database, url.username) == (None, "app", "postgres")
    assert target.host == "/var/run/postgresql"
    assert not is_pooler_host(target.host)


def test_libpq_options_become_server_settings() -> None:
    target = translate_url(
        "postgresql://u@h/app?options=-c%20statement_timeout%3D1000%20-csearch_path%3Dapp"
        "&application_name=taskql-web&connect_timeout=7&target_session_attrs=read-write"
        "&gssencmode=disable"
    )

    assert target.server_settings == {
        "statement_timeout": "1000",
        "search_path": "app",
        "application_name": "taskql-web",
    }
    assert target.connect_args == {"timeout": 7.0}
    assert make_url(target.url).query == {"target_session_attrs": "read-write"}


def test_credentials_are_kept_verbatim() -> None:
    target = translate_url("postgres://user%40corp:p%40ss%2Fw0rd@db.example.com/app")

    url = make_url(target.url)
    assert (url.username, url.password) == ("user@corp", "p@ss/w0rd")


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


@asynccontextmanager
async def _connection(config: DatabaseConfig) -> AsyncIterator[asyncpg.Connection]:
    database = await Database.open(config)
    try:
        async with database.connect() as conn:
            yield conn
    finally:
        await database.close()


async def test_libpq_parameters_connect_to_a_real_server(admin_database_url: str) -> None:
    url = _with_query(
        admin_database_url,
        sslmode="disable",
        channel_binding="require",
        application_name="taskql-url-test",
        options="-c statement_timeout=1234",
    )

    async with _connection(DatabaseConfig(url=url)) as conn:
        row = await conn.fetchrow(
            "SELECT current_setting('application_name'),"
            " current_setting('statement_timeout'), 1 + 1"
        )

    assert tuple(row) == ("taskql-url-test", "1234ms", 2)


async def _prepared_statements(conn: asyncpg.Connection) -> list[str]:
    for n in range(3):
        await conn.fetchval("SELECT CAST($1 AS integer)", n)
    rows = await conn.fetch("SELECT name FROM pg_prepared_statements")
    return [row["name"] for row in rows]


async def test_pooler_mode_keeps_no_prepared_statements(admin_database_url: str) -> None:
    # Behind PgBouncer's transaction pooling, a statement prepared on one server connection
    # is unknown on the next: nothing may be cached, and names must never collide.
    async with _connection(DatabaseConfig(url=admin_database_url, pooler=True)) as conn:
        pooled = await _prepared_statements(conn)
        pooled_timeout = await conn.fetchval("SHOW statement_timeout")
    async with _connection(DatabaseConfig(url=admin_database_url, pooler=False)) as conn:
        direct = await _prepared_statements(conn)
        direct_timeout = await conn.fetchval("SHOW statement_timeout")

    # Pooled: only unnamed statements, which end with their transaction; direct: a cache.
    assert pooled == []
    assert len(direct) > 1
    # PgBouncer refuses unknown startup parameters, so the bound is client-side only there.
    assert (pooled_timeout, direct_timeout) == ("0", "5s")


# Multi-host URLs (libpq's failover form) reach asyncpg and SQLAlchemy intact.
FAILOVER = (
    "postgresql://u:p@db1.example.com:5433,db2.example.com:5434/app"
    "?target_session_attrs=read-write&sslmode=require"
)


def test_a_host_list_becomes_host_and_port_parameters() -> None:
    target = translate_url(FAILOVER)

    assert target.url == (
        "postgresql+asyncpg://u:p@/app?host=db1.example.com%2Cdb2.example.com"
        "&port=5433%2C5434&target_session_attrs=read-write"
    )
    assert target.connect_args == {"ssl": "require"}
    assert target.host == "db1.example.com"
    assert target.hosts == (("db1.example.com", 5433), ("db2.example.com", 5434))


@pytest.mark.parametrize(
    ("url", "hosts"),
    [
        ("postgresql://u@h:5433/app", ()),
        ("postgresql://u@[::1]:5433,h/app", (("::1", 5433), ("h", 5432))),
        # asyncpg's own loop decides prefer-standby, which needs every host reached first.
        ("postgresql://u@a,b/app?target_session_attrs=prefer-standby", ()),
    ],
)
def test_hosts_to_try_one_by_one(url: str, hosts: tuple[tuple[str, int], ...]) -> None:
    assert translate_url(url).hosts == hosts


def test_sqlalchemy_reads_every_host_and_the_session_attribute() -> None:
    engine = create_engine(DatabaseConfig(url=FAILOVER))

    _, connect_args = engine.dialect.create_connect_args(engine.url)

    assert connect_args["host"] == ["db1.example.com", "db2.example.com"]
    assert connect_args["port"] == [5433, 5434]
    assert connect_args["target_session_attrs"] == "read-write"
    assert (connect_args["user"], connect_args["password"]) == ("u", "p")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # libpq's default port for a host that names none.
        (
            "postgresql://u@a.example.com,b.example.com:6000/app",
            "postgresql+asyncpg://u@/app?host=a.example.com%2Cb.example.com&port=5432%2C6000",
        ),
        # Without credentials the authority is empty, and still written as `//`.
        (
            "postgres://[::1]:5433,127.0.0.1/app",
            "postgresql+asyncpg:///app?host=%5B%3A%3A1%5D%2C127.0.0.1&port=5433%2C5432",
        ),
    ],
)
def test_host_list_forms(url: str, expected: str) -> None:
    assert translate_url(url).url == expected


@pytest.mark.parametrize("hosts", ["a.example.com,", "a.example.com,b:port", "a,b:"])
def test_a_malformed_host_list_is_refused_naming_the_host(hosts: str) -> None:
    with pytest.raises(ValueError, match="invalid host"):
        translate_url(f"postgresql://u@{hosts}/app")


def _behind(first_host: str, admin_url: str) -> tuple[str, int]:
    """A read-write multi-host URL: `first_host`, then the test server; and the server's port."""
    server = urlsplit(admin_url)
    if server.hostname is None:
        pytest.skip("the test server listens on a Unix socket, not on TCP")
    port = server.port or 5432
    userinfo, at, _ = server.netloc.rpartition("@")
    netloc = f"{userinfo}{at}{first_host},{server.hostname}:{port}"
    url = server._replace(netloc=netloc).geturl()
    return url + ("&" if server.query else "?") + "target_session_attrs=read-write", port


async def test_the_next_host_is_tried_when_the_first_refuses(admin_database_url: str) -> None:
    # The first host is a closed port, as a crashed primary is; the second is the test server.
    url, port = _behind(f"127.0.0.1:{free_port()}", admin_database_url)
    config = DatabaseConfig(url=url, pool_size=1)

    database = await Database.open(config)
    try:
        async with database.connect() as conn:
            pool_port = await conn.fetchval("SELECT inet_server_port()")
    finally:
        await database.close()
    engine = create_engine(config)
    try:
        async with engine.connect() as conn:
            engine_port = await conn.scalar(text("SELECT inet_server_port()"))
    finally:
        await engine.dispose()

    assert (pool_port, engine_port) == (port, port)


async def test_the_next_host_is_tried_when_the_first_hangs(admin_database_url: str) -> None:
    # A socket that accepts connections and never answers, as a server that hangs or a
    # machine gone from the network: asyncpg alone would spend the whole timeout on it.
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen()
        url, port = _behind(f"127.0.0.1:{hanging.getsockname()[1]}", admin_database_url)
        timeout = 0.5
        database = await Database.open(
            DatabaseConfig(url=url, pool_size=1, connect_timeout_seconds=timeout)
        )
        try:
            began = time.monotonic()
            async with database.connect() as conn:
                reached = await conn.fetchval("SELECT inet_server_port()")
            elapsed = time.monotonic() - began
        finally:
            await database.close()

    assert reached == port
    # The hanging host got its own timeout, the next one the time it needed.
    assert timeout <= elapsed < 2 * timeout


async def test_when_no_host_answers_the_pool_reports_the_database_unavailable() -> None:
    with socket.socket() as hanging:
        hanging.bind(("127.0.0.1", 0))
        hanging.listen()
        hosts = f"127.0.0.1:{hanging.getsockname()[1]},127.0.0.1:{free_port()}"
        database = await Database.open(
            DatabaseConfig(url=f"postgresql://u@{hosts}/app", connect_timeout_seconds=0.2)
        )
        try:
            with pytest.raises(DatabaseUnavailable):
                async with database.connect():
                    pass
        finally:
            await database.close()
