"""Handlers for /api/{user_id}/tasks...: check the path's owner, parse, call, serialise."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from resolvers import tasks as operations
from resolvers.context import Context, ContextFactory
from resolvers.domain import IdempotencyKey
from resolvers.errors import FieldError, Forbidden, InvalidInput
from resolvers.idempotency import fingerprint, json_fingerprint_part
from resolvers.pagination import EVERYTHING
from resolvers.validation import validate_completion
from rest_compat import events
from rest_compat.bodies import (
    json_response,
    parse_task_id,
    read_json_object,
    task_json,
    task_response,
)
from rest_compat.listing import LIST_WITHOUT_PARAMETERS, parse_bulk_query, parse_list_query

TASKS = "/api/{user_id}/tasks"
EVENTS = "/api/{user_id}/tasks/events"
TASK = "/api/{user_id}/tasks/{task_id}"
# RFC 3986 sub-delims, ":" and "@": allowed unescaped in a path segment.
_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@"
# What If-Match may hold, here and in the OpenAPI document: `*` or one of our ETags, quoted as
# RFC 9110 says or, as some legacy clients send them, bare.
IF_MATCH_PATTERN = r'^(\*|(W/)?"([0-9]+)"|([0-9]+))$'
# The header a write may carry to be done once (the IETF draft's), and the one that marks a
# response as the replay of a stored outcome (Stripe's name for it).
IDEMPOTENCY_KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"


async def _context(
    request: Request, *, keyed: bool = False, token_parameter: bool = False
) -> Context:
    """The caller's context, refusing anyone whose token is not for the path's user.

    Only a `keyed` write reads Idempotency-Key: reads are idempotent already, and a bulk
    change reaches the same state when repeated (its OpenAPI entry says it ignores the key).
    With `token_parameter`, a token may come as `?access_token=` (the event stream's, for
    browsers' EventSource, which cannot send headers).
    """
    factory: ContextFactory = request.state.context_factory
    header = request.headers.get("authorization")
    context = await factory(
        authorization=events.authorization(request) if token_parameter else header,
        request_id=request.state.request_id,
        idempotency_key=request.headers.getlist(IDEMPOTENCY_KEY) if keyed else (),
    )
    if context.principal is not None:
        request.state.user_id = context.principal.user_id
    if request.path_params["user_id"] != context.viewer.user_id:
        raise Forbidden("You can only access your own tasks")
    return context


async def list_tasks(request: Request) -> Response:
    context = await _context(request)
    query = (
        parse_list_query(request.query_params)
        if request.scope["query_string"]
        else LIST_WITHOUT_PARAMETERS
    )
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
    context = await _context(request, keyed=True)
    data = await read_json_object(request)
    task = await operations.create_task(
        context, data=data, idempotency=await _idempotency(request, context, body=data)
    )
    # The path's user id arrives decoded: escaped again, any `sub` gives a Location that leads
    # back to this task and that can be sent as a header (non-Latin-1 text cannot).
    user_segment = quote(request.path_params["user_id"], safe=_PATH_SEGMENT_SAFE)
    location = f"/api/{user_segment}/tasks/{task.id}"
    return _marked(context, task_response(task, 201, {"Location": location}))


async def get_task(request: Request) -> Response:
    context = await _context(request)
    task_id = parse_task_id(request.path_params["task_id"])
    return task_response(await operations.get_task(context, task_id=task_id))


async def update_task(request: Request) -> Response:
    context = await _context(request, keyed=True)
    task_id = parse_task_id(request.path_params["task_id"])
    data = await read_json_object(request)
    expected_version = if_match_version(request)
    task = await operations.update_task(
        context,
        task_id=task_id,
        data=data,
        expected_version=expected_version,
        idempotency=await _idempotency(request, context, expected_version, body=data),
    )
    return _marked(context, task_response(task))


async def toggle_task(request: Request) -> Response:
    context = await _context(request, keyed=True)
    task_id = parse_task_id(request.path_params["task_id"])
    expected_version = if_match_version(request)
    task = await operations.toggle_task(
        context,
        task_id=task_id,
        expected_version=expected_version,
        idempotency=await _idempotency(request, context, expected_version),
    )
    return _marked(context, task_response(task))


async def delete_task(request: Request) -> Response:
    context = await _context(request, keyed=True)
    task_id = parse_task_id(request.path_params["task_id"])
    expected_version = if_match_version(request)
    await operations.delete_task(
        context,
        task_id=task_id,
        expected_version=expected_version,
        idempotency=await _idempotency(request, context, expected_version),
    )
    return _marked(context, Response(status_code=204))


async def _idempotency(
    request: Request,
    context: Context,
    expected_version: int | None = None,
    *,
    body: dict[str, Any] | None = None,
) -> IdempotencyKey | None:
    """The request's key with its fingerprint: what the write reads of the request.

    That is the method, the path, the version If-Match names and the JSON body where the
    write has one (as canonical JSON: the same document spelled differently is the same
    request, one with another value is not); no other header, nor a body a write ignores.
    """
    if context.idempotency_key is None:
        return None
    # The path as routed (percent-decoding done once), never re-parsed from a URL.
    parts: list[str | bytes] = [request.method, request.scope["path"], str(expected_version)]
    if body is not None:
        parts.append(json_fingerprint_part(body, await request.body()))
    return IdempotencyKey(context.idempotency_key, fingerprint(*parts))


def _marked(context: Context, response: Response) -> Response:
    """The response, marked as a replay when the write returned a stored outcome."""
    if context.replayed:
        response.headers[REPLAYED] = "true"
    return response


async def set_tasks_completion(request: Request) -> Response:
    context = await _context(request)
    query = parse_bulk_query(request.query_params)
    completed = validate_completion(await read_json_object(request))
    tasks = await operations.set_tasks_completion(
        context, filters=query.filters, all_tasks=query.all_tasks, completed=completed
    )
    return json_response({"count": len(tasks), "tasks": [task_json(task) for task in tasks]})


async def delete_tasks(request: Request) -> Response:
    context = await _context(request)
    query = parse_bulk_query(request.query_params)
    deleted = await operations.delete_tasks(
        context, filters=query.filters, all_tasks=query.all_tasks
    )
    return json_response({"count": len(deleted), "deleted_task_ids": deleted})


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
    _resource(
        TASKS,
        {
            "GET": list_tasks,
            "POST": create_task,
            "PATCH": set_tasks_completion,
            "DELETE": delete_tasks,
        },
    ),
    _resource(TASK, {"GET": get_task, "PUT": update_task, "DELETE": delete_task}),
    _resource(TASK + "/complete", {"PATCH": toggle_task}),
]
