"""Through a real HAProxy in front of two instances: WebSocket and SSE subscriptions work, and
a SIGTERM of one instance moves its subscribers to the other without losing an event."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import free_port, wait_until_healthy
from tests.support.streams import (
    create_tasks,
    cursors,
    new_user,
    recorded_cursors,
    resuming_event_source,
    resuming_websocket,
    served,
)

pytestmark = pytest.mark.slow

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def _config(port: int, backends: list[str]) -> str:
    servers = "\n".join(
        f"    server app{n} {url.removeprefix('http://')} check" for n, url in enumerate(backends)
    )
    # What docs/deploy.md asks of a proxy: WebSocket upgrades pass (HAProxy tunnels them),
    # long-lived streams are not cut (timeout tunnel), nothing is buffered, and a request that
    # cannot reach a stopped instance is sent to another.
    return f"""
global
    maxconn 2000

defaults
    mode http
    option http-server-close
    option redispatch
    retries 3
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h

frontend api
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    # Every connection to the first instance while it is up: its subscribers are the ones
    # that must move when it stops.
    balance first
    option httpchk GET /healthz
    default-server inter 300ms fall 1 rise 2
{servers}
"""


@pytest.fixture
def instances(clean_database: str) -> Iterator[list[tuple[str, subprocess.Popen[bytes]]]]:
    with served(clean_database) as first, served(clean_database) as second:
        yield [first, second]


@pytest.fixture
def proxy(instances: list[tuple[str, subprocess.Popen[bytes]]]) -> Iterator[str]:
    if not Path(HAPROXY).exists():
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix="taskql-haproxy-"))
    config = directory / "haproxy.cfg"
    config.write_text(_config(port, [url for url, _ in instances]))
    process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)  # type: ignore[arg-type]
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


async def _collected(received: list[dict[str, Any]], count: int) -> None:
    for _ in range(1500):
        if len(received) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)


async def test_a_sigterm_moves_subscribers_to_the_other_instance_without_loss(
    proxy: str, instances: list[tuple[str, subprocess.Popen[bytes]]], clean_database: str
) -> None:
    user = new_user()
    (_, first_process), (second, _) = instances
    over_websocket: list[dict[str, Any]] = []
    over_sse: list[dict[str, Any]] = []
    endings: list[str] = []
    connections: list[str] = []
    stop = asyncio.Event()
    subscribers = [
        asyncio.create_task(resuming_websocket(proxy, user, over_websocket, stop)),
        asyncio.create_task(
            resuming_event_source(proxy, user, over_sse, stop, endings, connections)
        ),
    ]
    async with httpx.AsyncClient(base_url=second, timeout=10) as writer:
        await create_tasks(writer, user, 5)
        await _collected(over_websocket, 5)
        await _collected(over_sse, 5)
        first_process.send_signal(signal.SIGTERM)
        # Writes go on, on the instance that stays, while the clients move.
        for _ in range(10):
            await create_tasks(writer, user, 1)
            await asyncio.sleep(0.1)
        await _collected(over_websocket, 15)
        await _collected(over_sse, 15)
    # uvicorn stops gracefully, then ends by the signal it was sent.
    assert first_process.wait(timeout=30) == -signal.SIGTERM
    assert endings == ["SHUTTING_DOWN"]
    stop.set()
    for task in subscribers:
        task.cancel()
    recorded = [int(cursor) for cursor in await recorded_cursors(clean_database, user)]
    assert len(recorded) == 15
    assert cursors(over_websocket) == recorded, _kinds(over_websocket)
    assert cursors(over_sse) == recorded, (connections[:20], _kinds(over_sse))


def _kinds(received: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What each of the first events was, for a failure message."""
    return [(event["kind"], event["cursor"]) for event in received[:40]]
