"""The database goes away mid-run: quick 503s, a live process, recovery, no acknowledged loss."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import httpx
import pytest

from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade
from tests.support.app import app_client, make_settings
from tests.support.servers import ThrowawayPostgres, throwaway_postgres

pytestmark = pytest.mark.slow

USER = "alice"
# Short bounds keep the test fast; the assertion below allows for the pool's pre-ping and
# one reconnect, each bounded by these.
TIMEOUT_SECONDS = 1.0
FAST_503_SECONDS = 3 * TIMEOUT_SECONDS
RECOVERY_SECONDS = 10.0
WRITERS = 8

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
async def own_postgres() -> AsyncIterator[ThrowawayPostgres]:
    """A migrated PostgreSQL of this test's own, which the test may stop, freeze and restart."""
    servers: Iterator[ThrowawayPostgres] = throwaway_postgres()
    server = next(servers)
    try:
        engine = create_engine(DatabaseConfig(url=server.url))
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        yield server
    finally:
        servers.close()


@pytest.fixture
async def api(own_postgres: ThrowawayPostgres) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        own_postgres.url,
        DB_CONNECT_TIMEOUT=str(TIMEOUT_SECONDS),
        DB_STATEMENT_TIMEOUT=str(TIMEOUT_SECONDS),
    )
    async with app_client(settings) as http:
        yield http


def _probes(auth: Headers, task_id: int) -> list[tuple[str, str, dict[str, object]]]:
    """One request of every kind that needs the database: (door, method + path, json body)."""
    return [
        ("rest", f"GET /api/{USER}/tasks", {}),
        ("rest", f"GET /api/{USER}/tasks/{task_id}", {}),
        ("rest", f"POST /api/{USER}/tasks", {"title": "during the outage"}),
        ("rest", f"PUT /api/{USER}/tasks/{task_id}", {"title": "changed in the outage"}),
        ("rest", f"PATCH /api/{USER}/tasks/{task_id}/complete", {}),
        ("rest", f"DELETE /api/{USER}/tasks/{task_id}", {}),
        ("graphql", "POST /graphql", {"query": "{ tasks(first: 5) { nodes { id } } }"}),
        (
            "graphql",
            "POST /graphql",
            {"query": f'mutation {{ toggleTaskCompletion(id: "{task_id}") {{ task {{ id }} }} }}'},
        ),
    ]


async def _send(
    http: httpx.AsyncClient, auth: Headers, request: str, body: dict[str, object]
) -> httpx.Response:
    method, path = request.split(" ", 1)
    json = body if method in {"POST", "PUT"} else None
    return await http.request(method, path, json=json, headers=auth(USER))


async def _assert_unavailable(http: httpx.AsyncClient, auth: Headers, task_id: int) -> float:
    """Every database-backed request, all at once, is a quick and well-formed 503.

    Returns the slowest one's seconds.
    """

    async def timed(request: str, body: dict[str, object]) -> tuple[httpx.Response, float]:
        began = time.monotonic()
        response = await _send(http, auth, request, body)
        return response, time.monotonic() - began

    probes = _probes(auth, task_id)
    outcomes = await asyncio.gather(*(timed(request, body) for _, request, body in probes))
    for (door, request, _), (response, elapsed) in zip(probes, outcomes, strict=True):
        assert response.status_code == 503, (request, response.text)
        assert elapsed < FAST_503_SECONDS, (request, elapsed)
        assert int(response.headers["retry-after"]) > 0
        if door == "rest":
            assert response.headers["content-type"] == "application/json"
            assert "unavailable" in response.json()["detail"]
        else:
            assert [e["extensions"]["code"] for e in response.json()["errors"]] == [
                "SERVICE_UNAVAILABLE"
            ]
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 503
    assert "retry-after" in ready.headers
    return max(elapsed for _, elapsed in outcomes)


async def _assert_recovered(http: httpx.AsyncClient, auth: Headers) -> list[int]:
    """The very next burst of requests all succeed (stale pooled connections are replaced)."""
    responses = await asyncio.gather(
        *(http.get(f"/api/{USER}/tasks", headers=auth(USER)) for _ in range(WRITERS * 2)),
        http.get("/readyz"),
    )
    assert [r.status_code for r in responses] == [200] * len(responses)
    return [task["id"] for task in responses[0].json()]


