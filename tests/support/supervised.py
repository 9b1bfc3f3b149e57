"""`python main.py serve` with several workers as a subprocess: its workers, logs and metrics."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import PROJECT_DIR, cli_environment
from tests.support.tokens import JWT_SECRET

# Start-up imports alone took 10-15 s on a loaded 2-core machine.
START_SECONDS = 90
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) ([\w.]+): (.*)$")


@dataclass
class Served:
    """A running `main.py serve`: its URL, the supervising process and where it logs."""

    url: str
    port: int
    supervisor: subprocess.Popen[bytes]
    log_path: Path

    def workers(self) -> dict[int, psutil.Process]:
        """The supervisor's children listening on the port, by pid."""
        found = {}
        for child in psutil.Process(self.supervisor.pid).children():
            try:
                listening = any(
                    c.status == psutil.CONN_LISTEN and c.laddr.port == self.port
                    for c in child.net_connections(kind="tcp")
                )
            except psutil.NoSuchProcess:
                continue
            if listening:
                found[child.pid] = child
        return found

    def log_lines(self, logger: str = "server.workers") -> list[tuple[datetime, str]]:
        """(time, message) of each text-format log line of `logger` so far."""
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            match = _LOG_LINE.match(line)
            if match and match[3] == logger:
                when = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
                lines.append((when, match[4]))
        return lines

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def scrape(self) -> Samples:
        """Every sample of /metrics by name and labels."""
        response = httpx.get(f"{self.url}/metrics", timeout=10)
        assert response.status_code == 200
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }

    def stop(self, timeout: float = 60) -> int:
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGTERM)
        return self.supervisor.wait(timeout=timeout)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], object], what: str, seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@contextmanager
def serve(database_url: str, log_path: Path, **variables: str) -> Iterator[Served]:
    """`main.py serve` with two workers (unless `variables` say otherwise), logging as text to
    `log_path`; waits until both listen. Stopped, and every child with it, on exit."""
    port = free_port()
    env = cli_environment(
        DATABASE_URL=database_url,
        JWT_SECRET=JWT_SECRET,
        PORT=str(port),
        WORKERS="2",
        LOG_LEVEL="INFO",
        LOG_FORMAT="text",
        **variables,
    )
    with log_path.open("wb") as log:
        supervisor = subprocess.Popen(
            [sys.executable, "main.py", "serve"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", port, supervisor, log_path)
    try:
        workers = int(variables.get("WORKERS", "2"))

        def listening() -> bool:
            assert supervisor.poll() is None, f"the server exited:\n{served.log_text()}"
            return len(served.workers()) == workers

        wait_for(listening, f"{workers} listening workers")
        yield served
    finally:
        try:
            children = psutil.Process(supervisor.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        try:
            served.stop()
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()
        for child in children:
            if child.is_running():
                child.kill()


def process_pids(samples: Samples) -> set[int]:
    """The pids a scrape lists a start time for: each live worker, and the supervisor."""
    return {
        int(dict(labels)["pid"])
        for name, labels in samples
        if name == "taskql_process_start_time_seconds"
    }


def sigstop(process: psutil.Process) -> None:
    """Freeze a process, as a blocked event loop or a wedged machine would."""
    os.kill(process.pid, signal.SIGSTOP)
