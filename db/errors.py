"""Database failures translated at the storage boundary into kinds callers can act on."""

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


class DatabaseMisconfigured(Exception):
    """The database is not what this code needs (a table, function or role missing, a
    privilege withheld, a login refused): no request can fix that, an operator must.

    `cause` says what is wrong, in the server's words where it has them, and `fix` what to
    do; both are for the log and /readyz, never for clients.
    """

    # Whether waiting may help, so that clients are told to retry (503) rather than given up
    # on (500): a migration under way, a pool being rebuilt.
    retryable = False

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{cause}: {fix}")
        self.cause = cause
        self.fix = fix

    @property
    def reason(self) -> str:
        """Why this process cannot serve, as /readyz says it."""
        return f"database misconfigured: {self.cause}"


class SchemaNotCurrent(DatabaseMisconfigured):
    """The database's schema revision is not the one this code was written for."""

    retryable = True

    def __init__(self, cause: str, fix: str, *, ahead: bool) -> None:
        super().__init__(cause, fix)
        self.ahead = ahead

    @property
    def reason(self) -> str:
        return "schema ahead" if self.ahead else "schema behind"


class PoolerNotAnnounced(DatabaseMisconfigured):
    """DATABASE_URL leads to a transaction pooler while this process talks to it as to a
    PostgreSQL of its own: prepared statements and session settings do not last there."""

    retryable = True

    @property
    def reason(self) -> str:
        return "transaction pooler not announced"


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

_MIGRATE = (
    "apply the migrations (the `migrate` command, through DATABASE_MIGRATION_URL when set) "
    "and check that DATABASE_URL names the migrated database"
)
# By SQLSTATE: server-side faults that no input causes, each with what fixes it.
_MISCONFIGURED: tuple[tuple[type[Exception], str], ...] = (
    (asyncpg.exceptions.UndefinedTableError, _MIGRATE),
    (asyncpg.exceptions.UndefinedFunctionError, _MIGRATE),
    (asyncpg.exceptions.UndefinedColumnError, _MIGRATE),
    (asyncpg.exceptions.UndefinedObjectError, _MIGRATE),
    (asyncpg.exceptions.InvalidSchemaNameError, _MIGRATE),
    (
        asyncpg.exceptions.InsufficientPrivilegeError,
        "a role lacks a privilege the migrations grant: apply them as the database's owner "
        "(the `migrate` command), or grant it to DB_APP_ROLE or DATABASE_URL's user",
    ),
    (
        asyncpg.exceptions.InvalidCatalogNameError,
        "DATABASE_URL names a database this server does not have: create it or fix the URL",
    ),
    (
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        "the server refused DATABASE_URL's login: check its user and password",
    ),
)
_POOLER_FIX = (
    "DATABASE_URL leads to a transaction pooler (PgBouncer or similar), where prepared "
    "statements and session settings do not last: set DB_POOLER=true"
)
# Both mean the session lost (or shares) the statements it prepared, which only a pooler
# between sessions and servers can cause: asyncpg names its statements uniquely per process.
_LOST_STATEMENTS = (
    asyncpg.exceptions.DuplicatePreparedStatementError,
    asyncpg.exceptions.InvalidSQLStatementNameError,
)


def translate(error: BaseException) -> BaseException:
    """The exception to raise instead of `error`: one of ours, or `error` itself."""
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return DatabaseUnavailable(type(error.orig).__name__)
        # SQLAlchemy wraps the driver's exception; the asyncpg one is the wrapper's cause.
        driver_error = error.orig.__cause__ if error.orig is not None else None
        return _translate_driver_error(driver_error or error.orig or error) or error
    return _translate_driver_error(error) or error


def refused_startup_parameter(error: BaseException) -> bool:
    """Whether `error` is PgBouncer refusing a setting sent at connect (statement_timeout),
    which only a pooler does: PostgreSQL accepts every setting there."""
    return isinstance(
        error, asyncpg.exceptions.ProtocolViolationError
    ) and "unsupported startup parameter" in str(error)


def _translate_driver_error(error: BaseException) -> Exception | None:
    if isinstance(error, _LOST_STATEMENTS):
        return PoolerNotAnnounced(_first_line(error), _POOLER_FIX)
    if refused_startup_parameter(error):
        return PoolerNotAnnounced(
            f"the server refused a connection setting ({_first_line(error)})",
            "set DB_POOLER=true if it is a transaction pooler, or add statement_timeout to "
            "PgBouncer's ignore_startup_parameters if it pools sessions",
        )
    if isinstance(error, _UNAVAILABLE):
        return DatabaseUnavailable(type(error).__name__)
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        # A connection caught between the server's goodbye and the socket closing reports
        # "another operation is in progress"; it is discarded like any broken connection.
        log.warning("database connection in an unexpected state, discarded: %s", error)
        return DatabaseUnavailable(type(error).__name__)
    if "row-level security" in str(error):
        # The same SQLSTATE as a missing privilege, but the policy refused a row we sent:
        # a bug of ours to be logged with its traceback, not a setup to fix.
        return None
    for kind, fix in _MISCONFIGURED:
        if isinstance(error, kind):
            return DatabaseMisconfigured(_first_line(error), fix)
    if isinstance(error, _REJECTED_INPUT):
        return DatabaseRejectedInput(str(error))
    return None


def role_missing(role: str, error: BaseException) -> DatabaseMisconfigured:
    """The error to raise when taking `role` failed: the role is not on this server (SET ROLE
    reports that as an invalid value, SQLSTATE 22023, the class of input errors)."""
    return DatabaseMisconfigured(
        _first_line(error),
        f"DB_APP_ROLE is {role!r}, a role the migrations create: apply them (the `migrate` "
        "command; a database restored on another server needs its roles too), or set "
        "DB_APP_ROLE to an existing role, or RLS=false",
    )


def _first_line(error: BaseException) -> str:
    # asyncpg appends hints and details on further lines; the log line stays one line.
    return str(error).split("\n", 1)[0]
