"""The worker supervisor, on a real `main.py serve` with two workers: killed, crashing, hung
and stuck workers; and its back-off policy on its own."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest

from server.workers import Backoff
from tests.support.cli import PROJECT_DIR, cli_environment
from tests.support.supervised import Served, free_port, process_pids, serve, sigstop, wait_for
from tests.support.tokens import hs256_token

RESTARTING = "starting another in"


def _replaced(served: Served, victim: int) -> bool:
    workers = served.workers()
    return len(workers) == 2 and victim not in workers


def _serves_requests(served: Served) -> None:
    headers = {"Authorization": f"Bearer {hs256_token('alice')}"}
    for _ in range(6):  # a new connection each time, so both workers answer some
        assert httpx.get(f"{served.url}/api/alice/tasks", headers=headers).status_code == 200


def _messages(served: Served, containing: str) -> list[str]:
    return [message for _, message in served.log_lines() if containing in message]


def test_backoff_doubles_while_workers_die_young_and_resets_after_a_long_life() -> None:
    backoff = Backoff()

    delays = [backoff.after_exit(lived_seconds=2) for _ in range(9)]
    after_a_long_life = backoff.after_exit(lived_seconds=3600)
    next_young_death = backoff.after_exit(lived_seconds=2)

    assert delays == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert after_a_long_life == 0
    assert next_young_death == 0.5


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_its_metrics_leave(
    clean_database: str, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with serve(
        clean_database, tmp_path / "serve.log", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    ) as served:
        supervisor = served.supervisor.pid
        first = {*served.workers(), supervisor}
        wait_for(lambda: process_pids(served.scrape()) == first, "both workers in /metrics")
        victim = min(served.workers())

        psutil.Process(victim).kill()
        wait_for(lambda: _replaced(served, victim), "a replacement worker")
        current = {*served.workers(), supervisor}
        wait_for(lambda: process_pids(served.scrape()) == current, "the replacement in /metrics")

        samples = served.scrape()
        _serves_requests(served)
        dead_files = list(metrics_dir.glob(f"gauge_live*_{victim}.db"))
        ended = _messages(served, f"worker {victim} was killed by SIGKILL")

    assert victim not in process_pids(samples)
    assert dead_files == []
    assert samples[("taskql_worker_replacements_total", frozenset({("reason", "exited")}))] == 1
    assert len(ended) == 1
    assert RESTARTING in ended[0]


@pytest.mark.slow
def test_a_crash_loop_backs_off_and_recovers(clean_database: str, tmp_path: Path) -> None:
    # Replacements cannot start while a file stands where the metrics directory was (each
    # refuses the setting as it imports the app, exit status 2); the worker still running
    # keeps its open files and serves on.
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with serve(
        clean_database, tmp_path / "serve.log", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    ) as served:
        victim = min(served.workers())
        shutil.rmtree(metrics_dir)
        metrics_dir.write_text("not a directory")
        psutil.Process(victim).kill()
        wait_for(
            lambda: len(_messages(served, RESTARTING)) >= 4,
            "four replacements in a row to die",
            seconds=240,
        )
        metrics_dir.unlink()
        metrics_dir.mkdir()
        wait_for(lambda: _replaced(served, victim), "a replacement that starts", seconds=120)
        _serves_requests(served)
        lines = served.log_lines()

    deaths = [(when, message) for when, message in lines if RESTARTING in message][:4]
    starts = [when for when, message in lines if message.endswith(" started")]
    delays = [float(message.split(f"{RESTARTING} ")[1].split(" s")[0]) for _, message in deaths]
    # The killed worker counts as dying young too, unless it had lived a minute (a slow
    # start on a loaded machine), which resets the back-off.
    assert delays in ([0.5, 1, 2, 4], [0, 0.5, 1, 2])
    assert all("exited with status 2" in message for _, message in deaths[1:]), deaths
    for (died_at, _), delay in zip(deaths, delays, strict=True):
        assert _next(starts, died_at) - died_at.timestamp() >= delay - 0.01


def _next(starts: list[datetime], after: datetime) -> float:
    """When the first worker after `after` started (log times are to the millisecond)."""
    return min(start for start in starts if start >= after).timestamp()


@pytest.mark.slow
def test_a_hung_worker_is_killed_and_replaced(clean_database: str, tmp_path: Path) -> None:
    with serve(clean_database, tmp_path / "serve.log", WORKER_TIMEOUT="5") as served:
        _serves_requests(served)
        victim = psutil.Process(min(served.workers()))
        frozen_at = time.monotonic()
        sigstop(victim)

        wait_for(lambda: _replaced(served, victim.pid), "the hung worker's replacement")
        replaced_after = time.monotonic() - frozen_at
        _serves_requests(served)
        killed = _messages(served, f"worker {victim.pid} is unresponsive for")

    assert not victim.is_running()
    assert replaced_after >= 5
    assert len(killed) == 1
    assert "WORKER_TIMEOUT 5 s" in killed[0]


@pytest.mark.slow
def test_shutdown_kills_a_worker_that_outlives_the_grace_period(
    clean_database: str, tmp_path: Path
) -> None:
    # A stopped process cannot act on SIGTERM: it stands for a worker that ignores it.
    with serve(
        clean_database, tmp_path / "serve.log", SHUTDOWN_GRACE_SECONDS="3", WORKER_TIMEOUT="600"
    ) as served:
        workers = list(served.workers().values())
        sigstop(workers[0])
        asked_at = time.monotonic()
        status = served.stop(timeout=60)
        took = time.monotonic() - asked_at
        killed = _messages(served, f"worker {workers[0].pid} still running 3 s after SIGTERM")

    assert status == 0
    assert 3 <= took < 3 + 10  # the grace, plus joining on a loaded machine
    assert len(killed) == 1
    assert not any(worker.is_running() for worker in workers)


@pytest.mark.slow
def test_a_second_sigterm_kills_at_once(clean_database: str, tmp_path: Path) -> None:
    with serve(
        clean_database, tmp_path / "serve.log", SHUTDOWN_GRACE_SECONDS="120", WORKER_TIMEOUT="600"
    ) as served:
        workers = list(served.workers().values())
        sigstop(workers[0])
        asked_at = time.monotonic()
        served.supervisor.send_signal(signal.SIGTERM)
        time.sleep(1)
        served.supervisor.send_signal(signal.SIGTERM)
        status = served.supervisor.wait(timeout=60)
        took = time.monotonic() - asked_at

    assert status == 0
    assert took < 30  # far from the 120 s of grace
    assert not any(worker.is_running() for worker in workers)


@pytest.mark.slow
def test_workers_that_cannot_start_stop_the_server_with_status_1(tmp_path: Path) -> None:
    # Every worker fails its start-up (the embedded database cannot be created where a file
    # is in the way): nothing to wait for, the deployment is broken, say so and stop.
    (tmp_path / "postgres").write_text("not a directory")
    env = cli_environment(DATA_DIR=str(tmp_path), PORT=str(free_port()), WORKERS="2")

    result = subprocess.run(
        [sys.executable, "main.py", "serve"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert result.returncode == 1
    assert "exited with status 3" in result.stderr
    assert "before any worker served; stopping" in result.stderr
