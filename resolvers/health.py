"""Whether this process can serve requests: the answer /readyz gives a load balancer."""

from __future__ import annotations

import logging

from db.engine import Database
from db.errors import DatabaseMisconfigured, DatabaseUnavailable

log = logging.getLogger(__name__)


async def unready_reason(database: Database) -> str | None:
    """None when the database answers and operations are not refused; otherwise why this
    process cannot serve, in a few words (`database unreachable`, `schema behind`, ...)."""
    try:
        await database.ping()
    except DatabaseUnavailable:
        return "database unreachable"
    except DatabaseMisconfigured as error:
        return error.reason
    except Exception:
        # Still an answer a load balancer can act on, never a 500.
        log.exception("readiness check failed unexpectedly")
        return "database check failed"
    return None
