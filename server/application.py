"""The Starlette application, with WebSocket connections sent past the HTTP middleware.

A WebSocket's ASGI call lasts as long as its connection (hours, for a subscriber that sits
idle), and every layer the call passes through keeps a frame alive for that long: Starlette's
error and exception middleware, our telemetry, security headers, CORS and body limit, and the
router, about 3.2 KB of each idle subscriber's heap (`bench/idle_memory.py`). None of
them acts on a WebSocket: ours and CORS pass it on untouched, and the exception handlers
answer HTTP requests only (the GraphQL WebSocket endpoint closes its sockets with its own
codes). So a WebSocket that matches a WebSocket route is handed to it directly; anything
else, and every HTTP request, goes through the whole stack as before.

For the same reason the layer that does so only forwards: it returns the route's coroutine
instead of awaiting it, so that it keeps no suspended frame of its own, nor does the route's
`handle` (about 0.5 KB per idle subscriber). The application itself stays a coroutine
function: servers tell an ASGI 3 app from an ASGI 2 one by that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence

from starlette.applications import Starlette
from starlette.routing import Match, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send


class Application(Starlette):
    """Starlette, whose WebSocket routes are reached without the middleware in between."""

    def build_middleware_stack(self) -> ASGIApp:
        websocket_routes = [route for route in self.routes if isinstance(route, WebSocketRoute)]
        return _WebSocketsDirect(super().build_middleware_stack(), websocket_routes)


class _WebSocketsDirect:
    __slots__ = ("_routes", "_stack")

    def __init__(self, stack: ASGIApp, routes: Sequence[WebSocketRoute]) -> None:
        self._stack = stack
        self._routes = tuple(routes)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "websocket":
            for route in self._routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    # The route's app itself: WebSocketRoute.handle would only await it.
                    return route.app(scope, receive, send)
        return self._stack(scope, receive, send)
