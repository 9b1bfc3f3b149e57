"""Per-request context: who is asking, database access, and request-scoped loaders."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from aiodataloader import DataLoader

from db import tasks as task_queries
from db.engine import Database
from db.errors import DatabaseRejectedInput, DatabaseUnavailable
from db.statements import Connection
from resolvers.auth import Principal, TokenVerifier, bearer_token
from resolvers.domain import Task, task_from_row
from resolvers.errors import FieldError, InvalidInput, ServiceUnavailable, Unauthenticated
from resolvers.live import EventHub, LiveConnection
from resolvers.ratelimit import RateLimiter


@dataclass(slots=True)
class Context:
    """Everything an operation needs about the request it serves."""

    database: Database
    principal: Principal | None
    request_id: str = "-"
    # Called on each database outage; main.py counts them in the metrics.
    on_database_unavailable: Callable[[], None] | None = None
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


@dataclass(frozen=True, slots=True)
class ContextFactory:
    """Builds each request's Context from its Authorization header; shared by both doors."""

    database: Database
    verifier: TokenVerifier
    on_database_unavailable: Callable[[], None] | None = None
    # None: no rate limit, and no cost on the request path.
    rate_limiter: RateLimiter | None = None
    hub: EventHub | None = None

    async def __call__(self, *, authorization: str | None, request_id: str | None) -> Context:
        """A context whose principal is None when no token was sent; a bad token raises."""
        token = bearer_token(authorization)
        principal = None if token is None else await self.verifier.verify(token)
        if principal is not None and self.rate_limiter is not None:
            self.rate_limiter.take(principal.user_id)
        return Context(
            database=self.database,
            principal=principal,
            request_id=request_id or uuid.uuid4().hex,
            on_database_unavailable=self.on_database_unavailable,
            hub=self.hub,
        )
