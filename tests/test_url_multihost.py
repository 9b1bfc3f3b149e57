"""Multi-host DATABASE_URLs (libpq's failover form) reach asyncpg and SQLAlchemy intact."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text

from db.engine import Database, DatabaseConfig, create_engine
from db.errors import DatabaseUnavailable
from db.url import translate_url
from tests.support.servers import free_port

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
