"""Reading REST requests and writing REST responses in the shapes FastAPI clients expect."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from resolvers.domain import Task
from resolvers.errors import FieldError, InvalidInput

_JSON_TYPES = ("application/json", "")


class UnsupportedMediaType(Exception):
    """The body is not JSON."""


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 415/422 explaining what is wrong with it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaType(content_type)
    raw = await request.body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(
            [FieldError("body", f"JSON decode error: {error.msg}", "json_invalid")]
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput([FieldError("body", "Input should be a JSON object", "dict_type")])
    return data


def parse_task_id(raw: str) -> int:
    """The {task_id} path segment; FastAPI answers a non-integer with 422, and so do we."""
    if raw.isascii() and raw.isdigit():
        return int(raw)
    raise InvalidInput(
        [
            FieldError(
                "task_id",
                "Input should be a valid integer, unable to parse string as an integer",
                "int_parsing",
                location="path",
            )
        ]
    )


def task_json(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "title": task.title,
        "description": task.description,
        "due_date": task.due_date,
        "completed": task.completed,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def etag(task: Task) -> str:
    return f'"{task.version}"'


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    # orjson writes datetimes as RFC 3339 with their UTC offset.
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def task_response(
    task: Task, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return json_response(task_json(task), status_code, {"ETag": etag(task), **(headers or {})})


def validation_detail(errors: list[FieldError]) -> list[dict[str, Any]]:
    """FastAPI's 422 body: one entry per field with loc, msg and type."""
    return [
        {
            "loc": (
                [error.location] if error.field in ("", "body") else [error.location, error.field]
            ),
            "msg": error.message,
            "type": error.kind,
        }
        for error in errors
    ]
