"""The request pool: waiting in arrival order, and never longer than the pool timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from db.engine import Database, DatabaseConfig
from db.errors import DatabaseUnavailable


async def test_waiters_get_the_connection_in_arrival_order(database_url: str) -> None:
    database = await Database.open(DatabaseConfig(url=database_url, pool_size=1))
    order: list[str] = []
    holding = asyncio.Event()
    done_holding = asyncio.Event()

    async def hold() -> None:
        async with database.connect():
            holding.set()
            await done_holding.wait()

    async def use(name: str) -> None:
        async with database.connect() as conn:
            order.append(name)
            await conn.fetchval("SELECT 1")

    try:
        holder = asyncio.create_task(hold())
        await holding.wait()
        waiters = []
        for name in ("first", "second", "third"):
            waiters.append(asyncio.create_task(use(name)))
            await asyncio.sleep(0.01)
        done_holding.set()
        await asyncio.gather(holder, *waiters)
    finally:
        await database.close()

    assert order == ["first", "second", "third"]


async def test_a_request_waits_no_longer_than_the_pool_timeout(database_url: str) -> None:
    database = await Database.open(
        DatabaseConfig(url=database_url, pool_size=1, pool_timeout_seconds=0.2)
    )
    try:
        async with database.connect():
            started = time.monotonic()
            with pytest.raises(DatabaseUnavailable):
                async with database.connect():
                    pass
            waited = time.monotonic() - started
        # The waiter left its turn: the connection is usable again at once.
        async with database.connect() as conn:
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await database.close()

    assert 0.2 <= waited < 1.0
