"""Connections to PostgreSQL: the asyncpg pool operations use, and the engine migrations use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.errors import DatabaseUnavailable, translate
from db.statements import Connection
from db.url import is_pooler_host, translate_url


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """How to reach PostgreSQL and how long to wait for it."""

    url: str
    # Connections per process at most; opened when needed, closed after 5 idle minutes.
    pool_size: int = 20
    pool_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 5.0
    # True behind a transaction-pooling PgBouncer (Neon's -pooler host); None: detect from host.
    pooler: bool | None = None
    # The role operations act as, so that row-level security binds them even when the login
    # could bypass it (a superuser, a BYPASSRLS role); None: the login role itself.
    role: str | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """Where to connect and with which asyncpg connect() keywords."""

    dsn: str
    sqlalchemy_url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooled: bool = False


def _target(config: DatabaseConfig) -> _Target:
    target = translate_url(config.url)
    pooled = is_pooler_host(target.host) if config.pooler is None else config.pooler
    connect_args: dict[str, Any] = {
        "timeout": config.connect_timeout_seconds,
        # Client-side bound on every statement; works through PgBouncer, unlike a server GUC.
        "command_timeout": config.statement_timeout_seconds,
        **target.connect_args,
    }
    server_settings = dict(target.server_settings)
    if pooled:
        # Prepared statements do not survive between transactions behind transaction pooling,
        # and PgBouncer refuses unknown startup parameters.
        connect_args["statement_cache_size"] = 0
    else:
        timeout_ms = int(config.statement_timeout_seconds * 1000)
        server_settings.setdefault("statement_timeout", str(timeout_ms))
    if server_settings:
        connect_args["server_settings"] = server_settings
    dsn = target.url.replace("postgresql+asyncpg://", "postgresql://", 1)
    return _Target(dsn, target.url, connect_args, pooled)


def direct_connection(config: DatabaseConfig) -> tuple[str, dict[str, Any]]:
    """The DSN and asyncpg.connect() keywords of a session of its own on `config`'s server,
    outside the pool (LISTEN needs one: db/listen.py); `config.url` must not be pooled."""
    target = _target(replace(config, pooler=False))
    return target.dsn, target.connect_args


def create_engine(config: DatabaseConfig) -> AsyncEngine:
    """A SQLAlchemy engine, for migrations and administration (requests use a Database)."""
    target = _target(config)
    connect_args = dict(target.connect_args)
    if target.pooled:
        # SQLAlchemy's own cache of prepared statements, named uniquely for the same reason.
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    return create_async_engine(
        target.sqlalchemy_url, connect_args=connect_args, pool_size=1, pool_pre_ping=True
    )


def _unique_statement_name() -> str:
    return f"__taskql_{uuid.uuid4().hex}__"


StatementLogger = Callable[[Any], None]


class Database:
    """One process's pool of asyncpg connections, failing fast when PostgreSQL is away.

    asyncpg's pool replaces connections the server has closed (a restart, Neon suspending
    its compute) when they are next acquired, at no round trip, and rolls back a transaction
    left open; a session's only state of ours is the role, so its RESET round trip is skipped.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        size: int,
        acquire_timeout: float,
        begin: str | None = None,
    ) -> None:
        self._pool = pool
        # asyncpg's pool queues waiters in an asyncio.Queue, where a task that asks just as a
        # connection comes back takes it ahead of those already waiting, who then re-queue at
        # the back: under saturation some requests starve into the timeout. This semaphore
        # serves waiters first come, first served.
        self._turns = asyncio.Semaphore(size)
        # What opens each operation's transaction; None: autocommit.
        self._begin = begin
        self._acquire_timeout = acquire_timeout
        self._statement_loggers: list[StatementLogger] = []

    @classmethod
    async def open(cls, config: DatabaseConfig) -> Database:
        """A pool that connects lazily, so the process starts while the database is down."""
        target = _target(config)
        # A direct connection takes the role for its whole session, at no cost per operation;
        # behind a pooler each transaction takes it, as sessions are shared with others.
        session_role = None if target.pooled else config.role
        pool = await asyncpg.create_pool(
            target.dsn,
            min_size=0,
            max_size=config.pool_size,
            max_inactive_connection_lifetime=300,
            init=None if session_role is None else partial(_act_as, session_role),
            reset=_keep_session,
            **target.connect_args,
        )
        return cls(
            pool,
            size=config.pool_size,
            acquire_timeout=config.pool_timeout_seconds,
            begin=_begin(config.role) if target.pooled else None,
        )

    async def close(self) -> None:
        await self._pool.close()

    @property
    def size(self) -> int:
        """Connections open now."""
        return int(self._pool.get_size())

    @property
    def idle(self) -> int:
        """Open connections not in use."""
        return int(self._pool.get_idle_size())

    def log_statements(self, logger: StatementLogger) -> None:
        """Call `logger` with every statement sent from now on (asyncpg's LoggedQuery)."""
        self._statement_loggers.append(logger)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Connection]:
        """A connection whose work is committed when the block exits.

        Without a pooler it is in autocommit mode: every task operation is one statement,
        so each is atomic and durable when it returns, in one round trip. Behind a
        transaction-pooling PgBouncer the block is one transaction, which pins one server
        (the driver's prepare and execute are separate round trips the pooler could
        otherwise send to different servers) and takes the role. Driver errors come out
        translated.
        """
        begin = self._begin
        try:
            async with self._turn(), self._pool.acquire() as conn:
                for logger in self._statement_loggers:
                    conn.add_query_logger(logger)
                try:
                    if begin is not None:
                        await conn.execute(begin)
                    yield conn
                    if begin is not None:
                        await conn.execute("COMMIT")
                except BaseException as error:
                    await _recover(conn, error, transactional=begin is not None)
                    raise
                finally:
                    for logger in self._statement_loggers:
                        conn.remove_query_logger(logger)
        except Exception as error:
            translated = translate(error)
            if translated is error:
                raise
            raise translated from error

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[None]:
        """Wait, in arrival order and at most the pool timeout, until a connection is free."""
        if self._turns.locked():
            async with asyncio.timeout(self._acquire_timeout):
                await self._turns.acquire()
        else:
            # Free now: acquire() returns without suspending, so there is no wait to bound
            # (and no timer to arm and cancel, which cost ~3% of a worker's time).
            await self._turns.acquire()
        try:
            yield
        finally:
            self._turns.release()

    async def ping(self) -> None:
        """Return when the database answers `SELECT 1`; raise DatabaseUnavailable if not."""
        async with self.connect() as conn:
            await conn.fetchval("SELECT 1")


