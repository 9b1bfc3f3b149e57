"""The OpenAPI 3.1 description of the REST routes, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.tables import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH
from resolvers.pagination import MAX_PAGE_SIZE
from resolvers.validation import DUE_DATE_PATTERN, TITLE_WHITESPACE
from rest_compat.bodies import json_response
from rest_compat.listing import MAX_OFFSET, SORTS
from rest_compat.routes import IF_MATCH_PATTERN

_REF = "#/components/schemas/"
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


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF + "Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TASK = {"$ref": _REF + "Task"}
_ETAG_HEADER = {"ETag": {"description": "The task's version", "schema": {"type": "string"}}}
_COMMON_ERRORS = {
    "401": _error("Missing or invalid bearer token"),
    "403": _error("The path's user is not the token's subject"),
    "422": _json("Invalid input", {"$ref": _REF + "ValidationError"}),
    "429": _error("Too many requests from your user; retry after Retry-After seconds"),
    "503": _error("The database is unavailable; retry after Retry-After seconds"),
}
_TASK_ERRORS = {**_COMMON_ERRORS, "404": _error("No such task among yours")}
_IF_MATCH = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": "Apply only if the task is still at this ETag; 412 otherwise.",
    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
}
_PRECONDITION = {"412": _error("The task changed since the ETag in If-Match")}


def _params(*names: str) -> list[dict[str, Any]]:
    schemas = {"user_id": {"type": "string"}, "task_id": {"type": "integer", "minimum": 1}}
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
_TOTAL_COUNT_HEADER = {
    "X-Total-Count": {
        "description": "How many tasks match the filters, regardless of limit and offset",
        "schema": {"type": "integer"},
    }
}


def openapi_document() -> dict[str, Any]:
    task_path = _params("user_id", "task_id")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "taskql REST compatibility API",
            "version": "1.0.0",
            "description": "The spec's /api/{user_id}/tasks routes. GraphQL at /graphql "
            "offers the same operations.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/{user_id}/tasks": {
                "parameters": _params("user_id"),
                "get": {
                    "summary": "List your tasks",
                    "operationId": "listTasks",
                    "parameters": _LIST_PARAMETERS,
                    "responses": {
                        "200": {
                            **_json(
                                "Your matching tasks, oldest first unless `sort` says otherwise",
                                {"type": "array", "items": _TASK},
                            ),
                            "headers": _TOTAL_COUNT_HEADER,
                        },
                        **_COMMON_ERRORS,
                    },
                },
                "post": {
                    "summary": "Create a task",
                    "operationId": "createTask",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF + "TaskCreate"}}},
                    },
                    "responses": {
                        "201": {**_json("Created", _TASK), "headers": _ETAG_HEADER},
                        "415": _error("The body is not JSON"),
                        **_COMMON_ERRORS,
                    },
                },
            },
            "/api/{user_id}/tasks/{task_id}": {
                "parameters": task_path,
                "get": {
                    "summary": "Get one task",
                    "operationId": "getTask",
                    "responses": {
                        "200": {**_json("The task", _TASK), "headers": _ETAG_HEADER},
                        **_TASK_ERRORS,
                    },
                },
                "put": {
                    "summary": "Update a task; fields left out keep their value",
                    "operationId": "updateTask",
                    "parameters": [_IF_MATCH],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": _REF + "TaskUpdate"}}},
                    },
                    "responses": {
                        "200": {**_json("The updated task", _TASK), "headers": _ETAG_HEADER},
                        "415": _error("The body is not JSON"),
                        **_TASK_ERRORS,
                        **_PRECONDITION,
                    },
                },
                "delete": {
                    "summary": "Delete a task",
                    "operationId": "deleteTask",
                    "parameters": [_IF_MATCH],
                    "responses": {
                        "204": {"description": "Deleted"},
                        **_TASK_ERRORS,
                        **_PRECONDITION,
                    },
                },
            },
            "/api/{user_id}/tasks/{task_id}/complete": {
                "parameters": task_path,
                "patch": {
                    "summary": "Toggle completion",
                    "operationId": "toggleTask",
                    "parameters": [_IF_MATCH],
                    "responses": {
                        "200": {**_json("The toggled task", _TASK), "headers": _ETAG_HEADER},
                        **_TASK_ERRORS,
                        **_PRECONDITION,
                    },
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
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
                "Error": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {"detail": {"type": "string"}},
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


async def _serve(request: Request) -> Response:
    return json_response(openapi_document())


routes = [Route("/api/openapi.json", _serve, methods=["GET"])]
