"""PostgreSQL fails over to its standby under write load: 503s, never a 500; writes sent with
an Idempotency-Key and retried until acknowledged are each stored exactly once.

The app runs in-process (the real ASGI app and lifespan, as `tests.conftest.app_client`
drives it): what fails over is the path between the app's pool and PostgreSQL, which is the
same code under uvicorn, and the timings measured are then the app's, not a second process's
start-up or scheduling on a shared machine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

import main
from db.engine import DatabaseConfig, create_engine
from db.migrate import upgrade
from tests.support.app import app_client, make_settings, running_app
from tests.support.failover import ReplicatedPostgres, replicated_postgres
from tests.support.servers import ThrowawayPostgres

pytestmark = pytest.mark.slow

USER = "alice"
TASKS = f"/api/{USER}/tasks"
# Short bounds, so that a request to a server that is gone fails fast and is retried.
TIMEOUT_SECONDS = "1"
WRITERS = 8
# Writes acknowledged before the crash, and how long writing goes on after the first write
# the promoted standby acknowledged.
WRITES_BEFORE_CRASH = 200
WRITING_AFTER_RECOVERY_SECONDS = 1.0
# The primary is gone this long before the standby is promoted, as while a failover manager
# (Patroni, pg_auto_failover) makes up its mind; writers get 503s meanwhile.
OUTAGE_SECONDS = 0.5
# A client's pause between attempts: shorter than Retry-After, to measure recovery closely.
RETRY_PAUSE_SECONDS = 0.05
RECOVERY_TARGET_SECONDS = 5.0
# A write still failing after this long is given up, so a broken failover fails the test
# instead of hanging it.
GIVE_UP_SECONDS = 20.0

Headers = Callable[[str], dict[str, str]]


def _migrated(
    pairs: Generator[ReplicatedPostgres, None, None],
) -> Iterator[ReplicatedPostgres]:
    """The pair `pairs` yields, migrated through its multi-host URL (so SQLAlchemy's reading
    of that URL is exercised too), with the standby caught up."""
    pair = next(pairs)
    try:

        async def migrate() -> None:
            engine = create_engine(DatabaseConfig(url=pair.url()))
            try:
                await upgrade(engine)
            finally:
                await engine.dispose()

        asyncio.run(migrate())
        pair.wait_until_replayed()
        yield pair
    finally:
        pairs.close()


@pytest.fixture
def pair() -> Iterator[ReplicatedPostgres]:
    """A replicated pair of this test's own, to crash and fail over."""
    yield from _migrated(replicated_postgres())


@pytest.fixture(scope="module")
def intact_pair() -> Iterator[ReplicatedPostgres]:
    """A replicated pair that no test changes: its standby is a read-only server."""
    yield from _migrated(replicated_postgres())


def _settings(url: str) -> main.Settings:
    return make_settings(
        url, DB_CONNECT_TIMEOUT=TIMEOUT_SECONDS, DB_STATEMENT_TIMEOUT=TIMEOUT_SECONDS
    )