async def _recover(conn: Connection, error: BaseException, *, transactional: bool) -> None:
    """Leave the connection fit for the next request, or take it out of service.

    After an outage, a timeout or a cancellation it may be mid-statement or gone, so it is
    closed (the pool opens a new one); after an ordinary error (a domain error, a refused
    value) only the transaction, if any, is rolled back.
    """
    ordinary = isinstance(error, Exception) and not isinstance(
        translate(error), DatabaseUnavailable
    )
    if ordinary and transactional:
        try:
            await conn.execute("ROLLBACK")
        except Exception:
            ordinary = False
    if not ordinary:
        conn.terminate()


async def _keep_session(conn: Connection) -> None:
    """Nothing to reset: the only session setting is the role, the same for every request."""


async def _act_as(role: str, conn: Connection) -> None:
    """SET ROLE for the session of a new connection."""
    await conn.execute("SELECT set_config('role', $1, false)", role)


def _begin(role: str | None) -> str:
    """BEGIN, and the role for the transaction, as one simple-protocol round trip.

    The setting is transaction-local, so it ends with it, as PgBouncer's transaction
    pooling needs. The value is a literal because a multi-statement string cannot take
    parameters; `_literal` makes any text safe to embed.
    """
    if role is None:
        return "BEGIN"
    return f"BEGIN; SELECT set_config('role', {_literal(role)}, true)"


def _literal(text: str) -> str:
    """`text` as an escape-string literal: backslashes and quotes escaped, whatever
    standard_conforming_strings says; NUL cannot be stored in text at all."""
    if "\x00" in text:
        raise ValueError("a setting cannot contain NUL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
