"""Per-request context: who is asking, database access, and request-scoped loaders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from aiodataloader import DataLoader

from db import tasks as task_queries
from db.engine import Database
from db.errors import (
    DatabaseMisconfigured,
    DatabaseRejectedInput,
    DatabaseUnavailable,
    PoolerNotAnnounced,
)
from db.statements import Connection
from resolvers.auth import Principal, TokenVerifier, bearer_token
from resolvers.domain import Task, task_from_row
from resolvers.errors import (
    FieldError,
    InvalidInput,
    ServiceMisconfigured,
    ServiceUnavailable,
    Unauthenticated,
)
from resolvers.idempotency import key_from_header
from resolvers.live import EventHub, LiveConnection

# Most tasks one bulk change may touch (BULK_MAX_TASKS): one statement holds their locks and
# writes their events, so it must finish well within the statement timeout.
DEFAULT_BULK_MAX_TASKS = 1000


@dataclass(slots=True)
class Context:
    """Everything an operation needs about the request it serves."""

    database: Database
    principal: Principal | None
    request_id: str = "-"
    # Called on each database outage; main.py counts them in the metrics.
    on_database_unavailable: Callable[[], None] | None = None
    # The request's Idempotency-Key header, checked; each door decides which writes it covers.
    idempotency_key: str | None = None
    bulk_max_tasks: int = DEFAULT_BULK_MAX_TASKS
    # This worker's live updates, told of every committed write; None: nobody listens.
    hub: EventHub | None = None
    # Set by a write that replayed the stored outcome of an earlier request with the same
    # idempotency key instead of writing again; the doors mark such responses as replays.
    replayed: bool = field(default=False, init=False)
    _task_loader: DataLoader[int, Task | None] | None = field(default=None, init=False)

    @property
    def viewer(self) -> Principal:
        """The authenticated caller; operations call this before touching data."""
        if self.principal is None:
            raise Unauthenticated("Authentication required: send Authorization: Bearer <token>")
        return self.principal

    @property
    def task_loader(self) -> DataLoader[int, Task | None]:
        """Batches lookups by id within this request; never shared across requests or users."""
        if self._task_loader is None:
            owner_id = self.viewer.user_id
            self._task_loader = DataLoader(batch_load_fn=partial(self._load_tasks, owner_id))
        return self._task_loader

    async def _load_tasks(self, owner_id: str, task_ids: list[int]) -> list[Task | None]:
        async with self.connection() as conn:
            found = await task_queries.select_tasks_by_id(
                conn, owner_id=owner_id, task_ids=task_ids
            )
        by_id = {task.id: task for task in map(task_from_row, found)}
        return [by_id.get(task_id) for task_id in task_ids]

    def live_connection(self) -> LiveConnection:
        """A live connection of the viewer's (for subscriptions); refused past the limits."""
        if self.hub is None:
            raise ServiceUnavailable("Live updates are not available here", retry_after=60)
        return self.hub.connect(self.viewer)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection for one operation, with storage failures turned into domain errors."""
        try:
            async with self.database.connect() as conn:
                yield conn
        except DatabaseUnavailable as error:
            if self.on_database_unavailable is not None:
                self.on_database_unavailable()
            raise ServiceUnavailable(
                "The database is unavailable; retry shortly", retry_after=2
            ) from error
        except DatabaseRejectedInput as error:
            raise InvalidInput(
                [FieldError("body", "Input contains a value that cannot be stored", "value_error")]
            ) from error
        except DatabaseMisconfigured as error:
            # The database logged the cause and the fix; clients get neither.
            raise _misconfigured(error) from error


def _misconfigured(error: DatabaseMisconfigured) -> ServiceMisconfigured | ServiceUnavailable:
    """500 when only an operator can help; 503 when waiting may (a migration under way, the
    pool moving to pooler mode)."""
    if not error.retryable:
        return ServiceMisconfigured()
    if isinstance(error, PoolerNotAnnounced):
        return ServiceUnavailable("The database could not run this request; retry shortly")
    return ServiceUnavailable(
        "The service is waiting for its database schema to be upgraded; retry shortly",
        retry_after=5,
    )


class Admission(Protocol):
    """What the factory asks of a rate limiter (resolvers.ratelimit has two)."""

    async def admit(self, user_id: str) -> None:
        """Return when the user may make one more request; raise RateLimited if not."""


@dataclass(frozen=True, slots=True)
class ContextFactory:
    """Builds each request's Context from its Authorization header; shared by both doors."""

    database: Database
    verifier: TokenVerifier
    on_database_unavailable: Callable[[], None] | None = None
    # None: no rate limit, and no cost on the request path.
    rate_limiter: Admission | None = None
    bulk_max_tasks: int = DEFAULT_BULK_MAX_TASKS
    hub: EventHub | None = None

    async def __call__(
        self,
        *,
        authorization: str | None,
        request_id: str | None,
        idempotency_key: Sequence[str] = (),
    ) -> Context:
        """A context whose principal is None when no token was sent; a bad token raises, and so
        does a malformed Idempotency-Key (`idempotency_key`: the header's field lines) sent
        with a token. Without one, the key is not read: the caller must authenticate first."""
        token = bearer_token(authorization)
        principal = None if token is None else await self.verifier.verify(token)
        if principal is not None and self.rate_limiter is not None:
            await self.rate_limiter.admit(principal.user_id)
        return Context(
            database=self.database,
            principal=principal,
            request_id=request_id or uuid.uuid4().hex,
            on_database_unavailable=self.on_database_unavailable,
            idempotency_key=None if principal is None else key_from_header(idempotency_key),
            bulk_max_tasks=self.bulk_max_tasks,
            hub=self.hub,
        )
