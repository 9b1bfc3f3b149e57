"""What one lease of rate-limit tokens costs PostgreSQL, against `SELECT 1` and a bare upsert.

Usage: DATABASE_URL=postgresql://... python bench/lease_cost.py [--calls 4000] [--rounds 5]
Creates a migrated scratch database, then on one connection acting as taskql_app, in
interleaved rounds, times: `SELECT 1` (a round trip), a bare one-statement upsert of a
user's bucket (the naive design: one write per request), and `taskql_take_tokens` (one
lease, however many requests it then serves). Prints the median microseconds per call.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import asyncpg

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from db.engine import DatabaseConfig, create_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.rate_limits import take_tokens  # noqa: E402

USERS = 1000
UPSERT = """
    INSERT INTO rate_limits AS r (owner_id, tokens, counted_at)
    SELECT set_config('app.user_id', $1, true), $2, now()
    ON CONFLICT (owner_id) DO UPDATE SET
        tokens = least($2, r.tokens + $3 * extract(epoch FROM now() - r.counted_at)) - 1,
        counted_at = now()
    RETURNING tokens
"""


async def main(calls: int, rounds: int) -> None:
    admin = os.environ["DATABASE_URL"]
    name = f"taskql_lease_cost_{os.getpid()}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        engine = create_engine(DatabaseConfig(url=url))
        await upgrade(engine)
        await engine.dispose()
        conn = await asyncpg.connect(url)
        await conn.execute("SET ROLE taskql_app")
        owners = [f"user-{i}" for i in range(USERS)]

        async def select_one() -> None:
            for _ in range(calls):
                await conn.fetchval("SELECT 1")

        async def upsert() -> None:
            for i in range(calls):
                await conn.fetchval(UPSERT, owners[i % USERS], 1e9, 1e6)

        async def lease() -> None:
            for i in range(calls):
                await take_tokens(
                    conn, owner_id=owners[i % USERS], wanted=10, per_second=1e6, burst=1e9
                )

        timings: dict[str, list[float]] = {"SELECT 1": [], "bare upsert": [], "lease": []}
        for _ in range(rounds):
            for label, run in zip(timings, (select_one, upsert, lease), strict=True):
                started = time.perf_counter()
                await run()
                timings[label].append((time.perf_counter() - started) / calls * 1e6)
        await conn.close()
        for label, values in timings.items():
            spread = f"{min(values):.0f}-{max(values):.0f}"
            print(f"{label}: median {statistics.median(values):.0f} µs per call ({spread})")
    finally:
        conn = await asyncpg.connect(admin)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
