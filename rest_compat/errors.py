"""Central mapping of every error to a FastAPI-style JSON body: {"detail": ...}."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from resolvers.errors import (
    AppError,
    FieldError,
    IdempotencyKeyReused,
    InvalidInput,
    RetryLater,
    VersionConflict,
)
from rest_compat.bodies import UnsupportedMediaType, json_response, validation_detail

log = logging.getLogger(__name__)

Handler = Callable[[Request, Exception], Coroutine[Any, Any, Response]]


async def app_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, AppError)
    headers: dict[str, str] = {}
    body: dict[str, Any] = {"detail": error.message}
    if isinstance(error, InvalidInput):
        body = {"detail": validation_detail(error.errors)}
    elif isinstance(error, IdempotencyKeyReused):
        # A 422 has FastAPI's list shape, here naming the header at fault.
        reused = FieldError("Idempotency-Key", error.message, "idempotency_key_reused", "header")
        body = {"detail": validation_detail([reused])}
    elif isinstance(error, VersionConflict):
        body["current_version"] = error.task.version
        headers["ETag"] = f'"{error.task.version}"'
    elif isinstance(error, RetryLater):
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return json_response(body, error.status, headers)


async def unsupported_media_type(request: Request, error: Exception) -> Response:
    return json_response({"detail": "Send the request body as application/json"}, 415)


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return json_response({"detail": error.detail}, error.status_code, dict(error.headers or {}))


async def unexpected_error(request: Request, error: Exception) -> Response:
    request_id = request.state.request_id
    log.error("unexpected error (request %s) on %s", request_id, request.url.path, exc_info=error)
    # Sent from outside the telemetry middleware, which therefore cannot add the header.
    return json_response({"detail": "Internal server error"}, 500, {"X-Request-ID": request_id})


def detail_body(message: str) -> bytes:
    """An error message in FastAPI's shape, for errors raised outside the routes (a 413)."""
    return orjson.dumps({"detail": message})


EXCEPTION_HANDLERS: dict[Any, Handler] = {
    AppError: app_error,
    UnsupportedMediaType: unsupported_media_type,
    HTTPException: http_error,
    Exception: unexpected_error,
}
