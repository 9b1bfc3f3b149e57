"""taskql_take_tokens (migration 0006): leases from a user's bucket, refill, isolation; and the
purge of buckets full again (migration 0008)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.rate_limits import take_tokens
from db.retention import purge_expired

DAY = 86400.0


@pytest.fixture
async def as_app(clean_database: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection acting as the application's role, bound by row-level security."""
    conn = await asyncpg.connect(clean_database)
    try:
        await conn.execute("SET ROLE taskql_app")
        yield conn
    finally:
        await conn.close()


async def test_a_new_bucket_starts_full_and_leases_up_to_what_it_holds(
    as_app: asyncpg.Connection,
) -> None:
    first = await take_tokens(as_app, owner_id="alice", wanted=4, per_second=0.001, burst=10)
    second = await take_tokens(as_app, owner_id="alice", wanted=4, per_second=0.001, burst=10)
    third = await take_tokens(as_app, owner_id="alice", wanted=4, per_second=0.001, burst=10)
    empty = await take_tokens(as_app, owner_id="alice", wanted=4, per_second=0.001, burst=10)
    other = await take_tokens(as_app, owner_id="bob", wanted=4, per_second=0.001, burst=10)

    assert [first.granted, second.granted, third.granted] == [4, 4, 2]
    assert empty.granted == 0
    # One token per 1,000 s, and a whole one is missing (the refill since is tiny).
    assert 990 < empty.wait_seconds <= 1000
    assert other.granted == 4


async def test_the_bucket_refills_with_time_up_to_the_burst(as_app: asyncpg.Connection) -> None:
    await take_tokens(as_app, owner_id="alice", wanted=10, per_second=1000, burst=10)
    await as_app.execute("SELECT pg_sleep(0.05)")  # 50 tokens' worth of time, capped at 10

    refilled = await take_tokens(as_app, owner_id="alice", wanted=100, per_second=1000, burst=10)

    assert refilled.granted == 10


async def test_a_user_sees_only_their_own_bucket(as_app: asyncpg.Connection) -> None:
    await take_tokens(as_app, owner_id="alice", wanted=1, per_second=1, burst=10)
    await take_tokens(as_app, owner_id="bob", wanted=1, per_second=1, burst=10)

    await as_app.execute("SELECT set_config('app.user_id', 'bob', false)")
    visible = await as_app.fetch("SELECT owner_id FROM rate_limits")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_app.execute(
            "INSERT INTO rate_limits (owner_id, tokens, counted_at) VALUES ('alice', 1e9, now())"
        )
    await as_app.execute("RESET app.user_id")
    anonymous = await as_app.fetch("SELECT owner_id FROM rate_limits")

    assert [row["owner_id"] for row in visible] == ["bob"]
    assert anonymous == []


async def _owners(admin: asyncpg.Connection) -> list[str]:
    return [
        row["owner_id"] for row in await admin.fetch("SELECT owner_id FROM rate_limits ORDER BY 1")
    ]


async def _purge(conn: asyncpg.Connection, bucket_seconds: float | None) -> int | None:
    return await purge_expired(
        conn, event_seconds=DAY, key_seconds=DAY, bucket_seconds=bucket_seconds, timeout_seconds=5
    )


async def test_buckets_untouched_long_enough_to_be_full_are_purged_and_no_other(
    as_app: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    for owner in ("alice", "bob", "carol"):
        await take_tokens(as_app, owner_id=owner, wanted=1, per_second=1, burst=10)
    await admin.execute(
        "UPDATE rate_limits SET counted_at = now() - interval '11 seconds' "
        "WHERE owner_id IN ('alice', 'bob')"
    )
    await admin.execute(
        "UPDATE rate_limits SET counted_at = now() - interval '9 seconds' WHERE owner_id = 'carol'"
    )

    assert await _purge(as_app, bucket_seconds=10) is not None

    assert await _owners(admin) == ["carol"]
    # A purged user starts again with a full bucket, as if never seen.
    again = await take_tokens(as_app, owner_id="alice", wanted=100, per_second=1, burst=10)
    assert again.granted == 10


async def test_without_a_cut_off_no_bucket_is_purged(
    as_app: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await take_tokens(as_app, owner_id="alice", wanted=1, per_second=1, burst=10)
    await admin.execute("UPDATE rate_limits SET counted_at = now() - interval '1 day'")

    assert await _purge(as_app, bucket_seconds=None) is not None

    assert await _owners(admin) == ["alice"]


async def test_the_app_role_deletes_no_other_users_bucket(
    as_app: asyncpg.Connection, admin: asyncpg.Connection
) -> None:
    await take_tokens(as_app, owner_id="alice", wanted=1, per_second=1, burst=10)
    await take_tokens(as_app, owner_id="bob", wanted=1, per_second=1, burst=10)
    await admin.execute("UPDATE rate_limits SET counted_at = now() - interval '1 day'")

    await as_app.execute("SELECT set_config('app.user_id', 'bob', false)")
    await as_app.execute("DELETE FROM rate_limits")
    await as_app.execute("RESET app.user_id")
    await as_app.execute("DELETE FROM rate_limits")

    assert await _owners(admin) == ["alice"]
