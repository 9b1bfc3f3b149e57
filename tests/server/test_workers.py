"""Several workers: `main.py serve` with WORKERS=2 shares the load and the metrics of both."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cli import PROJECT_DIR
from tests.support.servers import wait_until_healthy
from tests.support.tokens import JWT_SECRET, hs256_token

pytestmark = pytest.mark.slow

REQUESTS = 20
CONNECTIONS = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_workers(served: tuple[str, subprocess.Popen[bytes]]) -> str:
    return served[0]


@pytest.fixture
def served(clean_database: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`main.py serve` with two workers: its URL and the supervising process."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": clean_database,
        "JWT_SECRET": JWT_SECRET,
        "PORT": str(port),
        "WORKERS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen([sys.executable, "main.py", "serve"], cwd=PROJECT_DIR, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, server)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_every_scrape_counts_the_requests_of_all_workers(two_workers: str) -> None:
    headers = {"Authorization": f"Bearer {hs256_token('alice')}"}
    for _ in range(REQUESTS):
        # A new connection each time, so the kernel spreads them over both workers.
        assert httpx.get(f"{two_workers}/api/alice/tasks", headers=headers).status_code == 200
    for _ in range(6):
        text = httpx.get(f"{two_workers}/metrics").text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "taskql_http_requests_total"
            and sample.labels["route"] == "/api/{user_id}/tasks"
        )
        assert counted == REQUESTS


def _workers(supervisor: subprocess.Popen[bytes], port: int) -> dict[int, psutil.Process]:
    """The supervisor's children listening on the port, by pid."""
    found = {}
    for child in psutil.Process(supervisor.pid).children():
        try:
            listening = [
                c
                for c in child.net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            ]
        except psutil.NoSuchProcess:
            continue
        if listening:
            found[child.pid] = child
    return found


def _established(worker: psutil.Process, port: int) -> int:
    return sum(
        1
        for c in worker.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
    )


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_connections_are_spread_over_the_workers(
    served: tuple[str, subprocess.Popen[bytes]],
) -> None:
    # One shared listening socket let the first worker awake take nearly all of a burst;
    # each worker's own SO_REUSEPORT socket gives each about half.
    url, supervisor = served
    port = int(url.rsplit(":", 1)[1])
    _wait_for(lambda: len(_workers(supervisor, port)) == 2, "two listening workers")
    workers = _workers(supervisor, port).values()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
    try:
        _wait_for(
            lambda: sum(_established(w, port) for w in workers) == CONNECTIONS,
            "the workers to accept every connection",
        )
        shares = sorted(_established(w, port) for w in workers)
        # Binomial(200, 1/2) is below 60 with probability under 1e-8.
        assert shares[0] >= 60, shares
    finally:
        for client in clients:
            client.close()


def test_a_worker_that_dies_is_replaced(served: tuple[str, subprocess.Popen[bytes]]) -> None:
    url, supervisor = served
    port = int(url.rsplit(":", 1)[1])
    _wait_for(lambda: len(_workers(supervisor, port)) == 2, "two listening workers")
    victim = next(iter(_workers(supervisor, port).values()))
    victim.kill()
    _wait_for(
        lambda: len(workers := _workers(supervisor, port)) == 2 and victim.pid not in workers,
        "a replacement worker",
    )
    headers = {"Authorization": f"Bearer {hs256_token('alice')}"}
    for _ in range(10):
        assert httpx.get(f"{url}/api/alice/tasks", headers=headers).status_code == 200
    assert supervisor.poll() is None


def test_a_port_already_taken_stops_the_server_with_an_error(clean_database: str) -> None:
    with socket.socket() as taken:
        # Without SO_REUSEPORT, so no worker may share it.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "DATABASE_URL": clean_database,
            "JWT_SECRET": JWT_SECRET,
            "PORT": str(port),
            "WORKERS": "2",
        }
        result = subprocess.run(
            [sys.executable, "main.py", "serve"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1" in result.stderr
