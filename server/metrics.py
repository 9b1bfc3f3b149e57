"""Prometheus metrics for both doors, the database pool and JWKS fetches; served at /metrics.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR (prometheus-client reads it at
import) so that every worker writes its samples there and any worker can answer a scrape.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any, Final, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def _prepare_multiprocess_dir() -> None:
    """Create the directory PROMETHEUS_MULTIPROC_DIR names, or exit naming the variable.

    prometheus-client opens a file there as soon as the metrics below are made, at import,
    before any setting is read: a missing directory would otherwise end the process with a
    traceback from inside the library.
    """
    configured = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not configured:
        return
    try:
        Path(configured).mkdir(parents=True, exist_ok=True)
        writable = os.access(configured, os.W_OK | os.X_OK)
    except OSError as error:
        problem = error.strerror or str(error)
    else:
        if writable:
            return
        problem = "not writable by this user"
    print(
        f"configuration error: {MULTIPROCESS_DIR_VARIABLE}={configured}: {problem}; "
        "point it at a directory this user can write, or unset it (one worker needs none)",
        file=sys.stderr,
    )
    raise SystemExit(2)


_prepare_multiprocess_dir()

_LABELS = ("route", "operation", "method", "status")
# Client-chosen strings become label values only from a bounded set, so no client can grow the
# number of time series without limit.
_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_MAX_OPERATIONS: Final = 200

REQUESTS = Counter(
    "taskql_http_requests",
    "HTTP requests by route template (or GraphQL operation name), method and status",
    _LABELS,
)
REQUEST_SECONDS = Histogram(
    "taskql_http_request_duration_seconds",
    "Time from request to the end of the response, by route template, operation and status",
    _LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
POOL_IN_USE = Gauge(
    "taskql_db_pool_connections_in_use",
    "Database connections checked out of the pool",
    multiprocess_mode="livesum",
)
POOL_IDLE = Gauge(
    "taskql_db_pool_connections_idle",
    "Open database connections waiting in the pool",
    multiprocess_mode="livesum",
)
DATABASE_UNAVAILABLE = Counter(
    "taskql_database_unavailable",
    "Operations refused because the database could not be reached or timed out",
)
RETENTION_PURGED = Counter(
    "taskql_retention_purged_rows",
    "Task events and idempotency keys removed once past their retention",
)
JWKS_FETCHES = Counter(
    "taskql_jwks_fetches", "Fetches of the JWKS signing keys, by outcome", ["outcome"]
)
# One series per live process (labelled by pid in multiprocess mode, where prometheus-client's
# own process metrics are unavailable): a replaced worker shows as a new pid.
PROCESS_STARTED = Gauge(
    "taskql_process_start_time_seconds",
    "When each live process (a worker, or the workers' supervisor) started, in seconds since "
    "the epoch",
    multiprocess_mode="liveall",
)
WORKER_REPLACEMENTS = Counter(
    "taskql_worker_replacements",
    "Workers the supervisor replaced, by reason: exited (or was killed) or unresponsive",
    ["reason"],
)


LIVE_SUBSCRIBERS = Gauge(
    "taskql_live_subscribers",
    "Live subscriptions open (GraphQL over WebSocket or SSE, and the REST event stream)",
    multiprocess_mode="livesum",
)
LIVE_EVENTS_DELIVERED = Counter(
    "taskql_live_events_delivered", "Task events handed to live subscriptions"
)
LIVE_DELIVERY_LAG = Histogram(
    "taskql_live_delivery_lag_seconds",
    "Time from a change's commit (its transaction's start) to its event reaching a live "
    "subscription; events replayed from a cursor are not counted",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
LIVE_STREAMS_ENDED = Counter(
    "taskql_live_streams_ended",
    "Live subscriptions the server ended, by reason: SLOW_CONSUMER (dropped with its cursor), "
    "TOKEN_EXPIRED, SHUTTING_DOWN",
    ["reason"],
)


class LiveUpdateMetrics:
    """Records what the live-update hub reports (resolvers.live.LiveMetrics)."""

    def subscribers(self, change: int) -> None:
        LIVE_SUBSCRIBERS.inc(change)

    def delivered(self, lag_seconds: float | None) -> None:
        LIVE_EVENTS_DELIVERED.inc()
        if lag_seconds is not None:
            LIVE_DELIVERY_LAG.observe(max(lag_seconds, 0.0))

    def ended(self, code: str) -> None:
        LIVE_STREAMS_ENDED.labels(code).inc()


class PoolStats(Protocol):
    """What the pool gauges read of a connection pool (db.engine.Database is one)."""

    @property
    def size(self) -> int: ...
    @property
    def idle(self) -> int: ...


class RequestMetrics:
    """Records each request under bounded labels; the label children are cached per combination.

    One per process (REQUEST_METRICS), like the metrics it feeds, so the bounds are per process.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._operations: set[str] = set()

    def observe(
        self, route: str, operation: str | None, method: str, status: int, seconds: float
    ) -> None:
        method = method if method in _METHODS else "OTHER"
        key = (route, self._operation_label(operation), method, status)
        children = self._children.get(key)
        if children is None:
            labels = (route, key[1], method, str(status))
            children = (REQUESTS.labels(*labels), REQUEST_SECONDS.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def _operation_label(self, operation: str | None) -> str:
        if operation is None:
            return ""
        if operation in self._operations:
            return operation
        if len(self._operations) < _MAX_OPERATIONS:
            self._operations.add(operation)
            return operation
        return "other"


REQUEST_METRICS = RequestMetrics()


def watch_pool(database: PoolStats, *, every_seconds: float = 1.0) -> asyncio.Task[None]:
    """Keep the pool gauges current by sampling the pool; cancel the task to stop.

    Sampling costs nothing per request, and gauges set by this process also add up across
    workers in multiprocess mode.
    """

    async def sample() -> None:
        while True:
            _sample_pool(database)
            await asyncio.sleep(every_seconds)

    return asyncio.create_task(sample(), name="pool-gauges")


def _sample_pool(database: PoolStats) -> None:
    idle = database.idle
    POOL_IN_USE.set(database.size - idle)
    POOL_IDLE.set(idle)


def process_started() -> None:
    PROCESS_STARTED.set_to_current_time()


def worker_replaced(reason: str) -> None:
    WORKER_REPLACEMENTS.labels(reason).inc()


def database_unavailable() -> None:
    DATABASE_UNAVAILABLE.inc()


def retention_purged(rows: int) -> None:
    RETENTION_PURGED.inc(rows)


def jwks_fetched(succeeded: bool) -> None:
    JWKS_FETCHES.labels("ok" if succeeded else "error").inc()


def mark_process_dead(multiprocess_dir: Path | None, pid: int) -> None:
    """Drop the live gauges of a worker that stopped (or was killed) from the shared directory."""
    if multiprocess_dir is not None:
        multiprocess.mark_process_dead(pid, str(multiprocess_dir))  # type: ignore[no-untyped-call]


def clear_multiprocess_dir(multiprocess_dir: Path, *, keep_pid: int) -> None:
    """Remove the samples of earlier runs (all but `keep_pid`'s); call before workers start."""
    for sample_file in multiprocess_dir.glob("*.db"):
        if not sample_file.stem.endswith(f"_{keep_pid}"):
            sample_file.unlink()


def routes(multiprocess_dir: Path | None) -> list[Route]:
    """GET /metrics: this process's samples, or every worker's with a multiprocess directory."""
    registry = REGISTRY
    if multiprocess_dir is not None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]

    async def serve(request: Request) -> Response:
        # This worker's gauges exactly as of now; other workers' as of their last sample.
        _sample_pool(request.state.database)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", serve, methods=["GET"])]
