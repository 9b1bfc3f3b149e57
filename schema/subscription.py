"""Root Subscription: the viewer's task events, over a WebSocket or SSE (schema/streams.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import strawberry
from graphql import ExecutionResult, GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from resolvers.context import ContextFactory
from resolvers.errors import AppError, StreamEnded
from resolvers.events import TaskEvent as DomainTaskEvent
from resolvers.live import LiveConnection
from resolvers.streams import EventStream
from schema.extensions import MASKED_MESSAGE
from schema.types import Task, as_graphql
from schema.websocket import CloseSocket, close_for

log = logging.getLogger(__name__)

ONLY_SUBSCRIPTIONS = (
    "Send queries and mutations over HTTP (POST /graphql); streams carry subscriptions"
)


@strawberry.enum(description="What happened.")
class TaskEventKind(Enum):
    CREATED = "created"
    UPDATED = "updated"
    COMPLETION_TOGGLED = "completion_toggled"
    DELETED = "deleted"
    RESYNC = strawberry.enum_value(
        "resync",
        description="Events after your cursor are no longer kept: fetch your tasks again, "
        "then carry on from this event's cursor.",
    )


@strawberry.type(description="A change to one of your tasks.")
class TaskEvent:
    kind: TaskEventKind
    cursor: str = strawberry.field(
        description="Send it back as `after` to resume right after this event."
    )
    task_id: strawberry.ID | None = strawberry.field(description="Null for a resync.")
    task: Task | None = strawberry.field(
        description="The task as this change left it; null for a deletion and a resync."
    )
    version: int | None = strawberry.field(
        description="The task's version after the change (a deletion's: the last one)."
    )
    recorded_at: datetime | None = strawberry.field(description="When the change was made.")


def as_graphql_event(event: DomainTaskEvent) -> TaskEvent:
    """The event as GraphQL serves it; the same object for every stream that receives the
    same domain event, so that the executor runs its selection once for them all."""
    converted = _CONVERTED.get(id(event))
    if converted is not None and converted[0] is event:
        return converted[1]
    served = _converted(event)
    _CONVERTED[id(event)] = (event, served)
    if len(_CONVERTED) > _KEPT_CONVERSIONS:
        del _CONVERTED[next(iter(_CONVERTED))]
    return served


# The latest conversions, each with its domain event so that the event's id is not reused
# while the entry lives.
_KEPT_CONVERSIONS = 256
_CONVERTED: dict[int, tuple[DomainTaskEvent, TaskEvent]] = {}


def _converted(event: DomainTaskEvent) -> TaskEvent:
    return TaskEvent(
        kind=TaskEventKind(event.kind),
        cursor=event.cursor,
        task_id=None if event.task_id is None else strawberry.ID(str(event.task_id)),
        task=None if event.task is None else as_graphql(event.task),
        version=event.version,
        recorded_at=event.recorded_at,
    )


@dataclass(slots=True)
class StreamContext:
    """A streaming request's context: the viewer's live connection, once authenticated."""

    request_id: str
    live: LiveConnection | None = None
    # Over WebSocket: what verifies connection_init's token, and closes the socket.
    factory: ContextFactory | None = None
    close: CloseSocket | None = None
    # Over WebSocket: the timer that closes the socket when the token expires, and the task
    # closing it then.
    expiry: asyncio.TimerHandle | None = None
    closing: asyncio.Future[None] | None = None
    # What Strawberry's graphql-transport-ws handler puts here: connection_init's payload.
    connection_params: dict[str, object] | None = None

    @property
    def viewer_id(self) -> str | None:
        """Whose events this stream carries (the executor shares results per viewer)."""
        return None if self.live is None else self.live.principal.user_id


Info = strawberry.Info[StreamContext, None]


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Your task events: with `after`, first every event after that cursor "
        "(in order, each once; a RESYNC if they are no longer kept), then each change as it "
        "happens. Subscriptions need a WebSocket (graphql-transport-ws) or Accept: "
        "text/event-stream."
    )
    async def task_events(self, info: Info, after: str | None = None) -> AsyncIterator[TaskEvent]:
        # Subscribing before the stream starts makes a refusal (a bad cursor, a limit) an
        # `error` message of graphql-transport-ws rather than an event.
        context = info.context
        live = context.live
        if not isinstance(context, StreamContext) or live is None:
            raise GraphQLError(
                "Subscriptions need a WebSocket or an event stream",
                extensions={"code": "BAD_REQUEST"},
            )
        try:
            stream = await live.subscribe(after=after)
        except StreamEnded as ended:
            return _ended(context, ended)
        except AppError as error:
            raise GraphQLError(error.message, extensions={"code": error.code}) from error
        return _events(context, stream)


async def _events(context: StreamContext, stream: EventStream) -> AsyncGenerator[TaskEvent, None]:
    try:
        async for event in stream:
            yield as_graphql_event(event)
    except StreamEnded as ended:
        await _end(context, ended)
    except Exception as error:
        log.exception("live stream failed (request %s)", context.request_id)
        extensions = {"code": "INTERNAL_SERVER_ERROR", "requestId": context.request_id}
        raise GraphQLError(MASKED_MESSAGE, extensions=extensions) from error
    finally:
        stream.close()


async def _ended(context: StreamContext, ended: StreamEnded) -> AsyncGenerator[TaskEvent, None]:
    """A stream that ended before it began (an expired token, a shutdown)."""
    await _end(context, ended)
    return
    yield


class SubscriptionsOnly(SchemaExtension):
    """Streams carry subscriptions alone: queries and mutations go over HTTP, where the
    request limits, idempotency keys, metrics and the access log apply to each."""

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        if (
            isinstance(execution.context, StreamContext)
            and execution.operation_type is not OperationType.SUBSCRIPTION
        ):
            error = GraphQLError(ONLY_SUBSCRIPTIONS, extensions={"code": "BAD_REQUEST"})
            execution.result = ExecutionResult(data=None, errors=[error])
        yield


async def _end(context: StreamContext, ended: StreamEnded) -> None:
    """Close the WebSocket with the code for `ended`; over SSE, end with an error result."""
    if context.close is not None:
        await context.close(*close_for(ended))
        return
    extensions = {"code": ended.code, "cursor": ended.cursor}
    raise GraphQLError(ended.message, extensions=extensions) from ended
