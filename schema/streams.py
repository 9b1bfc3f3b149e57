"""Subscriptions at /graphql: graphql-transport-ws and GraphQL over SSE, by Strawberry's view.

Queries and mutations stay with our endpoint (schema/http.py); a WebSocket upgrade, or a
request that accepts `text/event-stream`, goes to Strawberry's ASGI view, which implements
both protocols. The legacy `graphql-ws` protocol is not offered (CVE-2026-35523). Tokens are
verified as for any request: the `Authorization` header of an SSE request, or the
`Authorization` entry of a WebSocket's `connection_init` payload, before its `connection_ack`.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from cross_web import HTTPException
from starlette.requests import Request
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http.streaming import SSETransport
from strawberry.http.websocket_origin import normalize_allowed_origins
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET, UnsetType

from resolvers.context import ContextFactory
from resolvers.errors import AppError, Unauthenticated
from schema.http import (
    GRAPHQL_PATH,
    GRAPHQL_RESPONSE,
    GraphQLEndpoint,
    error_response,
    request_error_response,
)
from schema.subscription import StreamContext
from schema.websocket import ClosingSocket, close_for

# A subscription ends itself when its token expires, saying where to resume; a little after,
# whatever is left of the connection (a socket with no subscription) is closed too, so that
# no socket outlives its token.
EXPIRED_CONNECTION_GRACE_SECONDS = 0.5
EXPIRED_CONNECTION = "The token has expired: connect again with a fresh one"


def allowed_origins(origins: Iterable[str]) -> frozenset[str]:
    """CORS_ORIGINS as WebSocket origins; ValueError names one that is not an origin."""
    return normalize_allowed_origins(tuple(origins))


class _SubscriptionsOverSSE(SSETransport):
    """GraphQL over SSE for subscriptions alone: queries and mutations go over plain HTTP."""

    def allowed_operation_types(
        self, allowed_operation_types: set[OperationType]
    ) -> Iterable[OperationType]:
        return (OperationType.SUBSCRIPTION,)


class _TransportWSHandler(BaseGraphQLTransportWSHandler[StreamContext, None]):
    """Strawberry's graphql-transport-ws handler, letting go of its connection_init timer
    once the connection is initialised."""

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # Strawberry cancels the timer's task here but keeps it, and with it the cancellation's
        # exception, traceback and frames, for the socket's life: 1.5 KB of every idle
        # subscriber (bench/idle_memory.py). Only its shutdown reads it, to cancel it again.
        self.connection_init_timeout_task = None


class StreamingGraphQL(GraphQL[StreamContext, None]):
    """Strawberry's ASGI view, serving subscriptions to authenticated viewers."""

    websocket_adapter_class = ClosingSocket
    graphql_transport_ws_handler_class = _TransportWSHandler

    def __init__(
        self,
        schema: BaseSchema,
        *,
        allowed_origins: Collection[str],
        heartbeat_seconds: float,
        connection_init_seconds: float = 10.0,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            connection_init_wait_timeout=timedelta(seconds=connection_init_seconds),
            # LiveConnection counts subscriptions (and refuses with a code); queries and
            # mutations are refused on streams altogether (SubscriptionsOnly).
            max_subscriptions_per_connection=None,
            allowed_origins=tuple(allowed_origins),
        )

        class Transport(_SubscriptionsOverSSE):
            def __init__(self) -> None:
                super().__init__(heartbeat_seconds)

        self.stream_transport_classes_by_protocol = {GRAPHQL_SSE_PROTOCOL: Transport}

    # Not awaited here but returned: a stream's call lasts as long as its connection, and a
    # frame that only forwards would stay suspended that long (server/application.py).
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        if scope["type"] == "websocket":
            return self._serve_websocket(WebSocket(scope, receive, send))
        return self._serve_events(Request(scope, receive), send)

    async def _serve_websocket(self, websocket: WebSocket) -> None:
        context = StreamContext(
            request_id=uuid.uuid4().hex,
            factory=websocket.state.context_factory,
            close=websocket.close,
        )
        try:
            await self.run(websocket, context=context)
        finally:
            if context.expiry is not None:
                context.expiry.cancel()
            if context.live is not None:
                context.live.close()

    async def on_ws_connect(self, context: StreamContext) -> UnsetType | dict[str, object] | None:
        """Verify connection_init's token and open the viewer's live connection; refusals
        close the socket with their code (schema/websocket.py)."""
        assert context.factory is not None
        assert context.close is not None
        authorization = _authorization(context.connection_params or {})
        # Read once: the token need not stay in memory for the socket's life.
        context.connection_params = None
        try:
            request_context = await context.factory(
                authorization=authorization, request_id=context.request_id
            )
            context.live = request_context.live_connection()
        except AppError as error:
            await context.close(*close_for(error))
        else:
            context.live.on_expired = functools.partial(_close_soon, context)
        return cast(UnsetType, UNSET)  # acknowledged, with no payload

    async def _serve_events(self, request: Request, send: Send) -> None:
        """GraphQL over SSE, for a viewer whose token verifies and who may open a stream."""
        factory: ContextFactory = request.state.context_factory
        try:
            request_context = await factory(
                authorization=request.headers.get("authorization"),
                request_id=request.state.request_id,
            )
            live = request_context.live_connection()
        except AppError as error:
            await error_response(error, GRAPHQL_RESPONSE)(request.scope, request.receive, send)
            return
        request.state.user_id = live.principal.user_id
        context = StreamContext(request_id=request.state.request_id, live=live)
        try:
            try:
                response = await self.run(request, context=context)
            except HTTPException as error:
                response = request_error_response(error.reason, error.status_code, GRAPHQL_RESPONSE)
            await response(request.scope, request.receive, send)
        finally:
            live.close()


def _close_soon(context: StreamContext) -> None:
    """The token has expired and its subscriptions have ended, each closing the socket with
    its cursor: close it 4403 a little later if none did (a socket without subscriptions)."""
    context.expiry = asyncio.get_running_loop().call_later(
        EXPIRED_CONNECTION_GRACE_SECONDS, _close_expired, context
    )


def _close_expired(context: StreamContext) -> None:
    assert context.close is not None
    code, reason = close_for(Unauthenticated(EXPIRED_CONNECTION))
    # Kept on the context, so that the closing task is not collected before it runs.
    context.closing = asyncio.ensure_future(context.close(code, reason))


def _authorization(params: Mapping[str, object]) -> str | None:
    """connection_init's `Authorization` entry (any case), as the header would carry it."""
    for name, value in params.items():
        if name.lower() == "authorization" and isinstance(value, str):
            return value
    return None


def _accepts_event_stream(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"accept":
            return b"text/event-stream" in value.lower()
    return False


@dataclass(frozen=True, slots=True)
class _Dispatch:
    """HTTP requests to /graphql: event streams to Strawberry's view, the rest to ours."""

    endpoint: GraphQLEndpoint
    streams: StreamingGraphQL

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        handler = self.streams if _accepts_event_stream(scope) else self.endpoint
        return handler(scope, receive, send)


def routes(endpoint: GraphQLEndpoint, streams: StreamingGraphQL) -> list[BaseRoute]:
    """/graphql: queries and mutations to `endpoint`, subscriptions to `streams`."""
    return [
        Route(GRAPHQL_PATH, _Dispatch(endpoint, streams)),
        WebSocketRoute(GRAPHQL_PATH, streams),
    ]