@asynccontextmanager
async def _api(url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(_settings(url)) as http:
        yield http


@dataclass
class Ledger:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    # Anything but a 201 or a 503 with Retry-After, and exceptions escaping the app.
    failures: list[str] = field(default_factory=list)
    # Title -> id of every acknowledged (201) write, and when each was acknowledged.
    acknowledged: dict[str, int] = field(default_factory=dict)
    acknowledged_at: list[float] = field(default_factory=list)
    # Writes that took more than one attempt, those acknowledged by a replay of an earlier
    # attempt that had been committed, and writes given up.
    retried: set[str] = field(default_factory=set)
    replayed: set[str] = field(default_factory=set)
    given_up: list[str] = field(default_factory=list)
    _acknowledgement: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def acknowledge(self, title: str, task_id: int) -> None:
        self.acknowledged[title] = task_id
        self.acknowledged_at.append(time.monotonic())
        async with self._acknowledgement:
            self._acknowledgement.notify_all()

    async def wait_until(self, condition: Callable[[Ledger], bool], what: str) -> None:
        """Return once `condition` holds, checked after each acknowledged write."""
        try:
            async with asyncio.timeout(GIVE_UP_SECONDS), self._acknowledgement:
                await self._acknowledgement.wait_for(lambda: condition(self))
        except TimeoutError:
            raise AssertionError(
                f"not {what} within {GIVE_UP_SECONDS} s; answers so far: {self.statuses}"
            ) from None


async def create_task_with_key(
    http: httpx.AsyncClient, headers: dict[str, str], *, title: str, key: str
) -> httpx.Response:
    """One attempt at creating `title`; every attempt at the same write sends the same key,
    so a retry whose first attempt was committed gets that attempt's response again."""
    return await http.post(
        TASKS, json={"title": title}, headers={**headers, "Idempotency-Key": f'"{key}"'}
    )


async def _write_until_acknowledged(
    http: httpx.AsyncClient, headers: dict[str, str], title: str, ledger: Ledger
) -> None:
    """Create `title`, retrying every failure, as a careful client does."""
    key = str(uuid.uuid4())
    give_up = time.monotonic() + GIVE_UP_SECONDS
    for attempt in itertools.count(1):
        if time.monotonic() > give_up:
            ledger.given_up.append(title)
            return
        if attempt > 1:
            ledger.retried.add(title)
            await asyncio.sleep(RETRY_PAUSE_SECONDS)
        try:
            response = await create_task_with_key(http, headers, title=title, key=key)
        except Exception as error:  # an exception out of the app: a server would answer 500
            ledger.failures.append(f"{title}: {error!r}")
            continue
        ledger.statuses[response.status_code] += 1
        if response.status_code == 201:
            if response.headers.get("idempotent-replayed") == "true":
                ledger.replayed.add(title)
            await ledger.acknowledge(title, response.json()["id"])
            return
        if response.status_code != 503 or "retry-after" not in response.headers:
            ledger.failures.append(f"{title}: {response.status_code} {response.text}")


async def _writer(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    number: int,
    ledger: Ledger,
    stop: asyncio.Event,
) -> None:
    """Write one new task after another until told to stop; each title is written once."""
    for sequence in itertools.count():
        if stop.is_set():
            return
        await _write_until_acknowledged(http, headers, f"writer {number} task {sequence}", ledger)


# How the primary fails: its processes killed (connections to it are refused at once), or
# stopped (connections hang, as to a machine gone from the network, until the timeouts).
CRASHES = {"killed": ThrowawayPostgres.kill, "hung": ThrowawayPostgres.freeze}


@pytest.mark.parametrize("crash", CRASHES)
async def test_failover_to_the_promoted_standby_keeps_every_write_exactly_once(
    pair: ReplicatedPostgres, auth: Headers, crash: str
) -> None:
    ledger = Ledger()
    stop = asyncio.Event()
    async with _api(pair.url()) as http:
        writers = [
            asyncio.create_task(_writer(http, auth(USER), number, ledger, stop))
            for number in range(WRITERS)
        ]
        try:
            await ledger.wait_until(
                lambda seen: len(seen.acknowledged) >= WRITES_BEFORE_CRASH, "writing at all"
            )
            await asyncio.to_thread(CRASHES[crash], pair.primary)
            await asyncio.sleep(OUTAGE_SECONDS)
            promotion_requested = time.monotonic()
            await asyncio.to_thread(pair.standby.promote)
            promoted = time.monotonic()
            await ledger.wait_until(
                lambda seen: seen.acknowledged_at[-1] > promotion_requested,
                "writing again after the promotion",
            )
            await asyncio.sleep(WRITING_AFTER_RECOVERY_SECONDS)
        finally:
            stop.set()
            await asyncio.gather(*writers)

    conn = await asyncpg.connect(pair.standby.url)
    try:
        rows = await conn.fetch("SELECT id, title FROM tasks WHERE owner_id = $1", USER)
    finally:
        await conn.close()
    stored = Counter(row["title"] for row in rows)
    stored_ids = {(row["title"], row["id"]) for row in rows}
    lost = [write for write in ledger.acknowledged.items() if write not in stored_ids]
    duplicates = {title: count for title, count in stored.items() if count > 1}
    recovery = min(t for t in ledger.acknowledged_at if t > promotion_requested)
    recovery -= promotion_requested
    print(
        f"\nprimary {crash}: {len(ledger.acknowledged)} writes acknowledged, "
        f"{ledger.statuses[503]} answers 503, "
        f"{len(ledger.retried)} writes retried, {len(ledger.replayed)} of them acknowledged "
        f"by a replay; {len(rows)} tasks stored, "
        f"{len(duplicates)} written twice or more: {duplicates}; "
        f"pg_ctl promote took {promoted - promotion_requested:.3f} s, first write acknowledged "
        f"{recovery:.3f} s after the promotion was requested"
    )

    assert ledger.failures == []
    assert ledger.given_up == []
    # Writers met the outage (503s), and nothing else but successes: no 500.
    assert set(ledger.statuses) == {201, 503}, ledger.statuses
    assert lost == []
    # Every write stored was acknowledged in the end (each is retried until it is).
    assert set(stored) == set(ledger.acknowledged)
    # Exactly once: a retry whose first attempt committed (on the standby, while its client
    # saw the crash) replayed that attempt instead of writing again.
    assert duplicates == {}
    assert ledger.retried, "no write met the failover"
    assert recovery < RECOVERY_TARGET_SECONDS


def _writes(task_id: int) -> list[tuple[str, str, dict[str, object] | None]]:
    """A write of every kind, through both doors: (method, path, JSON body)."""
    toggle = f'mutation {{ toggleTaskCompletion(id: "{task_id}") {{ task {{ id }} }} }}'
    return [
        ("POST", TASKS, {"title": "on the standby"}),
        ("PUT", f"{TASKS}/{task_id}", {"title": "changed on the standby"}),
        ("PATCH", f"{TASKS}/{task_id}/complete", None),
        ("DELETE", f"{TASKS}/{task_id}", None),
        (
            "POST",
            "/graphql",
            {"query": 'mutation { createTask(input: {title: "x"}) { task { id } } }'},
        ),
        ("POST", "/graphql", {"query": toggle}),
    ]


def _assert_unavailable(response: httpx.Response) -> None:
    """A 503 with Retry-After, in the door's own error format."""
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    if response.url.path == "/graphql":
        codes = [error["extensions"]["code"] for error in response.json()["errors"]]
        assert codes == ["SERVICE_UNAVAILABLE"]
    else:
        assert "unavailable" in response.json()["detail"]


async def test_a_standby_serves_reads_and_answers_writes_with_503(
    intact_pair: ReplicatedPostgres, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    async with _api(intact_pair.url()) as on_primary:
        created = await on_primary.post(
            TASKS, json={"title": "from the primary"}, headers=auth(USER)
        )
    assert created.status_code == 201
    task_id = created.json()["id"]
    intact_pair.wait_until_replayed()

    # Only the standby, and no target_session_attrs: as a URL of a demoted primary would be.
    async with running_app(_settings(intact_pair.standby.url)) as (http, state):
        database = state["database"]
        listed = await http.get(TASKS, headers=auth(USER))
        assert listed.status_code == 200
        assert task_id in [task["id"] for task in listed.json()]
        for method, path, body in _writes(task_id):
            assert (database.size, database.idle) == (1, 1)
            response = await http.request(method, path, json=body, headers=auth(USER))
            _assert_unavailable(response)
            # The connection that met the read-only server is closed, not handed on.
            assert database.size == 0, (method, path)
            read = await http.get(f"{TASKS}/{task_id}", headers=auth(USER))
            assert read.status_code == 200
            assert read.json()["title"] == "from the primary"

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("target_session_attrs=read-write" in message for message in warnings), warnings


async def test_without_a_primary_among_the_hosts_every_request_is_503(
    intact_pair: ReplicatedPostgres, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    # The failover's middle: the old primary is gone, the standby not yet promoted.
    url = f"{intact_pair.standby.url}?target_session_attrs=read-write"
    async with _api(url) as http:
        responses = [
            await http.get(TASKS, headers=auth(USER)),
            await http.post(TASKS, json={"title": "nowhere"}, headers=auth(USER)),
            await http.post(
                "/graphql",
                json={"query": "{ tasks(first: 1) { nodes { id } } }"},
                headers=auth(USER),
            ),
        ]
        ready = await http.get("/readyz")
    for response in responses:
        _assert_unavailable(response)
    assert ready.status_code == 503
    # Not mistaken for a connection in a bad state: nothing is wrong with the connections.
    assert not [r for r in caplog.records if "unexpected state" in r.getMessage()]
