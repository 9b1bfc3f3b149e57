"""Live updates across processes sharing only PostgreSQL: other instances, WORKERS=2,
resuming after a disconnect, and a PostgreSQL restart while subscribed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import psutil
import pytest

from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade
from tests.support.servers import ThrowawayPostgres, throwaway_postgres
from tests.support.streams import (
    Deadline,
    bearer,
    create_tasks,
    cursors,
    graphql_event,
    graphql_events,
    new_user,
    recorded_cursors,
    rest_event,
    rest_events,
    resuming_event_source,
    resuming_websocket,
    served,
)

pytestmark = pytest.mark.slow


async def _collected(received: list[dict[str, Any]], count: int, seconds: float = 20) -> None:
    for _ in range(int(seconds / 0.02)):
        if len(received) >= count:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # and nothing more than that
    assert len(received) == count, cursors(received)


async def test_a_rest_write_on_one_process_reaches_a_graphql_subscriber_on_another(
    clean_database: str,
) -> None:
    user = new_user()
    received: list[dict[str, Any]] = []
    stop = asyncio.Event()
    with served(clean_database) as (writer, _), served(clean_database) as (reader, _):
        listening = asyncio.create_task(resuming_websocket(reader, user, received, stop))
        async with httpx.AsyncClient(base_url=writer) as http:
            await create_tasks(http, user, 5)
            await _collected(received, 5)
        stop.set()
        listening.cancel()
    assert cursors(received) == [int(c) for c in await recorded_cursors(clean_database, user)]
    assert len(received) == 5
    assert {event["kind"] for event in received} == {"CREATED"}


def _listening_workers(supervisor: psutil.Process, port: int) -> int:
    count = 0
    for child in supervisor.children():
        on_port = child.net_connections(kind="tcp")
        count += any(c.laddr.port == port and c.status == psutil.CONN_LISTEN for c in on_port)
    return count


async def _until_both_workers_listen(supervisor: psutil.Process, port: int) -> None:
    """The server answers once one worker is up; the kernel spreads connections only over the
    workers listening when they arrive."""
    for _ in range(600):
        if _listening_workers(supervisor, port) == 2:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the second worker never listened")


def _worker_of(connections: int, supervisor: psutil.Process, port: int) -> dict[int, int]:
    """Established connections on `port` per worker process (those listening on it)."""
    spread = {}
    for child in supervisor.children():
        on_port = [c for c in child.net_connections(kind="tcp") if c.laddr.port == port]
        if any(c.status == psutil.CONN_LISTEN for c in on_port):
            spread[child.pid] = sum(c.status == psutil.CONN_ESTABLISHED for c in on_port)
    assert sum(spread.values()) >= connections
    return spread


async def test_with_two_workers_every_connection_of_a_user_gets_every_event(
    clean_database: str,
) -> None:
    user = new_user()
    # All 16 on one worker by chance: 1 in 32,768 (SO_REUSEPORT hashes each connection).
    subscribers = 16
    with served(clean_database, WORKERS="2") as (url, process):
        port = int(url.rsplit(":", 1)[1])
        await _until_both_workers_listen(psutil.Process(process.pid), port)
        async with contextlib.AsyncExitStack() as stack:
            streams = []
            for _ in range(subscribers):
                # A connection each, so that the kernel spreads them over the workers.
                http = await stack.enter_async_context(httpx.AsyncClient(base_url=url))
                streams.append(await stack.enter_async_context(rest_events(http, user)))
            spread = _worker_of(subscribers, psutil.Process(process.pid), port)
            assert all(spread.values()), f"both workers should serve some: {spread}"
            for _ in range(6):
                async with httpx.AsyncClient(base_url=url) as one_off:
                    await create_tasks(one_off, user, 1)
            got = [[rest_event(await anext(s))["cursor"] for _ in range(6)] for s in streams]
    recorded = await recorded_cursors(clean_database, user)
    assert len(recorded) == 6
    assert got == [recorded] * subscribers


async def test_a_client_that_reconnects_with_its_cursor_gets_exactly_what_it_missed(
    clean_database: str,
) -> None:
    user = new_user()
    with served(clean_database) as (url, _):
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            await create_tasks(http, user, 1)
            async with rest_events(http, user, after="0") as events:
                cursor = rest_event(await anext(events))["cursor"]
            ids = await create_tasks(http, user, 7)
            for task_id in ids[:3]:
                await http.patch(f"/api/{user}/tasks/{task_id}/complete", headers=bearer(user))
            async with rest_events(http, user, after=cursor) as events:
                missed = [rest_event(await anext(events)) for _ in range(10)]
            async with graphql_events(http, user, after=cursor) as events:
                missed_graphql = [graphql_event(await anext(events)) for _ in range(10)]
    recorded = await recorded_cursors(clean_database, user)
    assert [cursor, *(e["cursor"] for e in missed)] == recorded
    assert [e["kind"] for e in missed] == ["created"] * 7 + ["completion_toggled"] * 3
    assert [e["cursor"] for e in missed_graphql] == [e["cursor"] for e in missed]


@pytest.fixture
def restartable() -> Iterator[tuple[ThrowawayPostgres, str]]:
    """A PostgreSQL of this test's own, migrated, which the test may stop and start."""
    for server in throwaway_postgres():
        url = server.url
        asyncio.run(_migrate(url))
        yield server, url


async def _migrate(url: str) -> None:
    engine = create_engine(DatabaseConfig(url=url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


async def test_after_a_postgresql_restart_subscribers_have_every_event_once(
    restartable: tuple[ThrowawayPostgres, str],
) -> None:
    server, url = restartable
    user = new_user()
    over_websocket: list[dict[str, Any]] = []
    over_sse: list[dict[str, Any]] = []
    stop = asyncio.Event()
    with served(url) as (reader, _), served(url) as (writer, _):
        subscribers = [
            asyncio.create_task(resuming_websocket(reader, user, over_websocket, stop)),
            asyncio.create_task(resuming_event_source(reader, user, over_sse, stop)),
        ]
        async with httpx.AsyncClient(timeout=10) as http:
            await _writes(http, reader, user, 3)
            await _collected(over_websocket, 3)
            server.stop()
            await asyncio.sleep(1)
            server.start()
            # Written elsewhere at once: the reader may not be listening again yet.
            await _writes(http, writer, user, 3)
            await _writes(http, reader, user, 3)
            await _collected(over_websocket, 9, seconds=30)
            await _collected(over_sse, 9, seconds=30)
        stop.set()
        for task in subscribers:
            task.cancel()
    recorded = [int(cursor) for cursor in await recorded_cursors(url, user)]
    assert len(recorded) == 9
    assert cursors(over_websocket) == recorded
    assert cursors(over_sse) == recorded


async def _writes(http: httpx.AsyncClient, base: str, user: str, count: int) -> None:
    """`count` creates, each retried while the database comes back (503)."""
    for number in range(count):
        deadline = Deadline(30)
        while True:
            response = await http.post(
                f"{base}/api/{user}/tasks", json={"title": f"w{number}"}, headers=bearer(user)
            )
            if response.status_code == 201:
                break
            assert response.status_code == 503, response.text
            assert deadline.left(), "the database did not come back"
            await asyncio.sleep(0.2)