async def test_database_restart_gives_fast_503s_then_recovers_with_every_acknowledged_write(
    api: httpx.AsyncClient, own_postgres: ThrowawayPostgres, auth: Headers
) -> None:
    acknowledged: list[int] = []
    statuses: set[int] = set()
    stop_writing = asyncio.Event()
    enough_written = asyncio.Event()

    async def write() -> None:
        while not stop_writing.is_set():
            response = await api.post(
                f"/api/{USER}/tasks", json={"title": "written"}, headers=auth(USER)
            )
            statuses.add(response.status_code)
            if response.status_code == 201:
                acknowledged.append(response.json()["id"])
                if len(acknowledged) >= 50:
                    enough_written.set()

    writers = [asyncio.create_task(write()) for _ in range(WRITERS)]
    await enough_written.wait()
    # The server goes down while writes are in flight.
    await asyncio.to_thread(own_postgres.stop)
    await asyncio.sleep(0.3)
    stop_writing.set()
    await asyncio.gather(*writers)

    assert statuses <= {201, 503}, statuses
    slowest = await _assert_unavailable(api, auth, acknowledged[0])

    await asyncio.to_thread(own_postgres.start)
    began = time.monotonic()
    stored = await _assert_recovered(api, auth)
    recovery = time.monotonic() - began

    assert set(acknowledged) <= set(stored)
    assert recovery < RECOVERY_SECONDS
    print(f"slowest 503: {slowest:.3f}s, recovery after restart: {recovery:.3f}s")


async def test_writes_retried_with_their_key_across_a_restart_happen_exactly_once(
    api: httpx.AsyncClient, own_postgres: ThrowawayPostgres, auth: Headers
) -> None:
    """Each writer sends every new task with a key of its own and retries each failure with the
    same key until it is acknowledged, across the database stopping and starting again."""
    acknowledged: dict[str, int] = {}
    statuses: Counter[int] = Counter()
    replays: list[str] = []
    retried: set[str] = set()
    stop_writing = asyncio.Event()
    # Set once this many writes are acknowledged: 50 before the restart, then 50 more after it.
    target = [50]
    reached = asyncio.Event()

    async def write_once(title: str) -> None:
        key = f'"{uuid.uuid4()}"'
        for attempt in itertools.count():
            if attempt:
                retried.add(title)
                await asyncio.sleep(0.05)
            response = await api.post(
                f"/api/{USER}/tasks",
                json={"title": title},
                headers={**auth(USER), "Idempotency-Key": key},
            )
            statuses[response.status_code] += 1
            if response.status_code == 201:
                acknowledged[title] = response.json()["id"]
                if "idempotent-replayed" in response.headers:
                    replays.append(title)
                if len(acknowledged) >= target[0]:
                    reached.set()
                return
            assert response.status_code == 503, response.text

    async def writer(number: int) -> None:
        for sequence in itertools.count():
            if stop_writing.is_set():
                return
            await write_once(f"writer {number} task {sequence}")

    writers = [asyncio.create_task(writer(number)) for number in range(WRITERS)]
    await reached.wait()
    # The server goes down while writes are in flight, stays down a while, and comes back.
    await asyncio.to_thread(own_postgres.stop)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(own_postgres.start)
    target[0] = len(acknowledged) + 50
    reached.clear()
    async with asyncio.timeout(RECOVERY_SECONDS):
        await reached.wait()
    stop_writing.set()
    await asyncio.gather(*writers)

    conn = await asyncpg.connect(own_postgres.url)
    try:
        rows = await conn.fetch("SELECT id, title FROM tasks WHERE owner_id = $1", USER)
    finally:
        await conn.close()
    stored = Counter(row["title"] for row in rows)
    assert set(statuses) == {201, 503}, statuses
    assert retried, "no write met the outage"
    # Zero lost: every acknowledged write is stored, under the id it was acknowledged with.
    assert {(row["title"], row["id"]) for row in rows} == set(acknowledged.items())
    # Zero duplicated: every write, retried or not, is stored once.
    assert {title: count for title, count in stored.items() if count > 1} == {}
    print(
        f"{len(acknowledged)} writes, {len(retried)} retried through the restart, "
        f"{statuses[503]} answers 503, {len(replays)} acknowledged by a replay"
    )


async def test_hung_database_gives_503_within_the_timeouts_then_recovers(
    api: httpx.AsyncClient, own_postgres: ThrowawayPostgres, auth: Headers
) -> None:
    created = await api.post(f"/api/{USER}/tasks", json={"title": "before"}, headers=auth(USER))
    task_id = created.json()["id"]

    # A frozen server accepts TCP connections but never answers: only timeouts end the wait.
    frozen = own_postgres.freeze()
    try:
        slowest = await _assert_unavailable(api, auth, task_id)
    finally:
        own_postgres.thaw(frozen)

    assert task_id in await _assert_recovered(api, auth)
    print(f"slowest 503 while hung: {slowest:.3f}s")


async def test_connections_from_before_a_restart_are_replaced_unnoticed(
    api: httpx.AsyncClient, own_postgres: ThrowawayPostgres, auth: Headers
) -> None:
    # Fill the pool, as a busy worker has it when Neon suspends its compute or a failover happens.
    await _assert_recovered(api, auth)

    await asyncio.to_thread(own_postgres.stop)
    await asyncio.to_thread(own_postgres.start)

    await _assert_recovered(api, auth)
