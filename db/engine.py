"""The async engine: pool sizing, bounded waits, pooler-safe statements, error translation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db.errors import translate
from db.url import is_pooler_host, translate_url

# Engine execution option recording that connections go through a transaction-pooling PgBouncer.
_TRANSACTION_POOLED = "taskql_transaction_pooled"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """How to reach PostgreSQL and how long to wait for it."""

    url: str
    pool_size: int = 10
    max_overflow: int = 10
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
    return create_async_engine(
        target.url,
        connect_args=connect_args,
        pool_size=config.pool_size,
        max_overflow=config.max_overflow,
        pool_timeout=config.pool_timeout_seconds,
        # Neon suspends idle computes and restarts drop connections: test before use.
        pool_pre_ping=True,
        pool_recycle=300,
        echo=config.echo,
        execution_options={_TRANSACTION_POOLED: pooled},
    )


def _scope_statement(scope: RowScope) -> Select[Any]:
    # One round trip: both settings end with the transaction.
    settings = [func.set_config("app.user_id", scope.owner_id, True)]
    if scope.role is not None:
        settings.append(func.set_config("role", scope.role, True))
    return select(*settings)


def _unique_statement_name() -> str:
    return f"__taskql_{uuid.uuid4().hex}__"


@dataclass(frozen=True, slots=True)
class RowScope:
    """Whose rows an operation may see, enforced by PostgreSQL's row-level security."""

    owner_id: str
    # Acted as for the transaction, so a login that bypasses row-level security is bound too.
    role: str | None = None


@asynccontextmanager
async def connect(
    engine: AsyncEngine, scope: RowScope | None = None
) -> AsyncIterator[AsyncConnection]:
    """A pooled connection whose work is committed when the block exits, with errors translated.

    Without a scope and without a pooler it is in autocommit mode: every task operation is
    one statement, so each is atomic and durable when it returns, without BEGIN/COMMIT round
    trips. Otherwise the operation runs in one transaction: transaction-local settings name
    the owner for row-level security, and behind a transaction-pooling PgBouncer a
    transaction pins one server (the driver's prepare and execute are separate round trips
    the pooler could otherwise send to different servers).
    """
    try:
        async with engine.connect() as conn:
            if scope is None and not engine.get_execution_options()[_TRANSACTION_POOLED]:
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
                return
            async with conn.begin():
                if scope is not None:
                    await conn.execute(_scope_statement(scope))
                yield conn
    except Exception as error:
        translated = translate(error)
        if translated is error:
            raise
        raise translated from error


async def ping(engine: AsyncEngine) -> None:
    """Return when the database answers `SELECT 1`; raise DatabaseUnavailable when it cannot."""
    async with connect(engine) as conn:
        await conn.execute(text("SELECT 1"))
