"""Errors the domain raises; each door (GraphQL, REST) renders them in its own dialect."""

from __future__ import annotations

from dataclasses import dataclass

from resolvers.domain import Task


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid input field: where it is, what is wrong, and a machine-readable kind."""

    # "" for the request as a whole, or the whole part named by `location`.
    field: str
    message: str
    kind: str
    # Where the field was sent, for doors that say so (REST's `loc`): body, path or query.
    location: str = "body"


class AppError(Exception):
    """An error whose meaning is known: it has a stable code and an HTTP status."""

    code = "INTERNAL"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AppError):
    """No credentials, or credentials that did not verify."""

    code = "UNAUTHENTICATED"
    status = 401


class Forbidden(AppError):
    """Authenticated, but asking for someone else's data."""

    code = "FORBIDDEN"
    status = 403


class TaskNotFound(AppError):
    """No task with this id belongs to the viewer (whether or not it exists for someone else)."""

    code = "NOT_FOUND"
    status = 404

    def __init__(self, task_id: int | str) -> None:
        super().__init__(f"Task {task_id} not found")
        self.task_id = task_id


class VersionConflict(AppError):
    """The task changed since the version the client last saw."""

    code = "VERSION_CONFLICT"
    status = 412

    def __init__(self, *, expected: int, task: Task) -> None:
        super().__init__(
            f"Task {task.id} was modified: expected version {expected}, "
            f"current version is {task.version}"
        )
        self.expected = expected
        self.task = task


class InvalidInput(AppError):
    """Input that breaks the validation rules; carries every failing field at once."""

    code = "BAD_USER_INPUT"
    status = 422

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(e.message for e in errors) or "Invalid input")
        self.errors = errors


class TooManyTasks(InvalidInput):
    """A bulk change matched more tasks than one request may change: nothing was changed."""

    def __init__(self, max_tasks: int) -> None:
        super().__init__(
            [
                FieldError(
                    "",
                    f"More than {max_tasks} tasks match; one request changes at most "
                    f"{max_tasks} (BULK_MAX_TASKS), and none were changed: narrow the filter",
                    "too_many_tasks",
                    location="query",
                )
            ]
        )
        self.max_tasks = max_tasks


class IdempotencyKeyReused(AppError):
    """The Idempotency-Key was used before with a different request: nothing was done."""

    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request; "
            "use a new key for a new request"
        )


class MalformedIdempotencyKey(AppError):
    """An Idempotency-Key (header or argument) that is not a key this API accepts."""

    code = "IDEMPOTENCY_KEY_INVALID"
    status = 400


class ServiceMisconfigured(AppError):
    """The service's own setup is at fault (its database lacks a table, a function, a role or
    a privilege): neither the input nor a retry can help. The log names the cause and the fix;
    clients learn only that it is not their fault."""

    code = "SERVICE_MISCONFIGURED"
    status = 500

    def __init__(self) -> None:
        super().__init__("The service is misconfigured; its operators can find why in its log")


class RetryLater(AppError):
    """Refused for now; the client may try again after `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    """The viewer sent more requests than the rate limit allows."""

    code = "RATE_LIMITED"
    status = 429


class ServiceUnavailable(RetryLater):
    """A dependency (the database, the JWKS endpoint) cannot be reached right now."""

    code = "SERVICE_UNAVAILABLE"
    status = 503


class TooManyConnections(RetryLater):
    """The viewer already has as many live connections on this worker as it allows."""

    code = "TOO_MANY_CONNECTIONS"
    status = 429


class TooManySubscriptions(AppError):
    """This connection already carries as many subscriptions as one may."""

    code = "TOO_MANY_SUBSCRIPTIONS"
    status = 429


class StreamEnded(AppError):
    """The server ended a live stream; the client resumes after `cursor` (its last event)."""

    code = "STREAM_ENDED"
    status = 503

    def __init__(self, message: str, *, cursor: str) -> None:
        super().__init__(message)
        self.cursor = cursor


class TokenExpired(StreamEnded):
    """The token the stream was opened with expired: resume with a fresh one."""

    code = "TOKEN_EXPIRED"
    status = 401


class SlowConsumer(StreamEnded):
    """The client read too slowly: more events waited for it than the backlog allows."""

    code = "SLOW_CONSUMER"


class ShuttingDown(StreamEnded):
    """This server process is stopping; another will serve the resumed stream."""

    code = "SHUTTING_DOWN"
