"""Connections to PostgreSQL: the asyncpg pool operations use, and the engine migrations use.

The pool connects to the hosts of a multi-host URL one at a time itself
(`_connect_host_by_host`), where asyncpg would let a hanging first host use up the connect
timeout of them all.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from db.errors import (
    DatabaseMisconfigured,
    DatabaseUnavailable,
    PoolerNotAnnounced,
    refused_startup_parameter,
    role_missing,
    translate,
)
from db.pooler import behind_transaction_pooler
from db.schema import ExpectedSchema, read_revision
from db.statements import Connection
from db.url import is_pooler_host, translate_url

log = logging.getLogger(__name__)


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
    # The schema revision operations need, checked at the first contact; None: unchecked.
    schema: ExpectedSchema | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """Where to connect and with which asyncpg connect() keywords."""

    dsn: str
    sqlalchemy_url: str
    connect_args: dict[str, Any] = field(default_factory=dict)
    pooled: bool = False
    hosts: tuple[tuple[str, int], ...] = ()


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
    return _Target(dsn, target.url, connect_args, pooled, target.hosts)


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
Upgrade = Callable[[], Awaitable[None]]

# Seconds a refusal (schema not current, role missing, login refused) is answered from memory
# before a new connection checks again: recovery within seconds, no connection storm meanwhile.
RECHECK_SECONDS = 2.0
# Seconds between two log lines about the same misconfiguration met by operations.
_REPORT_EVERY_SECONDS = 60.0
# Seconds before a failed migration on start is tried again.
_UPGRADE_RETRY_SECONDS = 30.0


class _Retired(Exception):
    """A connection made for the pool this process has just left for one in pooler mode."""


@dataclass(frozen=True, slots=True)
class _Mode:
    """How operations reach the server: the pool, and what opens each one's transaction."""

    pool: asyncpg.Pool
    pooled: bool
    # None: autocommit.
    begin: str | None


