"""Database failures translated at the storage boundary into two kinds callers can act on."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)


class DatabaseUnavailable(Exception):
    """The database cannot be reached or did not answer in time; the request may be retried."""


class DatabaseRejectedInput(Exception):
    """The database refused a value (encoding, range) that validation should have caught."""


# Errors that mean "the server is gone, restarting, overloaded or too slow", as opposed
# to errors in what we asked of it.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.PostgresConnectionError,
    sa_exc.TimeoutError,
    # A standby, or a primary demoted since the connection was opened: no write can succeed
    # there until a failover ends, so it is an outage like the others, not a bug of ours.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
    # No host of a multi-host URL is a primary (yet): a failover is under way.
    asyncpg.exceptions.TargetServerAttributeNotMatched,
)
_REJECTED_INPUT = (asyncpg.exceptions.DataError, OverflowError, UnicodeEncodeError)


def translate(error: BaseException) -> BaseException:
    """The exception to raise instead of `error`: one of ours, or `error` itself."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return DatabaseUnavailable(type(error.orig).__name__)
        # SQLAlchemy wraps the driver's exception; the asyncpg one is the wrapper's cause.
        driver_error = error.orig.__cause__ if error.orig is not None else None
        return _translate_driver_error(driver_error or error.orig or error) or error
    return _translate_driver_error(error) or error


def _translate_driver_error(error: BaseException) -> Exception | None:
    if isinstance(error, _UNAVAILABLE):
        return DatabaseUnavailable(type(error).__name__)
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        # A connection caught between the server's goodbye and the socket closing reports
        # "another operation is in progress"; it is discarded like any broken connection.
        log.warning("database connection in an unexpected state, discarded: %s", error)
        return DatabaseUnavailable(type(error).__name__)
    if isinstance(error, _REJECTED_INPUT):
        return DatabaseRejectedInput(str(error))
    return None
