"""SQL compiled once from SQLAlchemy Core and run directly on the asyncpg connection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncpg import Connection
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["Connection", "Statement", "compiled"]

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Statement:
    """A compiled statement: its SQL text and how to turn named values into positional ones.

    Building and compiling a Core statement costs far more than running it on a local
    database, so each one is compiled once (per shape) and reused; asyncpg caches the
    server-side prepared statement by its text.
    """

    sql: str
    names: tuple[str, ...]
    # Values of parameters the statement carries itself, such as the 1 of `version + 1`.
    constants: dict[str, Any]

    def arguments(self, values: dict[str, Any]) -> list[Any]:
        constants = self.constants
        return [values[name] if name in values else constants[name] for name in self.names]

    async def fetch(self, conn: Connection, **values: Any) -> list[Any]:
        return list(await conn.fetch(self.sql, *self.arguments(values)))

    async def fetchrow(self, conn: Connection, **values: Any) -> Any:
        return await conn.fetchrow(self.sql, *self.arguments(values))

    async def fetchval(self, conn: Connection, **values: Any) -> Any:
        return await conn.fetchval(self.sql, *self.arguments(values))


def compiled(statement: ClauseElement) -> Statement:
    """The statement compiled for asyncpg, with `$n` placeholders in a known order."""
    compiled_statement = statement.compile(dialect=_DIALECT)
    assert isinstance(compiled_statement, SQLCompiler)
    names = tuple(compiled_statement.positiontup or ())
    constants = {
        name: bind.value
        for bind, name in compiled_statement.bind_names.items()
        if not bind.required
    }
    return Statement(str(compiled_statement), names, constants)
