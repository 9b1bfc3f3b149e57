"""The OpenAPI 3.1 description of the REST routes, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resolvers.events import CURSOR_PATTERN
from resolvers.idempotency import KEY_HEADER_PATTERN
from resolvers.pagination import MAX_PAGE_SIZE
from resolvers.validation import (
    DESCRIPTION_MAX_LENGTH,
    DUE_DATE_PATTERN,
    TITLE_MAX_LENGTH,
    TITLE_WHITESPACE,
)
from rest_compat.bodies import json_response
from rest_compat.events import MEDIA_TYPE, TOKEN_PARAMETER
from rest_compat.listing import FILTER_PARAMETERS, MAX_OFFSET, SORTS
from rest_compat.routes import IDEMPOTENCY_KEY, IF_MATCH_PATTERN, REPLAYED

_REF = "#/components/schemas/"
# The name under which the document declares its bearer-token security (Swagger UI needs it).
SECURITY_SCHEME = "bearer"
_DATETIME = {"type": "string", "format": "date-time"}
_NULLABLE_DATETIME = {"anyOf": [_DATETIME, {"type": "null"}]}
# Text is stored in PostgreSQL, which cannot hold NUL; a title is trimmed and must not be blank.
_NO_NUL = r"^[^\u0000]*$"
# The whitespace a title is trimmed of, spelled out: `\s` means different sets in different
# regex dialects (ECMAScript's, which JSON Schema names, and Python's).
_SPACE = "".join(f"\\u{ord(char):04x}" for char in TITLE_WHITESPACE)
_TITLE = {
    "type": "string",
    "minLength": 1,
    "maxLength": TITLE_MAX_LENGTH,
    "pattern": rf"^[^\u0000]*[^{_SPACE}\u0000][^\u0000]*$",
}
# A title sent in may carry whitespace around it: it is trimmed, then 1-255 characters long.
_TITLE_INPUT = {
    "type": "string",
    "description": f"Trimmed of surrounding whitespace, then 1-{TITLE_MAX_LENGTH} characters.",
    "pattern": (
        rf"^[{_SPACE}]*[^{_SPACE}\u0000]"
        rf"(?:[^\u0000]{{0,{TITLE_MAX_LENGTH - 2}}}[^{_SPACE}\u0000])?[{_SPACE}]*$"
    ),
}
_DESCRIPTION = {"type": "string", "maxLength": DESCRIPTION_MAX_LENGTH, "pattern": _NO_NUL}
# Due dates are read in more forms than they are written in (always RFC 3339, in UTC).
_DUE_DATE_INPUT = {
    "type": "string",
    "pattern": DUE_DATE_PATTERN,
    "description": "A date, read as midnight UTC, or a date and a time of day (to the minute, "
    "second or fraction; `T`, `t` or a space between them) with an optional UTC offset "
    "(`Z`, `+hh:mm` or `+hhmm`; none means UTC). The year is 0002 to 9998.",
    "examples": ["2026-12-31", "2026-12-31T17:00:00Z", "2026-12-31T18:00:00+01:00"],
}
_NULLABLE_DUE_DATE_INPUT = {"anyOf": [_DUE_DATE_INPUT, {"type": "null"}]}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": schema}


def _error(
    description: str, schema: str = "Error", headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = _json(description, {"$ref": _REF + schema})
    return response if headers is None else {**response, "headers": headers}


_TASK = {"$ref": _REF + "Task"}
_ETAG = _header("The task's version", {"type": "string", "pattern": '^"[0-9]+"$'})
_BEARER = {"type": "string", "const": "Bearer"}
_RETRY_AFTER = _header("Seconds to wait before trying again", {"type": "integer", "minimum": 0})


def _error_responses(*, max_body_bytes: int) -> dict[str, dict[str, Any]]:
    """Every error status a REST operation may answer with; each operation lists its own."""
    return {
        "400": _error(f"The {IDEMPOTENCY_KEY} header is malformed, or sent more than once"),
        "401": _error(
            "No bearer token, or one that does not verify",
            headers={"WWW-Authenticate": _header("Always `Bearer`", _BEARER)},
        ),
        "403": _error("The path's user_id is not your token's subject"),
        "404": _error("No such task among yours; someone else's task is not found either"),
        "412": _error(
            "The task changed since the ETag in If-Match; the body and ETag give its version now",
            "VersionConflict",
            {"ETag": _ETAG},
        ),
        # The limit guards every request before routing, so a body is refused even where the
        # operation would not read it.
        "413": _error(
            f"The request body is larger than {max_body_bytes} bytes (MAX_BODY_BYTES), "
            "whatever the operation"
        ),
        "415": _error("The body is not JSON: send application/json (or any +json type)"),
        "422": _json(
            "Invalid input; each entry's `loc` names the path segment, query parameter, header "
            f'or body field at fault. `["header", "{IDEMPOTENCY_KEY}"]`: the key was used '
            "before for another request (another method, path, If-Match or body)",
            {"$ref": _REF + "ValidationError"},
        ),
        "429": _error(
            "Too many requests from your user (RATE_LIMIT_PER_MINUTE)",
            headers={"Retry-After": _RETRY_AFTER},
        ),
        "503": _error(
            "The database, or the token issuer's key set (JWT_JWKS_URL), cannot be reached, "
            "or the database schema is not yet the one this version needs",
            headers={"Retry-After": _RETRY_AFTER},
        ),
    }


_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "Apply only if the task is still at this ETag; 412 otherwise.",
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
}


_IDEMPOTENCY_KEY_PARAMETER = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": "Do this write once (IETF draft-ietf-httpapi-idempotency-key-header): a "
    "retry with the same key and the same request gets the first response again, marked "
    f"`{REPLAYED}: true`, instead of writing again. A structured-field string, such as "
    '`"8e03978e-40d5-43e8-bc93-6894a57f9324"`, without parameters (a bare value is taken as '
    "the same key). Keys are your user's own, kept for IDEMPOTENCY_KEY_SECONDS (default 24 h).",
    "schema": {"type": "string", "pattern": KEY_HEADER_PATTERN},
}
_REPLAYED_HEADER = {
    "description": "Present on a replay: the stored response of an earlier request with the "
    "same Idempotency-Key, sent instead of writing again",
    "required": False,
    "schema": {"type": "string", "const": "true"},
}


def _params(*names: str) -> list[dict[str, Any]]:
    schemas = {
        # A `/`, even sent as %2F, splits the segment, and the path then matches no route.
        "user_id": {"type": "string", "pattern": "^[^/]+$"},
        "task_id": {"type": "integer", "minimum": 1},
    }
    return [{"name": n, "in": "path", "required": True, "schema": schemas[n]} for n in names]


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_LIST_PARAMETERS = [
    _query(
        "completed", "Only tasks that are (true) or are not (false) completed.", {"type": "boolean"}
    ),
    _query(
        "overdue",
        "Only tasks due in the past and not completed (true), or the others.",
        {"type": "boolean"},
    ),
    _query("due_before", "Only tasks due strictly before this instant.", _DUE_DATE_INPUT),
    _query("due_after", "Only tasks due strictly after this instant.", _DUE_DATE_INPUT),
    _query("q", "Case-insensitive substring of the title or the description.", _DESCRIPTION),
    _query(
        "sort",
        "Sort field, `-` for descending; the id breaks ties and undated tasks come last.",
        {"type": "string", "enum": list(SORTS), "default": "created_at"},
    ),
    _query(
        "limit",
        "At most this many tasks; all of them when absent.",
        {"type": "integer", "minimum": 0, "maximum": MAX_PAGE_SIZE},
    ),
    _query(
        "offset",
        "Skip this many tasks first.",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
    ),
]
# A bulk change takes the listing's filters, or `all`, and nothing else.
_BULK_PARAMETERS = [
    *(parameter for parameter in _LIST_PARAMETERS if parameter["name"] in FILTER_PARAMETERS),
    _query(
        "all",
        "`true`: every one of your tasks, without a filter. Without a filter and without "
        "`all=true` the request is refused (422), never read as every task; with a filter "
        "it is refused too.",
        {"type": "boolean"},
    ),
]


def _bulk_description(max_tasks: int) -> str:
    return (
        "Atomic: every matching task changes, or none does. At most "
        f"{max_tasks} tasks (BULK_MAX_TASKS) per request: more matching is a 422 "
        "(`too_many_tasks`) that changes nothing. A parameter other than the filters and "
        "`all` is refused (422), not ignored. Each changed task gets a new version (ETag). "
        "Retrying is safe: the change converges to the same state; Idempotency-Key is not "
        "taken."
    )


_CURSOR = {"type": "string", "pattern": f"^{CURSOR_PATTERN.pattern}$"}
_EVENT_PARAMETERS = [
    _query(
        "after",
        "Resume after this cursor (an event's `id`): every event since that is still kept "
        "comes first, in order. `0`: from the start of what is kept. Absent: new events only.",
        _CURSOR,
    ),
    {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "description": "What EventSource sends when it reconnects; wins over `after`.",
        "schema": _CURSOR,
    },
    _query(
        TOKEN_PARAMETER,
        "The bearer token, for clients that cannot send headers (a browser's EventSource); "
        "prefer the Authorization header elsewhere, as URLs end up in logs.",
        {"type": "string"},
    ),
]
_EVENT_STREAM = {
    "description": "Server-sent events until the server ends the stream. Each change is an "
    "event whose `id` is its cursor and whose `data` is a TaskEvent (JSON); a `resync` event "
    "says the events after your cursor are no longer kept: fetch your tasks again and go on "
    "from its cursor. A comment line (`: keep-alive`) comes every LIVE_HEARTBEAT_SECONDS when "
    "nothing happens. The server says why it ends a stream in an `error` event whose data is "
    "a StreamError (TOKEN_EXPIRED: reconnect with a fresh token and `after` set to its "
    "cursor; SLOW_CONSUMER; SHUTTING_DOWN); EventSource then reconnects by itself.",
    "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
}
# The event stream can always meet the limit on live connections, rate limit or not.
_TOO_MANY_STREAMS = _error(
    "Too many live connections of your user (LIVE_CONNECTIONS_PER_USER), or too many "
    "requests (RATE_LIMIT_PER_MINUTE, when set)",
    headers={"Retry-After": _RETRY_AFTER},
)
_TASK_LIST = {
    **_json(
        "Your matching tasks, oldest first unless `sort` says otherwise",
        {"type": "array", "items": _TASK},
    ),
    "headers": {
        "X-Total-Count": _header(
            "How many tasks match the filters, regardless of limit and offset",
            {"type": "integer", "minimum": 0},
        )
    },
}


def openapi_document(
    *, max_body_bytes: int, rate_limited: bool, bulk_max_tasks: int
) -> dict[str, Any]:
    """The document for this configuration: 429 exists only with a rate limit."""
    errors = _error_responses(max_body_bytes=max_body_bytes)
    # What any operation can meet: a token to verify, the path's owner to match, the body limit,
    # a path segment, query parameter or header to parse, the rate limit, and the database.
    common = ["401", "403", "413", "422", *(["429"] if rate_limited else []), "503"]

    def responses(success: dict[str, Any], *statuses: str) -> dict[str, Any]:
        return {**success, **{status: errors[status] for status in sorted([*common, *statuses])}}

    def task(description: str, status: str = "200", **headers: dict[str, Any]) -> dict[str, Any]:
        return {status: {**_json(description, _TASK), "headers": {"ETag": _ETAG, **headers}}}

    def write(
        success: dict[str, Any], *statuses: str, parameters: tuple[dict[str, Any], ...] = ()
    ) -> dict[str, Any]:
        """A write's parameters and responses: it may carry an Idempotency-Key (400 when
        malformed), and its success may be a replay."""
        [(status, response)] = success.items()
        marked = {
            **response,
            "headers": {**response.get("headers", {}), REPLAYED: _REPLAYED_HEADER},
        }
        return {
            "parameters": [*parameters, _IDEMPOTENCY_KEY_PARAMETER],
            "responses": responses({status: marked}, "400", *statuses),
        }

    def body(schema: str) -> dict[str, Any]:
        content = {"application/json": {"schema": {"$ref": _REF + schema}}}
        return {"required": True, "content": content}

    stream_responses = {
        "200": _EVENT_STREAM,
        **{status: errors[status] for status in ("401", "403", "413", "422", "503")},
        "429": _TOO_MANY_STREAMS,
    }
    task_path = _params("user_id", "task_id")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskql REST compatibility API",
            "version": "1.0.0",
            "description": "The spec's /api/{user_id}/tasks routes. GraphQL at /graphql offers "
            "the same operations. Each operation lists every status it can answer with. A "
            "method that a path does not list gets 405 with an `Allow` header naming the ones "
            "it does (and HEAD wherever GET is). Responses are JSON whatever `Accept` says: "
            "there is no 406.",
        },
        "security": [{SECURITY_SCHEME: []}],
        "paths": {
            "/api/{user_id}/tasks": {
                "parameters": _params("user_id"),
                "get": {
                    "summary": "List your tasks",
                    "operationId": "listTasks",
                    "parameters": _LIST_PARAMETERS,
                    "responses": responses({"200": _TASK_LIST}),
                },
                "post": {
                    "summary": "Create a task",
                    "operationId": "createTask",
                    "requestBody": body("TaskCreate"),
                    **write(
                        task(
                            "Created",
                            "201",
                            Location=_header("The new task's URL", {"type": "string"}),
                        ),
                        "415",
                    ),
                },
                "patch": {
                    "summary": "Set completion on every task the filters match",
                    "description": "Tasks already in the asked state are left alone. "
                    + _bulk_description(bulk_max_tasks),
                    "operationId": "setTasksCompletion",
                    "parameters": _BULK_PARAMETERS,
                    "requestBody": body("TaskCompletion"),
                    "responses": responses(
                        {
                            "200": _json(
                                "The tasks that changed, by id", {"$ref": _REF + "BulkCompletion"}
                            )
                        },
                        "415",
                    ),
                },
                "delete": {
                    "summary": "Delete every task the filters match",
                    "description": _bulk_description(bulk_max_tasks),
                    "operationId": "deleteTasks",
                    "parameters": _BULK_PARAMETERS,
                    "responses": responses(
                        {
                            "200": _json(
                                "The ids of the deleted tasks", {"$ref": _REF + "BulkDeletion"}
                            )
                        }
                    ),
                },
            },
            "/api/{user_id}/tasks/events": {
                "parameters": _params("user_id"),
                "get": {
                    "summary": "Stream your task events (server-sent events)",
                    "operationId": "streamTaskEvents",
                    "parameters": _EVENT_PARAMETERS,
                    "responses": dict(sorted(stream_responses.items())),
                },
            },
            "/api/{user_id}/tasks/{task_id}": {
                "parameters": task_path,
                "get": {
                    "summary": "Get one task",
                    "operationId": "getTask",
                    "responses": responses(task("The task"), "404"),
                },
                "put": {
                    "summary": "Update a task; fields left out keep their value",
                    "operationId": "updateTask",
                    "requestBody": body("TaskUpdate"),
                    **write(task("The updated task"), "404", "412", "415", parameters=(_IF_MATCH,)),
                },
                "delete": {
                    "summary": "Delete a task",
                    "operationId": "deleteTask",
                    **write(
                        {"204": {"description": "Deleted"}}, "404", "412", parameters=(_IF_MATCH,)
                    ),
                },
            },
            "/api/{user_id}/tasks/{task_id}/complete": {
                "parameters": task_path,
                "patch": {
                    "summary": "Toggle completion",
                    "operationId": "toggleTask",
                    **write(task("The toggled task"), "404", "412", parameters=(_IF_MATCH,)),
                },
            },
        },
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {
                "Task": {
                    "type": "object",
                    "required": [
                        "id",
                        "title",
                        "description",
                        "due_date",
                        "completed",
                        "created_at",
                        "updated_at",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "title": _TITLE,
                        "description": _DESCRIPTION,
                        "due_date": _NULLABLE_DATETIME,
                        "completed": {"type": "boolean"},
                        "created_at": _DATETIME,
                        "updated_at": _DATETIME,
                    },
                },
                "TaskCreate": {
                    "type": "object",
                    "required": ["title"],
                    "properties": {
                        "title": _TITLE_INPUT,
                        "description": {"anyOf": [_DESCRIPTION, {"type": "null"}]},
                        "due_date": _NULLABLE_DUE_DATE_INPUT,
                        "completed": {"type": "boolean"},
                    },
                },
                "TaskUpdate": {
                    "type": "object",
                    "properties": {
                        "title": _TITLE_INPUT,
                        "description": {"anyOf": [_DESCRIPTION, {"type": "null"}]},
                        "due_date": _NULLABLE_DUE_DATE_INPUT,
                        "completed": {"type": "boolean"},
                    },
                },
                "TaskCompletion": {
                    "type": "object",
                    "required": ["completed"],
                    "properties": {"completed": {"type": "boolean"}},
                    "additionalProperties": False,
                },
                "BulkCompletion": {
                    "type": "object",
                    "required": ["count", "tasks"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0, "maximum": bulk_max_tasks},
                        "tasks": {"type": "array", "items": _TASK, "maxItems": bulk_max_tasks},
                    },
                },
                "BulkDeletion": {
                    "type": "object",
                    "required": ["count", "deleted_task_ids"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0, "maximum": bulk_max_tasks},
                        "deleted_task_ids": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "maxItems": bulk_max_tasks,
                        },
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {"detail": {"type": "string"}},
                },
                "TaskEvent": {
                    "type": "object",
                    "description": "The data of a stream event.",
                    "required": ["kind", "cursor", "task_id", "version", "task"],
                    "properties": {
                        "kind": {
                            "enum": [
                                "created",
                                "updated",
                                "completion_toggled",
                                "deleted",
                                "resync",
                            ]
                        },
                        "cursor": _CURSOR,
                        "task_id": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "version": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
                        "task": {
                            "description": "The task as the change left it; null for a "
                            "deletion and a resync.",
                            "anyOf": [_TASK, {"type": "null"}],
                        },
                    },
                },
                "StreamError": {
                    "type": "object",
                    "description": "The data of the `error` event that ends a stream.",
                    "required": ["detail", "code", "cursor"],
                    "properties": {
                        "detail": {"type": "string"},
                        "code": {"enum": ["TOKEN_EXPIRED", "SLOW_CONSUMER", "SHUTTING_DOWN"]},
                        "cursor": _CURSOR,
                    },
                },
                "VersionConflict": {
                    "type": "object",
                    "required": ["detail", "current_version"],
                    "properties": {
                        "detail": {"type": "string"},
                        "current_version": {"type": "integer"},
                    },
                },
                "ValidationError": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {
                        "detail": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["loc", "msg", "type"],
                                "properties": {
                                    "loc": {
                                        "type": "array",
                                        "items": {
                                            "anyOf": [{"type": "string"}, {"type": "integer"}]
                                        },
                                    },
                                    "msg": {"type": "string"},
                                    "type": {"type": "string"},
                                },
                            },
                        }
                    },
                },
            },
        },
    }


def routes(*, max_body_bytes: int, rate_limited: bool, bulk_max_tasks: int) -> list[Route]:
    document = openapi_document(
        max_body_bytes=max_body_bytes, rate_limited=rate_limited, bulk_max_tasks=bulk_max_tasks
    )

    async def serve(request: Request) -> Response:
        return json_response(document)

    return [Route("/api/openapi.json", serve, methods=["GET"])]
