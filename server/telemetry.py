"""Request telemetry for both doors: the request id, one access log line and metrics per request.

It wraps the whole app (main.py). The doors read `request.state.request_id` and leave
`user_id` and `graphql_operation` in the same state.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import REQUEST_METRICS

access_log = logging.getLogger("taskql.access")

_REQUEST_ID_HEADER = b"x-request-id"
# Ids that proxies and tracing systems generate (UUIDs, hex, base64) pass; anything else, which
# could forge log lines or bloat them, is replaced by a fresh id.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:/+=-]{1,128}")
UNMATCHED_ROUTE = "<unmatched>"


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """The key that makes user hashes in logs unlinkable to user ids without it."""

    user_hash_key: bytes


class RequestTelemetry:
    """Pure ASGI middleware, so that it costs one wrapped `send` and no extra task per request."""

    def __init__(self, app: ASGIApp, config: TelemetryConfig) -> None:
        self.app = app
        self.config = config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope["headers"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        echoed = (_REQUEST_ID_HEADER, request_id.encode())
        # Unchanged when the app raises before responding: the error middleware then sends a 500.
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), echoed]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            self._record(scope, state, status, time.perf_counter() - started)

    def _record(self, scope: Scope, state: dict[str, Any], status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
        operation = state.get("graphql_operation")
        method = scope["method"]
        REQUEST_METRICS.observe(route, operation, method, status, seconds)
        if not access_log.isEnabledFor(logging.INFO):
            return
        user_id = state.get("user_id")
        user = None if user_id is None else self.user_hash(user_id)
        duration_ms = round(seconds * 1000, 2)
        access_log.info(
            "%s %s%s %d %.2fms request_id=%s user=%s",
            method,
            route,
            f" ({operation})" if operation else "",
            status,
            duration_ms,
            state["request_id"],
            user or "-",
            extra={
                "fields": {
                    "request_id": state["request_id"],
                    "method": method,
                    "route": route,
                    "operation": operation,
                    "status": status,
                    "duration_ms": duration_ms,
                    "user": user,
                }
            },
        )

    def user_hash(self, user_id: str) -> str:
        """Equal for the same user under one key; without the key it reveals nothing."""
        key = self.config.user_hash_key
        return hashlib.blake2b(user_id.encode(), key=key, digest_size=8).hexdigest()


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is a plausible id, otherwise a new one."""
    for name, value in headers:
        if name == _REQUEST_ID_HEADER:
            if _REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex
