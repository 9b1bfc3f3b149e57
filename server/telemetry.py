"""Request telemetry for both doors: the request id, the W3C trace id, one access log line and
metrics per request.

It wraps the whole app (main.py). The doors read `request.state.request_id` and leave
`user_id` and `graphql_operation` in the same state; `trace_id` is the trace of a request that
came with a valid `traceparent`, so one user action can be followed from the browser to here.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.metrics import REQUEST_METRICS

access_log = logging.getLogger("taskql.access")

_REQUEST_ID_HEADER = b"x-request-id"
_TRACEPARENT_HEADER = b"traceparent"
# W3C Trace Context: version-traceid-parentid-flags in lower-case hex. Version ff is invalid;
# a later version may append fields after the flags, which this reader ignores, as the
# specification asks. All-zero ids are invalid too (checked below).
_TRACEPARENT = re.compile(
    rb"(?!ff)([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}(?:-[^\s]*)?"
)
_ZERO_TRACE_ID = b"0" * 32
_ZERO_PARENT_ID = b"0" * 16
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
        request_id, trace_id = _request_ids(scope["headers"])
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["trace_id"] = trace_id
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
        trace_id = state["trace_id"]
        access_log.info(
            "%s %s%s %d %.2fms request_id=%s trace_id=%s user=%s",
            method,
            route,
            f" ({operation})" if operation else "",
            status,
            duration_ms,
            state["request_id"],
            trace_id or "-",
            user or "-",
            extra={
                "fields": {
                    "request_id": state["request_id"],
                    "trace_id": trace_id,
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


def _request_ids(headers: list[tuple[bytes, bytes]]) -> tuple[str, str | None]:
    """The request id (the client's X-Request-ID when it is a plausible id, otherwise a new
    one) and the trace id of a valid W3C `traceparent`, if the request has one."""
    request_id = trace_id = None
    for name, value in headers:
        if name == _REQUEST_ID_HEADER and request_id is None:
            request_id = value.decode("ascii") if _REQUEST_ID.fullmatch(value) else ""
        elif name == _TRACEPARENT_HEADER and trace_id is None:
            trace_id = _trace_id(value) or ""
    # 128 random bits in hex, the length of a UUID's hex: uuid4() would spend five times as
    # long building an object whose version bits nobody reads.
    return request_id or os.urandom(16).hex(), trace_id or None


def _trace_id(traceparent: bytes) -> str | None:
    """The trace id of a W3C traceparent, None when the header is not a valid one.

    Only the id is needed, to follow one user action from the browser into these logs; a
    tracer of our own would be more than that. If spans are wanted, OpenTelemetry's ASGI
    instrumentation (opentelemetry-instrumentation-asgi) reads the header and this goes.
    """
    match = _TRACEPARENT.fullmatch(traceparent.strip())
    if match is None:
        return None
    version, trace_id, parent_id = match.groups()
    if trace_id == _ZERO_TRACE_ID or parent_id == _ZERO_PARENT_ID:
        return None
    # Version 00 has exactly four fields; only later versions may add more.
    if version == b"00" and len(traceparent.strip()) != 55:
        return None
    return trace_id.decode("ascii")
