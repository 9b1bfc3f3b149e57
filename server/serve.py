"""Serving the app: uvicorn with our logging, one or several workers, start-up housekeeping."""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from server import metrics, workers
from server.drain import DrainingServer
from server.websocket import LeanWebSocketProtocol


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Where to listen, how many workers, and what uvicorn needs to know about its proxies."""

    host: str
    port: int
    workers: int
    log_level: str
    forwarded_allow_ips: str
    multiprocess_dir: Path | None
    # Seconds a worker's event loop may stall before the supervisor replaces the worker.
    worker_timeout: float = 30.0
    # Seconds from SIGTERM until whatever still runs is killed.
    shutdown_grace: float = 20.0


# How uvicorn serves WebSockets (tests serve the app with the same).
WEBSOCKET_OPTIONS: dict[str, Any] = {
    # Task events are small JSON messages: compressing each saves little, and the zlib
    # state per WebSocket (tens of KB) would be most of what an idle subscriber costs.
    "ws_per_message_deflate": False,
    "ws": LeanWebSocketProtocol,
}


def serve(app_factory: str, config: ServeConfig) -> int:
    """Run the app made by `app_factory` ("module:function") until SIGTERM; the exit status."""
    if config.multiprocess_dir is not None:
        metrics.clear_multiprocess_dir(config.multiprocess_dir, keep_pid=os.getpid())
    options: dict[str, Any] = {
        "log_level": config.log_level.lower(),
        # Our logging setup and access log (one line per request, in LOG_FORMAT) replace
        # uvicorn's.
        "log_config": None,
        "access_log": False,
        "forwarded_allow_ips": config.forwarded_allow_ips,
        # In-flight requests (and open event streams) get this long after SIGTERM.
        "timeout_graceful_shutdown": workers.drain_seconds(config.shutdown_grace),
        **WEBSOCKET_OPTIONS,
    }
    if config.workers > 1 and workers.supported():
        supervision = workers.Supervision(
            worker_timeout=config.worker_timeout,
            shutdown_grace=config.shutdown_grace,
            multiprocess_dir=config.multiprocess_dir,
        )
        return workers.serve(
            app_factory, config.host, config.port, config.workers, options, supervision
        )
    if config.workers > 1:
        uvicorn.run(
            app_factory,
            factory=True,
            host=config.host,
            port=config.port,
            workers=config.workers,
            **options,
        )
        return 0
    uvicorn_config = uvicorn.Config(
        app_factory, factory=True, host=config.host, port=config.port, **options
    )
    server = DrainingServer(uvicorn_config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


# Net container allocations between two young-generation collections (Python's default: 700).
# A worker under load has a few dozen requests in flight, waiting on the database. At 700 the
# collector ran 60-180 times per second of a busy worker's CPU, moved those requests' live
# objects on to older generations and walked them again there: 5-7% of the worker's CPU. At
# 10,000 it runs 1-3 times per CPU second, 3-5 ms each time: under 1% (bench/README.md,
# "Garbage collection under load"). One process serving one request at a time shows no
# difference.
YOUNG_COLLECTION_THRESHOLD = 10_000

_tuned = False


def tune_garbage_collection() -> None:
    """Once start-up is done: keep what it built out of garbage collection, and collect the
    young generation less often.

    Start-up built the schema, compiled statements and imported modules: about 100,000
    objects that live as long as the process. Otherwise each full collection walks them all
    again: under load a worker paused for up to 200 ms at a time, which showed in the tail
    latency of every request waiting on it.
    """
    global _tuned
    # Once per process, not again for each app it creates (tests create hundreds). A flag,
    # because gc.get_freeze_count() walks the whole frozen generation: 14 ms each time.
    if not _tuned:
        _tuned = True
        gc.collect()
        gc.freeze()
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