class Database:
    """One process's pool of asyncpg connections, failing fast when PostgreSQL is away.

    asyncpg's pool replaces connections the server has closed (a restart, Neon suspending
    its compute) when they are next acquired, at no round trip, and rolls back a transaction
    left open; a session's only state of ours is the role, so its RESET round trip is skipped.

    The first connection that reaches the server checks, once per process, that no
    transaction pooler hides behind a URL that did not announce one (if one does, the pool
    is rebuilt in pooler mode and the log says so), and that the schema is at the code's
    revision. While the schema is not, or the role or the login is refused, operations are
    refused with that error from memory, and a new connection checks again every
    RECHECK_SECONDS: the process recovers by itself once an operator has fixed it.
    """

    def __init__(self, config: DatabaseConfig, upgrade: Upgrade | None) -> None:
        self._config = config
        self._upgrade = upgrade
        # asyncpg's pool queues waiters in an asyncio.Queue, where a task that asks just as a
        # connection comes back takes it ahead of those already waiting, who then re-queue at
        # the back: under saturation some requests starve into the timeout. This semaphore
        # serves waiters first come, first served.
        self._turns = asyncio.Semaphore(config.pool_size)
        self._acquire_timeout = config.pool_timeout_seconds
        self._statement_loggers: list[StatementLogger] = []
        self._mode: _Mode
        # DB_POOLER=auto on a host whose name does not say: the first connection finds out.
        self._pooler_unknown = config.pooler is None and not _target(config).pooled
        self._pooler_reported = False
        self._schema_unchecked = config.schema is not None
        self._first_contact = asyncio.Lock()
        self._switching = asyncio.Lock()
        self._refusal: DatabaseMisconfigured | None = None
        self._refused_until = 0.0
        self._reported: dict[str, float] = {}
        self._upgrading: asyncio.Task[None] | None = None
        self._upgrade_failed_at = -_UPGRADE_RETRY_SECONDS
        self._retiring: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, config: DatabaseConfig, *, upgrade: Upgrade | None = None) -> Database:
        """A pool that connects lazily, so the process starts while the database is down.

        `upgrade`, when given, migrates the database; it runs, in the background, when the
        schema is found behind (MIGRATE_ON_START, for a database unreachable at start).
        """
        database = cls(config, upgrade)
        database._mode = await database._start_pool(_target(config))
        return database

    async def _start_pool(self, target: _Target) -> _Mode:
        config = self._config
        # A direct connection takes the role for its whole session, at no cost per operation;
        # behind a pooler each transaction takes it, as sessions are shared with others.
        session_role = None if target.pooled else config.role
        pool = await asyncpg.create_pool(
            target.dsn,
            min_size=0,
            max_size=config.pool_size,
            max_inactive_connection_lifetime=300,
            init=partial(self._prepare, pooled=target.pooled, role=session_role),
            reset=_keep_session,
            connect=partial(_connect_host_by_host, target.hosts) if target.hosts else None,
            **target.connect_args,
        )
        return _Mode(pool, target.pooled, _begin(config.role) if target.pooled else None)

    async def close(self) -> None:
        if self._upgrading is not None:
            self._upgrading.cancel()  # its transaction rolls back with its connection
        pending = [*self._retiring, *([self._upgrading] if self._upgrading else [])]
        await asyncio.gather(*pending, return_exceptions=True)
        await self._mode.pool.close()

    @property
    def size(self) -> int:
        """Connections open now."""
        return int(self._mode.pool.get_size())

    @property
    def idle(self) -> int:
        """Open connections not in use."""
        return int(self._mode.pool.get_idle_size())

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
        translated: DatabaseUnavailable, DatabaseRejectedInput, DatabaseMisconfigured.
        """
        refusal = self._refusal
        if refusal is not None and time.monotonic() < self._refused_until:
            raise refusal.with_traceback(None)
        mode = self._mode
        ready = False
        try:
            async with self._turn():
                try:
                    conn = await mode.pool.acquire()
                except Exception as error:
                    conn, mode = await self._acquire_again(mode, error)
                try:
                    for logger in self._statement_loggers:
                        conn.add_query_logger(logger)
                    try:
                        if mode.begin is not None:
                            await _open_transaction(conn, mode.begin, self._config.role)
                        ready = True
                        if self._refusal is not None:
                            self._usable_again()
                        yield conn
                        if mode.begin is not None:
                            await conn.execute("COMMIT")
                    except BaseException as error:
                        await _recover(conn, error, transactional=mode.begin is not None)
                        raise
                    finally:
                        for logger in self._statement_loggers:
                            conn.remove_query_logger(logger)
                finally:
                    await mode.pool.release(conn)
        except Exception as error:
            translated = translate(error)
            if isinstance(translated, PoolerNotAnnounced):
                await self._pooler_found(translated, mode)
            elif isinstance(translated, DatabaseMisconfigured):
                # Before the operation ran, it concerns every operation; during, this one.
                if ready:
                    self._report(translated)
                else:
                    self._refuse(translated)
            if translated is error:
                raise
            raise translated from error

    async def _acquire_again(self, mode: _Mode, error: Exception) -> tuple[Connection, _Mode]:
        """A connection of the pool this process uses now, after `mode`'s failed with `error`:
        because the process moved to pooler mode meanwhile, or the failure proved it must."""
        while True:
            auto = not mode.pooled and self._config.pooler is None
            if auto and refused_startup_parameter(error):
                # Nothing ran yet, so this request can go on in pooler mode.
                await self._switch_to_pooler(str(error))
            elif not isinstance(error, _Retired) and mode is self._mode:
                raise error
            mode = self._mode
            try:
                return await mode.pool.acquire(), mode
            except Exception as again:
                error = again

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
        """Return when the database answers `SELECT 1`; raise DatabaseUnavailable if not, or
        DatabaseMisconfigured while operations are refused."""
        async with self.connect() as conn:
            await conn.fetchval("SELECT 1")

    async def _prepare(self, conn: Connection, *, pooled: bool, role: str | None) -> None:
        """Ready a new connection of the pool in pooler mode (`pooled`) or not: the first
        contact's checks, then the role of the session."""
        if self._pooler_unknown or self._schema_unchecked:
            async with self._first_contact:
                if self._pooler_unknown and not pooled:
                    await self._find_pooler(conn)
                if self._schema_unchecked and pooled is self._mode.pooled:
                    await self._check_schema(conn)
        if pooled is not self._mode.pooled:
            raise _Retired
        if role is not None:
            try:
                await _act_as(role, conn)
            except asyncpg.exceptions.DataError as error:
                raise role_missing(role, error) from error

    async def _find_pooler(self, conn: Connection) -> None:
        target = _target(self._config)
        other_args = {**target.connect_args, "statement_cache_size": 0}
        open_other = (
            partial(_connect_host_by_host, target.hosts, target.dsn, **other_args)
            if target.hosts
            else partial(asyncpg.connect, target.dsn, **other_args)
        )
        if await behind_transaction_pooler(conn, open_other):
            await self._switch_to_pooler("two connections were lent the same server session")
        self._pooler_unknown = False

    async def _switch_to_pooler(self, evidence: str) -> None:
        """Talk to the server as to a transaction pooler from now on; the pool in direct mode
        finishes the operations it is running, then closes."""
        async with self._switching:
            if self._mode.pooled:
                return
            retired = self._mode
            self._mode = await self._start_pool(_target(replace(self._config, pooler=True)))
            self._pooler_unknown = False
            closing = asyncio.create_task(retired.pool.close())
            self._retiring.add(closing)
            closing.add_done_callback(self._retiring.discard)
        log.warning(
            "DATABASE_URL leads to a transaction pooler (%s) though DB_POOLER is auto and its "
            "host name has no -pooler: switched to pooler mode. Set DB_POOLER=true to say so",
            evidence,
        )

    async def _pooler_found(self, error: PoolerNotAnnounced, mode: _Mode) -> None:
        """A prepared statement or a setting lost between operations: a pooler after all."""
        if not mode.pooled and self._config.pooler is None:
            await self._switch_to_pooler(error.cause)
        elif not self._pooler_reported:
            # Said once: each such request names another statement, and is retried anyway.
            self._pooler_reported = True
            log.error("%s (DB_POOLER is false; such requests get 503)", error)

    async def _check_schema(self, conn: Connection) -> None:
        expected = self._config.schema
        assert expected is not None
        try:
            found = await read_revision(conn)
        except asyncpg.exceptions.InsufficientPrivilegeError:
            log.warning(
                "DATABASE_URL's user may not read alembic_version, so the schema revision is "
                "not checked: grant it SELECT on that table"
            )
            self._schema_unchecked = False
            return
        mismatch = expected.mismatch(found)
        if mismatch is None:
            self._schema_unchecked = False
            return
        if not mismatch.ahead and self._upgrade is not None:
            self._start_upgrade()
        raise mismatch

    def _start_upgrade(self) -> None:
        if self._upgrading is not None and not self._upgrading.done():
            return
        if time.monotonic() - self._upgrade_failed_at < _UPGRADE_RETRY_SECONDS:
            return
        self._upgrading = asyncio.create_task(self._run_upgrade())

    async def _run_upgrade(self) -> None:
        assert self._upgrade is not None
        log.warning("the database schema is behind: migrating it now (MIGRATE_ON_START)")
        try:
            await self._upgrade()
        except Exception as error:
            self._upgrade_failed_at = time.monotonic()
            log.error("migrating on start failed, trying again later: %s", translate(error))
            return
        self._refused_until = 0.0  # the next operation checks again at once

    def _refuse(self, error: DatabaseMisconfigured) -> None:
        """Answer every operation with `error` for a while; log it when it is news."""
        if self._refusal is None or str(self._refusal) != str(error):
            log.error("%s", error)
        self._refusal = error
        self._refused_until = time.monotonic() + RECHECK_SECONDS

    def _usable_again(self) -> None:
        assert self._refusal is not None
        log.warning("the database is usable again (it was refused: %s)", self._refusal.reason)
        self._refusal = None

    def _report(self, error: DatabaseMisconfigured) -> None:
        """Log what an operation met, once a minute per message: the cause and the fix."""
        now = time.monotonic()
        message = str(error)
        if now - self._reported.get(message, -_REPORT_EVERY_SECONDS) >= _REPORT_EVERY_SECONDS:
            self._reported[message] = now
            log.error("%s", message)


