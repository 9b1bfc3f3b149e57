"""Several worker processes on one port, each accepting on a listening socket of its own.

uvicorn's own `--workers` shares one listening socket between the workers, and the worker
that wakes first accepts every connection waiting (uvloop accepts until none is left). Of
1,000 keep-alive clients arriving together, one worker was measured holding 740, 892 and
even all 1,000, and saturated while the other idled: p95 latency rose five- to tenfold.
Here each worker binds its own socket with SO_REUSEPORT and the kernel spreads connections
across them by hash, about evenly every time. The supervisor restarts a worker that dies
and stops them all, gracefully, on SIGTERM or SIGINT.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from server.drain import DrainingServer

log = logging.getLogger(__name__)


def supported() -> bool:
    """Whether this platform can give each worker a socket of its own (not Windows)."""
    return hasattr(socket, "SO_REUSEPORT")


def serve(app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Run `workers` uvicorn servers of the app factory `app` ("module:function") until
    SIGTERM or SIGINT; the exit status.

    `options` are uvicorn.Config keywords. A worker that exits on its own is replaced,
    unless it failed to start (port taken, app start-up failed), which would only repeat:
    then all stop, with status 1.
    """
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    def start() -> BaseProcess:
        process = context.Process(target=_run_worker, args=(app, host, port, options))
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    status = 0
    while not stopping.wait(0.5):
        for index, process in enumerate(processes):
            if process.is_alive():
                continue
            if process.exitcode == STARTUP_FAILURE:
                log.error("worker %s failed to start; stopping", process.pid)
                stopping.set()
                status = 1
                break
            log.warning("worker %s exited (%s); starting another", process.pid, process.exitcode)
            processes[index] = start()
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes in-flight requests first
    for process in processes:
        process.join()
    return status


def _run_worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    try:
        listening = _reuse_port_socket(host, port)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", host, port, error)
        raise SystemExit(STARTUP_FAILURE) from error
    server = DrainingServer(uvicorn.Config(app, factory=True, host=host, port=port, **options))
    server.run(sockets=[listening])
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listening.bind((host, port))
    return listening
