"""The retention janitor: expired events and idempotency keys go by themselves, one purge at a time.

Rows are aged by rewriting their `recorded_at` as the test server's superuser (row-level
security does not bind it), so no test waits out a retention.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import httpx
import pytest

import main
from db.engine import Database
from db.retention import PURGE_LOCK_KEY
from resolvers.retention import RetentionConfig, RetentionJanitor
from tests.support.app import make_settings, running_app
from tests.support.servers import free_port
from tests.support.tokens import hs256_token

HOUR = 3600.0


async def _write_with_keys(http: httpx.AsyncClient, user: str, keys: list[str]) -> None:
    """One task per key: each write records an event and keeps its key."""
    for key in keys:
        response = await http.post(
            f"/api/{user}/tasks",
            json={"title": key},
            headers={"Authorization": f"Bearer {hs256_token(user)}", "Idempotency-Key": key},
        )
        assert response.status_code == 201, response.text


async def _age(admin: asyncpg.Connection, table: str, user: str, where: str, hours: float) -> None:
    await admin.execute(
        f"UPDATE {table} SET recorded_at = now() - make_interval(secs => $2) "
        f"WHERE owner_id = $1 AND {where}",
        user,
        hours * HOUR,
    )


async def _kept(admin: asyncpg.Connection, user: str) -> tuple[list[int], list[str]]:
    """The titles of the user's events still stored (each write's title is its key), and the
    keys still stored."""
    events = await admin.fetch(
        "SELECT title FROM task_events WHERE owner_id = $1 ORDER BY position", user
    )
    keys = await admin.fetch(
        "SELECT key FROM idempotency_keys WHERE owner_id = $1 ORDER BY 1", user
    )
    return [row["title"] for row in events], [row["key"] for row in keys]


def _settings(database_url: str, **env: str) -> main.Settings:
    return make_settings(
        database_url,
        EVENT_RETENTION_SECONDS=str(HOUR),
        IDEMPOTENCY_KEY_SECONDS=str(2 * HOUR),
        **env,
    )


@pytest.mark.parametrize("pooler", ["false", "true"])
async def test_events_and_keys_past_their_retention_go_and_nothing_else(
    database_url: str, admin: asyncpg.Connection, pooler: str
) -> None:
    # Behind a pooler each operation is a transaction already; the purge runs inside it.
    user = f"keeper-{uuid.uuid4().hex}"
    async with running_app(
        _settings(database_url, DB_POOLER=pooler, DATABASE_LISTEN_URL=database_url)
    ) as (http, state):
        janitor: RetentionJanitor = state["janitor"]
        await _write_with_keys(http, user, ["k1", "k2"])
        assert await _kept(admin, user) == (["k1", "k2"], ["k1", "k2"])

        # 90 minutes old: past the events' hour, within the keys' two hours.
        await _age(admin, "task_events", user, "title = 'k1'", 1.5)
        await _age(admin, "idempotency_keys", user, "key = 'k1'", 1.5)
        assert await janitor.purge_once() == 1
        assert await _kept(admin, user) == (["k2"], ["k1", "k2"])

        await _age(admin, "idempotency_keys", user, "key = 'k1'", 3)
        assert await janitor.purge_once() == 1
        assert await _kept(admin, user) == (["k2"], ["k2"])
        assert await janitor.purge_once() == 0


async def test_one_purge_runs_at_a_time_across_processes(
    database_url: str, admin: asyncpg.Connection
) -> None:
    user = f"keeper-{uuid.uuid4().hex}"
    async with running_app(_settings(database_url)) as (http, state):
        janitor: RetentionJanitor = state["janitor"]
        await _write_with_keys(http, user, ["k1"])
        await _age(admin, "task_events", user, "true", 3)
        await _age(admin, "idempotency_keys", user, "true", 3)

        # Another process purging holds the lock until its transaction ends.
        other = admin.transaction()
        await other.start()
        await admin.execute("SELECT pg_advisory_xact_lock($1)", PURGE_LOCK_KEY)
        try:
            assert await janitor.purge_once() is None
            assert await _kept(admin, user) == (["k1"], ["k1"])
        finally:
            await other.rollback()
        assert await janitor.purge_once() == 2
        assert await _kept(admin, user) == ([], [])


@pytest.mark.slow
async def test_a_purge_may_take_longer_than_a_request_may(
    database_url: str, admin: asyncpg.Connection
) -> None:
    # Requests' statements end after 0.3 s; a purge waits 1 s for a row another holds.
    user = f"keeper-{uuid.uuid4().hex}"
    settings = _settings(database_url, DB_STATEMENT_TIMEOUT="0.3")
    async with running_app(settings) as (http, state):
        janitor: RetentionJanitor = state["janitor"]
        await _write_with_keys(http, user, ["k1"])
        await _age(admin, "idempotency_keys", user, "true", 3)
        async with admin.transaction():
            await admin.execute(
                "SELECT 1 FROM idempotency_keys WHERE owner_id = $1 FOR UPDATE", user
            )
            purge = asyncio.create_task(janitor.purge_once())
            await asyncio.sleep(1)
            assert not purge.done()
        assert await purge >= 1
        assert await _kept(admin, user) == (["k1"], [])


@pytest.mark.slow
async def test_the_janitor_purges_by_itself_until_stopped(
    database_url: str, admin: asyncpg.Connection
) -> None:
    user = f"keeper-{uuid.uuid4().hex}"
    purged: list[int] = []
    three_rounds = asyncio.Event()

    def count(rows: int) -> None:
        purged.append(rows)
        if len(purged) == 3:
            three_rounds.set()

    async with running_app(_settings(database_url)) as (http, state):
        await _write_with_keys(http, user, ["k1"])
        await _age(admin, "idempotency_keys", user, "true", 3)
        janitor = RetentionJanitor(
            state["database"],
            RetentionConfig(event_seconds=HOUR, idempotency_key_seconds=HOUR),
            interval_seconds=0.05,
            on_purge=count,
        )
        janitor.start()
        try:
            async with asyncio.timeout(10):
                await three_rounds.wait()
        finally:
            await janitor.stop()
        assert not janitor.running
        assert await _kept(admin, user) == (["k1"], [])
        # The first round removed the key; later ones found nothing of this user's.
        assert purged[0] >= 1
        rounds = len(purged)
        await asyncio.sleep(0.2)
        assert len(purged) == rounds


async def test_the_app_runs_its_janitor_from_start_up_to_shutdown(database_url: str) -> None:
    async with running_app(make_settings(database_url)) as (_, state):
        janitor: RetentionJanitor = state["janitor"]
        assert janitor.running
    assert not janitor.running


class _Failures(logging.Handler):
    """Sets `twice` once the janitor has logged two failed purges."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.twice = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retention purge failed" in record.getMessage():
            self.records.append(record)
            if len(self.records) == 2:
                self.twice.set()


