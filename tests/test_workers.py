"""Several workers: `main.py serve` with WORKERS=2 reports the metrics of all of them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import JWT_SECRET, PROJECT_DIR, hs256_token

REQUESTS = 20


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_workers(clean_database: str, tmp_path: Path) -> Iterator[str]:
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
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        yield url
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
