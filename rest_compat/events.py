"""GET /api/{user_id}/tasks/events: the viewer's task events as server-sent events.

Each event's `id` is its cursor, so a browser's EventSource that reconnects sends it back as
Last-Event-ID and resumes exactly after it; other clients send `?after=<cursor>`. A comment
keeps idle connections (and proxies) alive. When the server ends the stream (the token
expired, the client read too slowly, the server restarts) it says why in an `error` event
whose data carries the code and the cursor to resume after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from resolvers.context import Context
from resolvers.errors import StreamEnded
from resolvers.events import TaskEvent, parse_cursor
from resolvers.streams import EventStream
from rest_compat.bodies import task_json

MEDIA_TYPE = "text/event-stream"
HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    # nginx buffers responses unless told not to; events must go out as they happen.
    "X-Accel-Buffering": "no",
}
# How long EventSource waits before reconnecting after a stream ends (its default is ~3 s).
RETRY_MILLISECONDS = 1000
# The query parameter a browser's EventSource, which cannot send headers, carries the token in
# (RFC 6750, section 2.3); only this route reads it.
TOKEN_PARAMETER = "access_token"


def authorization(request: Request) -> str | None:
    """The Authorization header, or the `access_token` query parameter as if it were one."""
    header = request.headers.get("authorization")
    token = request.query_params.get(TOKEN_PARAMETER)
    return f"Bearer {token}" if header is None and token is not None else header


def event_json(event: TaskEvent) -> dict[str, Any]:
    """An event as the REST door writes it: snake_case, the task as in its other responses."""
    return {
        "kind": event.kind,
        "cursor": event.cursor,
        "task_id": event.task_id,
        "version": event.version,
        "task": None if event.task is None else task_json(event.task),
    }


async def stream_events(
    request: Request, context: Context, *, heartbeat_seconds: float
) -> Response:
    """The response streaming the viewer's events after the client's cursor."""
    header = request.headers.get("last-event-id")
    # Last-Event-ID wins: EventSource sends it on reconnecting, with the URL's first `after`.
    if header is not None:
        parse_cursor(header, field="Last-Event-ID", location="header")
    after = header if header is not None else request.query_params.get("after")
    live = context.live_connection()
    try:
        stream = await live.subscribe(after=after)
    except BaseException:
        live.close()
        raise
    if request.method == "HEAD":
        live.close()
        return Response(media_type=MEDIA_TYPE, headers=HEADERS)
    return _EventStreamResponse(_frames(stream, heartbeat_seconds), on_close=live.close)


async def _frames(stream: EventStream, heartbeat_seconds: float) -> AsyncIterator[bytes]:
    yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
    try:
        while True:
            event = await stream.next(idle_seconds=heartbeat_seconds)
            if event is None:
                yield b": keep-alive\n\n"
            else:
                yield b"id: %s\ndata: %s\n\n" % (
                    event.cursor.encode(),
                    orjson.dumps(event_json(event)),
                )
    except StreamEnded as ended:
        data = {"detail": ended.message, "code": ended.code, "cursor": ended.cursor}
        yield b"event: error\ndata: %s\n\n" % orjson.dumps(data)


class _EventStreamResponse(StreamingResponse):
    """A streaming response that frees the live connection however the stream ends."""

    def __init__(self, frames: AsyncIterator[bytes], *, on_close: Callable[[], None]) -> None:
        super().__init__(frames, media_type=MEDIA_TYPE, headers=HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()
