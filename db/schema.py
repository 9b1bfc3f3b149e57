"""Whether the database's schema is at the Alembic revision this code was written for."""

from __future__ import annotations

from dataclasses import dataclass

from db.errors import SchemaNotCurrent
from db.statements import Connection


@dataclass(frozen=True, slots=True)
class ExpectedSchema:
    """The revision the code needs, every revision it knows, and how an operator migrates."""

    head: str
    known: frozenset[str]
    # The command that applies the migrations, as the README spells it, for messages.
    migrate_command: str

    def mismatch(self, found: str | None) -> SchemaNotCurrent | None:
        """None when `found` is the head; otherwise what is wrong and what to run.

        A revision the code does not know was made by newer code: the database is ahead.
        """
        needed = self.head
        if found == needed:
            return None
        if found is None:
            cause = f"the database has no schema (no alembic_version); the code needs {needed}"
        elif found in self.known:
            cause = f"the database schema is at revision {found}, behind the code's {needed}"
        else:
            return SchemaNotCurrent(
                f"the database schema is at revision {found}, which this code does not know "
                f"(it needs {needed}): newer code migrated it",
                f"run that code, or downgrade with it (`{self.migrate_command} {needed} --down`)",
                ahead=True,
            )
        return SchemaNotCurrent(cause, f"run `{self.migrate_command}`", ahead=False)


async def read_revision(conn: Connection) -> str | None:
    """The database's revision, None before the first migration.

    In a transaction of its own, so that a transaction pooler keeps both statements (and
    the driver's prepare and execute of each) on one server.
    """
    async with conn.transaction():
        if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
            return None
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    return None if revision is None else str(revision)
