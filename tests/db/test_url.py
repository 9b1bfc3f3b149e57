"""DATABASE_URL as users paste it (Neon, libpq, Unix sockets) turned into what asyncpg accepts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from db.engine import Database, DatabaseConfig, create_engine
from db.url import is_pooler_host, translate_url

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
