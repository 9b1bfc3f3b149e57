"""Whether this process can serve requests: the answer /readyz gives a load balancer."""

from __future__ import annotations

from db.engine import Database
from db.errors import DatabaseUnavailable


async def unready_reason(database: Database) -> str | None:
    """None when the database answers; otherwise why this process cannot serve."""
    try:
        await database.ping()
    except DatabaseUnavailable:
        return "database unreachable"
    return None
