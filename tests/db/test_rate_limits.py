"""taskql_take_tokens (migration 0006): leases from a user's bucket, refill, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from db.rate_limits import take_tokens


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
