"""Handlers for /api/{user_id}/tasks...: check the path's owner, parse, call, serialise."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from resolvers import tasks as operations
from resolvers.context import Context, ContextFactory
from resolvers.errors import FieldError, Forbidden, InvalidInput
from resolvers.pagination import EVERYTHING
from rest_compat import events
from rest_compat.bodies import (
    json_response,
    parse_task_id,
    read_json_object,
    task_json,
    task_response,
)
from rest_compat.listing import parse_list_query

TASKS = "/api/{user_id}/tasks"
EVENTS = "/api/{user_id}/tasks/events"
TASK = "/api/{user_id}/tasks/{task_id}"
# RFC 3986 sub-delims, ":" and "@": allowed unescaped in a path segment.
_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@"
# What If-Match may hold, here and in the OpenAPI document: `*` or one of our ETags, quoted as
# RFC 9110 says or, as some legacy clients send them, bare.
IF_MATCH_PATTERN = r'^(\*|(W/)?"([0-9]+)"|([0-9]+))$'


async def _context(request: Request, *, token_parameter: bool = False) -> Context:
    """The caller's context, refusing anyone whose token is not for the path's user.

    With `token_parameter`, a token may come as `?access_token=` (the event stream's, for
    browsers' EventSource, which cannot send headers).
    """
    factory: ContextFactory = request.state.context_factory
    header = request.headers.get("authorization")
    context = await factory(
        authorization=events.authorization(request) if token_parameter else header,
        request_id=request.state.request_id,
    )
    if context.principal is not None:
        request.state.user_id = context.principal.user_id
    if request.path_params["user_id"] != context.viewer.user_id:
        raise Forbidden("You can only access your own tasks")
    return context


async def list_tasks(request: Request) -> Response:
    context = await _context(request)
    query = parse_list_query(request.query_params)
    page = await operations.list_tasks(
        context, filters=query.filters, order=query.order, page=query.page
    )
    if query.page == EVERYTHING:
        total = len(page.tasks)
    else:
        total = await operations.count_tasks(context, filters=query.filters)
    return json_response(
        [task_json(task) for task in page.tasks], headers={"X-Total-Count": str(total)}
    )


async def create_task(request: Request) -> Response:
    context = await _context(request)
    task = await operations.create_task(context, data=await read_json_object(request))
    # The path's user id arrives decoded: escaped again, any `sub` gives a Location that leads
    # back to this task and that can be sent as a header (non-Latin-1 text cannot).
    user_segment = quote(request.path_params["user_id"], safe=_PATH_SEGMENT_SAFE)
    location = f"/api/{user_segment}/tasks/{task.id}"
    return task_response(task, 201, {"Location": location})


async def get_task(request: Request) -> Response:
    context = await _context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    return task_response(await operations.get_task(context, task_id=task_id))


async def update_task(request: Request) -> Response:
    context = await _context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    task = await operations.update_task(
        context,
        task_id=task_id,
        data=await read_json_object(request),
        expected_version=if_match_version(request),
    )
    return task_response(task)


async def toggle_task(request: Request) -> Response:
    context = await _context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    task = await operations.toggle_task(
        context, task_id=task_id, expected_version=if_match_version(request)
    )
    return task_response(task)


async def delete_task(request: Request) -> Response:
    context = await _context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    await operations.delete_task(
        context, task_id=task_id, expected_version=if_match_version(request)
    )
    return Response(status_code=204)


def event_routes(*, heartbeat_seconds: float) -> list[Route]:
    """The event stream's route; list it before TASK, whose {task_id} would match `events`."""

    async def stream_task_events(request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            # Answered here: passed on, TASK would take `events` for a task id.
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        context = await _context(request, token_parameter=True)
        return await events.stream_events(request, context, heartbeat_seconds=heartbeat_seconds)

    return [Route(EVENTS, _EveryMethod(stream_task_events))]


def if_match_version(request: Request) -> int | None:
    """The version named by If-Match (`"3"`, `W/"3"`), None when absent or `*`."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    tag = re.fullmatch(IF_MATCH_PATTERN, header.strip(" \t"))
    if tag is None:
        raise InvalidInput(
            [
                FieldError(
                    "If-Match",
                    'If-Match must be an ETag from this API, such as "3"',
                    "etag_format",
                    location="header",
                )
            ]
        )
    version = tag[3] or tag[4]
    return None if version is None else int(version)


Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class _EveryMethod:
    """A handler as an ASGI app, which a Route passes every method to."""

    handler: Handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive))
        await response(scope, receive, send)


def _resource(path: str, handlers: Mapping[str, Handler]) -> Route:
    """One route per path, dispatching on the method, so that a 405's Allow header lists
    every method of the path (with a route per method, Starlette names only the first's)."""

    async def dispatch(request: Request) -> Response:
        # Starlette adds HEAD to every GET route and answers it with the GET response's head.
        method = "GET" if request.method == "HEAD" else request.method
        return await handlers[method](request)

    return Route(path, dispatch, methods=list(handlers))


routes = [
    _resource(TASKS, {"GET": list_tasks, "POST": create_task}),
    _resource(TASK, {"GET": get_task, "PUT": update_task, "DELETE": delete_task}),
    _resource(TASK + "/complete", {"PATCH": toggle_task}),
]
