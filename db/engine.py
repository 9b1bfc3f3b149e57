"""The async engine: pool sizing, bounded waits, pooler-safe statements, error translation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.errors import DatabaseUnavailable, translate
from db.statements import Connection
from db.url import is_pooler_host, translate_url

# Engine execution option recording that connections go through a transaction-pooling PgBouncer.
_TRANSACTION_POOLED = "taskql_transaction_pooled"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """How to reach PostgreSQL and how long to wait for it."""

    url: str
    pool_size: int = 20
    max_overflow: int = 0
    pool_timeout_seconds: float = 5.0
    connect_timeout_seconds: float = 5.0
    statement_timeout_seconds: float = 5.0
    # True behind a transaction-pooling PgBouncer (Neon's -pooler host); None: detect from host.
    pooler: bool | None = None
    echo: bool = False


def create_engine(config: DatabaseConfig) -> AsyncEngine:
    """An engine whose connections fail fast instead of hanging when the database is gone."""
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
        connect_args["prepared_statement_cache_size"] = 0
        connect_args["prepared_statement_name_func"] = _unique_statement_name
    else:
        timeout_ms = int(config.statement_timeout_seconds * 1000)
        server_settings.setdefault("statement_timeout", str(timeout_ms))
    if server_settings:
        connect_args["server_settings"] = server_settings
    engine = create_async_engine(
        target.url,
        connect_args=connect_args,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout_seconds,
        pool_recycle=300,
        echo=config.echo,
        execution_options={_TRANSACTION_POOLED: pooled},
    )
    event.listen(engine.sync_engine, "checkout", _replace_if_closed)
    return engine


def _replace_if_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out no connection the server has closed (a restart, Neon suspending its compute).

    asyncpg marks a connection closed as soon as the server hangs up, so this check costs
    no round trip, where SQLAlchemy's pre-ping costs three on every checkout; the pool
    replaces the connection when this raises.
    """
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def _begin(scope: RowScope | None) -> str:
    """BEGIN, and the settings that name the owner, as one simple-protocol round trip.

    The settings are transaction-local, so they end with it (and survive PgBouncer's
    transaction pooling). The values are literals because a multi-statement string cannot
    take parameters; `_literal` makes any text safe to embed.
    """
    if scope is None:
        return "BEGIN"
    settings = [f"set_config('app.user_id', {_literal(scope.owner_id)}, true)"]
    if scope.role is not None:
        settings.append(f"set_config('role', {_literal(scope.role)}, true)")
    return "BEGIN; SELECT " + ", ".join(settings)


def _literal(text: str) -> str:
    """`text` as an escape-string literal: backslashes and quotes escaped, whatever
    standard_conforming_strings says; NUL cannot be stored in text at all."""
    if "\x00" in text:
        raise ValueError("a setting cannot contain NUL")
    return "E'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unique_statement_name() -> str:
    return f"__taskql_{uuid.uuid4().hex}__"


@dataclass(frozen=True, slots=True)
class RowScope:
    """Whose rows an operation may see, enforced by PostgreSQL's row-level security."""

    owner_id: str
    # Acted as for the transaction, so a login that bypasses row-level security is bound too.
    role: str | None = None


@asynccontextmanager
async def connect(engine: AsyncEngine, scope: RowScope | None = None) -> AsyncIterator[Connection]:
    """A pooled asyncpg connection whose work is committed when the block exits.

    Without a scope and without a pooler it is in autocommit mode: every task operation is
    one statement, so each is atomic and durable when it returns, in one round trip.
    Otherwise the operation runs in one transaction: its settings name the owner for
    row-level security, and behind a transaction-pooling PgBouncer a transaction pins one
    server (the driver's prepare and execute are separate round trips the pooler could
    otherwise send to different servers). Driver errors come out translated.
    """
    transactional = scope is not None or engine.get_execution_options()[_TRANSACTION_POOLED]
    try:
        async with engine.connect() as pooled:
            raw: Connection = (await pooled.get_raw_connection()).driver_connection
            try:
                if transactional:
                    await raw.execute(_begin(scope))
                yield raw
                if transactional:
                    await raw.execute("COMMIT")
            except BaseException as error:
                await _release_after(error, pooled, raw, transactional=transactional)
                raise
    except Exception as error:
        translated = translate(error)
        if translated is error:
            raise
        raise translated from error


async def _release_after(
    error: BaseException, pooled: AsyncConnection, raw: Connection, *, transactional: bool
) -> None:
    """Leave the connection fit for the next request, or keep it out of the pool.

    After an outage, a timeout or a cancellation the connection may be mid-statement or
    gone, so it is discarded; after an ordinary error (a domain error, a refused value)
    only the transaction, if any, is rolled back.
    """
    if isinstance(error, Exception) and not isinstance(translate(error), DatabaseUnavailable):
        if not transactional:
            return
        try:
            await raw.execute("ROLLBACK")
            return
        except Exception:  # noqa: S110 -- the connection is discarded just below
            pass
    await pooled.invalidate()


async def ping(engine: AsyncEngine) -> None:
    """Return when the database answers `SELECT 1`; raise DatabaseUnavailable when it cannot."""
    async with connect(engine) as conn:
        await conn.fetchval("SELECT 1")