async def test_a_purge_that_fails_is_logged_and_tried_again() -> None:
    nowhere = make_settings(
        f"postgresql://postgres@127.0.0.1:{free_port()}/taskql", DB_CONNECT_TIMEOUT="1"
    )
    database = await Database.open(nowhere.database(nowhere.database_url or ""))
    janitor = RetentionJanitor(database, RetentionConfig(), interval_seconds=0.05)
    failures = _Failures()
    logger = logging.getLogger("resolvers.retention")
    logger.addHandler(failures)
    janitor.start()
    try:
        async with asyncio.timeout(10):
            await failures.twice.wait()
        assert janitor.running
    finally:
        logger.removeHandler(failures)
        await janitor.stop()
        await database.close()
    # The database being away is expected: a warning, no traceback.
    assert [r.levelno for r in failures.records[:2]] == [logging.WARNING] * 2
    assert all(r.exc_info is None for r in failures.records)


def test_both_retentions_are_settings_of_a_day_by_default(database_url: str) -> None:
    assert make_settings(database_url).retention == RetentionConfig(86400.0, 86400.0)
    settings = make_settings(
        database_url, EVENT_RETENTION_SECONDS="600", IDEMPOTENCY_KEY_SECONDS="172800"
    )
    assert settings.retention == RetentionConfig(event_seconds=600, idempotency_key_seconds=172800)


@pytest.mark.parametrize(
    ("env", "bucket_seconds"),
    [
        # 10 tokens at one a second: an empty bucket is full again after 10 s.
        ({"RATE_LIMIT_PER_MINUTE": "60", "RATE_LIMIT_BURST": "10"}, 10.0),
        ({"RATE_LIMIT_PER_MINUTE": "600"}, 60.0),
        # Buckets in memory, or no limit: the janitor leaves the table alone.
        ({"RATE_LIMIT_PER_MINUTE": "60", "RATE_LIMIT_STORE": "memory"}, None),
        ({}, None),
    ],
)
def test_rate_limit_buckets_go_once_they_would_be_full_again(
    database_url: str, env: dict[str, str], bucket_seconds: float | None
) -> None:
    assert make_settings(database_url, **env).retention.bucket_seconds == bucket_seconds


@pytest.mark.parametrize("name", ["EVENT_RETENTION_SECONDS", "IDEMPOTENCY_KEY_SECONDS"])
@pytest.mark.parametrize("value", ["0", "-1", "a day", "inf"])
def test_a_retention_that_is_not_a_positive_number_refuses_to_start(
    database_url: str, name: str, value: str
) -> None:
    with pytest.raises(main.ConfigError, match=f"{name} must be a (positive )?number"):
        make_settings(database_url, **{name: value})
