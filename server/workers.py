"""Several worker processes on one port, each accepting on a listening socket of its own, and
the supervisor that keeps them serving.

uvicorn's own `--workers` shares one listening socket between the workers, and the worker
that wakes first accepts every connection waiting (uvloop accepts until none is left). Of
1,000 keep-alive clients arriving together, one worker was measured holding 740, 892 and
even all 1,000, and saturated while the other idled: p95 latency rose five- to tenfold.
Here each worker binds its own socket with SO_REUSEPORT and the kernel spreads connections
across them by hash, about evenly every time.

The supervisor:

- replaces a worker that exits or is killed, logs how it ended (exit status or signal), and
  marks its metrics dead: a killed worker never runs its own shutdown, so its live gauges
  would otherwise stay in /metrics for good;
- backs off when replacements keep dying young (exponentially from 0.5 s to 30 s; a worker
  that served for a minute resets it); a worker that dies before any worker has ever
  served stops the whole server with status 1, as a deployment that cannot start should;
- replaces a hung worker: each worker's event loop stamps a heartbeat into memory shared
  with the supervisor once a second (uvicorn's own `callback_notify` tick, so only a loop
  that runs can stamp it), and a worker whose heartbeat is older than WORKER_TIMEOUT (or
  that has not started serving within WORKER_TIMEOUT, and at least 60 s) is killed with
  SIGKILL and replaced;
- stops in bounded time on SIGTERM or SIGINT: SIGTERM to every worker, which stops
  accepting and lets in-flight requests finish; SIGKILL to whatever still runs after
  SHUTDOWN_GRACE_SECONDS (at once on a second SIGTERM or SIGINT).

What would let us delete it: uvicorn's `--workers` (0.54) still hands every worker one
shared socket, its health check is answered by a thread (so a blocked event loop passes it)
and it does not back off. gunicorn (read in 27.0.1) now comes close: with `--reuse-port`
each worker binds its own socket after the fork, the uvicorn-worker class stamps gunicorn's
heartbeat file from the event loop (`--timeout`), `--graceful-timeout` bounds the stop, and a
`child_exit` hook can mark metrics dead; but it replaces dying workers at once, without
back-off, and halts the whole server when one fails to boot. Switching to it, and deleting
this module, is reasonable once a crash loop there is acceptable or backed off.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Final

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from server import metrics
from server.drain import DrainingServer

log = logging.getLogger(__name__)

# How often the supervisor looks at its workers when none has exited.
_TICK_SECONDS: Final = 0.25
# Restart delays after consecutive young deaths: 0.5 s, 1 s, 2 s, ... up to 30 s.
_FIRST_DELAY_SECONDS: Final = 0.5
_MAX_DELAY_SECONDS: Final = 30.0
# A worker that lived this long died of something other than a crash loop.
_STABLE_SECONDS: Final = 60.0
# Heartbeat value of a worker that has not started serving yet.
_NOT_SERVING: Final = 0.0
# A starting worker gets at least this long (imports alone took 10 s on a loaded machine).
_MIN_STARTUP_SECONDS: Final = 60.0


@dataclass(frozen=True, slots=True)
class Supervision:
    """How the supervisor judges and stops its workers."""

    # Seconds a worker's event loop may go without a heartbeat before the worker is killed
    # and replaced; a starting worker gets this long to serve, and at least 60 s.
    worker_timeout: float = 30.0
    # Seconds between SIGTERM and SIGKILL when stopping.
    shutdown_grace: float = 20.0
    # Where workers write their metrics (PROMETHEUS_MULTIPROC_DIR); None: nowhere.
    multiprocess_dir: Path | None = None


def supported() -> bool:
    """Whether this platform can give each worker a socket of its own (not Windows)."""
    return hasattr(socket, "SO_REUSEPORT")


def drain_seconds(shutdown_grace: float) -> float:
    """How long a stopping worker waits for in-flight requests: the grace, less a margin for
    its own shutdown (closing the pool), so that it ends before the supervisor kills it."""
    return max(shutdown_grace - 1.0, shutdown_grace / 2)


class Backoff:
    """Delays before replacing a worker, growing while replacements keep dying young."""

    def __init__(self) -> None:
        self.failures = 0

    def after_exit(self, lived_seconds: float) -> float:
        """Seconds to wait before starting the replacement of a worker that lived this long."""
        if lived_seconds >= _STABLE_SECONDS:
            self.failures = 0
            return 0.0
        self.failures += 1
        return float(min(_MAX_DELAY_SECONDS, _FIRST_DELAY_SECONDS * 2 ** (self.failures - 1)))


@dataclass(slots=True)
class _Worker:
    process: BaseProcess
    # time.monotonic() of the worker's last heartbeat (the clock is system-wide on Linux).
    heartbeat: ctypes.c_double
    started_at: float
    # Kept here: the process object forgets it once closed.
    pid: int


@dataclass(slots=True)
class _Slot:
    """One of the `workers` places: its current worker, or when the next one is due."""

    worker: _Worker | None = None
    due_at: float = 0.0
    backoff: Backoff = field(default_factory=Backoff)


def serve(
    app: str,
    host: str,
    port: int,
    workers: int,
    options: dict[str, Any],
    supervision: Supervision,
) -> int:
    """Run `workers` uvicorn servers of the app factory `app` ("module:function") until
    SIGTERM or SIGINT; the exit status (1 when the workers could not start).

    `options` are uvicorn.Config keywords.
    """
    return _Supervisor(app, host, port, options, supervision).run(workers)


class _Supervisor:
    def __init__(
        self, app: str, host: str, port: int, options: dict[str, Any], supervision: Supervision
    ) -> None:
        self._target = (app, host, port, options)
        self._supervision = supervision
        self._context = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._kill_now = threading.Event()
        # Until a worker has served, a death means the deployment cannot start at all.
        self._served = False
        self._status = 0

    def run(self, workers: int) -> int:
        metrics.process_started()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        slots = [_Slot() for _ in range(workers)]
        try:
            for slot in slots:
                slot.worker = self._start()
            while not self._stopping.is_set():
                running = [slot.worker.process.sentinel for slot in slots if slot.worker]
                wait(running, timeout=_TICK_SECONDS)
                for slot in slots:
                    if self._stopping.is_set():
                        break
                    self._look_after(slot)
        finally:
            # Also after an error of our own: multiprocessing would otherwise wait for the
            # workers at exit, forever, with nobody left to stop them.
            self._stop([slot.worker for slot in slots if slot.worker])
        return self._status

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._stopping.is_set():
            self._kill_now.set()
        self._stopping.set()

    def _start(self) -> _Worker:
        heartbeat = self._context.RawValue(ctypes.c_double, _NOT_SERVING)
        process = self._context.Process(
            target=_run_worker, args=(*self._target, heartbeat), name="taskql-worker"
        )
        process.start()
        assert process.pid is not None
        worker = _Worker(process, heartbeat, time.monotonic(), process.pid)
        log.info("worker %d started", worker.pid)
        return worker

    def _look_after(self, slot: _Slot) -> None:
        now = time.monotonic()
        worker = slot.worker
        if worker is None:
            if now >= slot.due_at:
                slot.worker = self._start()
            return
        beat = worker.heartbeat.value
        if beat != _NOT_SERVING:
            self._served = True
        if worker.process.is_alive():
            timeout = self._supervision.worker_timeout
            if beat == _NOT_SERVING:
                silent, timeout = now - worker.started_at, max(timeout, _MIN_STARTUP_SECONDS)
            else:
                silent = now - beat
            if silent <= timeout:
                return
            log.error(
                "worker %d %s for %.1f s (WORKER_TIMEOUT %g s); killing it",
                worker.pid,
                "has not started serving" if beat == _NOT_SERVING else "is unresponsive",
                silent,
                self._supervision.worker_timeout,
            )
            worker.process.kill()
            worker.process.join(timeout=5)
            reason = "unresponsive"
        else:
            reason = "exited"
        ended = _how_it_ended(worker.process.exitcode)
        lived = now - worker.started_at
        self._bury(worker)
        slot.worker = None
        metrics.worker_replaced(reason)
        if not self._served:
            log.error(
                "worker %d %s after %.1f s, before any worker served; stopping",
                worker.pid,
                ended,
                lived,
            )
            self._status = 1
            self._stopping.set()
            return
        delay = slot.backoff.after_exit(lived)
        slot.due_at = now + delay
        log.warning(
            "worker %d %s after %.1f s; starting another in %.1f s (%d young deaths in a row)",
            worker.pid,
            ended,
            lived,
            delay,
            slot.backoff.failures,
            extra={"fields": {"pid": worker.pid, "exit": ended, "restart_in": delay}},
        )

    def _bury(self, worker: _Worker) -> None:
        """Forget a worker that is gone: its live gauges leave /metrics."""
        metrics.mark_process_dead(self._supervision.multiprocess_dir, worker.pid)
        worker.process.close()

    def _stop(self, workers: list[_Worker]) -> None:
        """SIGTERM to all, SIGKILL to those still running after the grace period."""
        for worker in workers:
            if worker.process.is_alive():
                worker.process.terminate()  # uvicorn stops accepting, finishes in-flight requests
        deadline = time.monotonic() + self._supervision.shutdown_grace
        running = [w for w in workers if w.process.is_alive()]
        while running and time.monotonic() < deadline and not self._kill_now.is_set():
            wait([w.process.sentinel for w in running], timeout=_TICK_SECONDS)
            running = [w for w in running if w.process.is_alive()]
        for worker in running:
            log.error(
                "worker %d still running %g s after SIGTERM (SHUTDOWN_GRACE_SECONDS); killing it",
                worker.pid,
                self._supervision.shutdown_grace,
            )
            worker.process.kill()
        for worker in workers:
            worker.process.join(timeout=5)
            self._bury(worker)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not end"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _run_worker(
    app: str, host: str, port: int, options: dict[str, Any], heartbeat: ctypes.c_double
) -> None:
    try:
        listening = _reuse_port_socket(host, port)
    except OSError as error:
        log.error("cannot listen on %s:%d: %s", host, port, error)
        raise SystemExit(STARTUP_FAILURE) from error

    async def beat() -> None:
        heartbeat.value = time.monotonic()

    config = uvicorn.Config(
        app,
        factory=True,
        host=host,
        port=port,
        # uvicorn calls this from its event loop once a second once serving (timeout_notify
        # is the least interval between calls: 0 means every one of its one-second ticks).
        callback_notify=beat,
        timeout_notify=0,
        **options,
    )
    server = DrainingServer(config)
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