async def _open_transaction(conn: Connection, begin: str, role: str | None) -> None:
    """BEGIN behind a pooler, taking the role: a role the server lacks is misconfiguration."""
    try:
        await conn.execute(begin)
    except asyncpg.exceptions.DataError as error:
        assert role is not None
        raise role_missing(role, error) from error


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
        if isinstance(error, asyncpg.exceptions.ReadOnlySQLTransactionError):
            # Said once per connection: writes keep failing with 503 until a primary answers.
            log.warning(
                "the database server is read-only (a standby?); connection discarded. With "
                "several hosts in DATABASE_URL, add target_session_attrs=read-write"
            )
        conn.terminate()


async def _connect_host_by_host(
    hosts: tuple[tuple[str, int], ...], dsn: str, **connect_args: Any
) -> Connection:
    """A connection to the first of `hosts` that answers and suits the URL's
    target_session_attrs, each host given the whole connect timeout in turn, as libpq does.

    asyncpg bounds its attempt on all the hosts of a URL with one timeout, so a host that
    neither answers nor refuses (a machine that vanished, a server that hangs) uses it up and
    the next host, the promoted primary after a failover, is never tried (asyncpg issue
    #1155). Delete this once asyncpg times hosts out one by one.
    """
    errors: list[Exception] = []
    for host, port in hosts:
        try:
            # Explicit host and port take precedence over the DSN's list.
            return await asyncpg.connect(dsn, host=host, port=port, **connect_args)
        except (
            OSError,
            TimeoutError,
            # What asyncpg's own loop moves on after: a server starting up or shutting down.
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.TargetServerAttributeNotMatched,
        ) as error:
            errors.append(error)
    raise errors[-1]


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
