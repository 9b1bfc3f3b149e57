"""CPU per REST write, the app's and its PostgreSQL's: what an Idempotency-Key costs a create,
or (--events) what recording each write's event for live updates costs creates and toggles.

Usage: python bench/write_cost.py [--events] [--blocks 10] [--writes 500]
Uses DATABASE_URL when set (a server on this machine: its backend's CPU time is read from
/proc), otherwise an embedded PostgreSQL in .data/bench-postgres.

With --events, blocks of writes alternate between the database as migrated and the same
database with `taskql_record_event` replaced by a function that does nothing (put back
afterwards): the difference is what inserting the event costs PostgreSQL. The app's share of
an event (a hash and a set insertion per write, and the coalesced NOTIFY that wakes other
workers, sent on the listener's own connection) is counted in the app's CPU both ways, so it
is not part of the difference.

Requests per second on a shared machine move with everything else it runs; the CPU time a
request costs does not, much. The app runs in this process (the real ASGI app and lifespan,
driven by httpx without a socket) with a pool of one connection, so the CPU time of this
process and of that connection's PostgreSQL backend is all the two spend on the writes.
Blocks of writes with and without a key alternate, and each figure is a median of blocks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import jwt
import psutil

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "bench"))

from run import NO_EVENT_FUNCTION  # noqa: E402  (bench/run.py)

import main  # noqa: E402
from db.embedded import start_embedded_postgres  # noqa: E402
from db.engine import DatabaseConfig, create_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402

SECRET = uuid.uuid4().hex * 2


async def measure(
    url: str, blocks: int, writes: int, *, events: bool = False
) -> dict[str, list[tuple[float, float]]]:
    """Per block: (app CPU µs, PostgreSQL CPU µs) per write, by kind."""
    settings = main.read_settings(
        {"DATABASE_URL": url, "JWT_SECRET": SECRET, "DB_POOL_SIZE": "1", "LOG_LEVEL": "WARNING"}
    )
    app = main.create_app(settings)
    user = uuid.uuid4().hex
    token = jwt.encode({"sub": user, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    kinds = (
        ["create, event recorded", "create, no event", "toggle, event recorded", "toggle, no event"]
        if events
        else ["without a key", "with a key"]
    )
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    admin = await asyncpg.connect(url)
    recorded = await admin.fetchval(
        "SELECT pg_get_functiondef('taskql_record_event(text, tasks)'::regprocedure)"
    )
    async with app.router.lifespan_context(app) as state:

        async def app_with_state(scope: object, receive: object, send: object) -> None:
            scope["state"] = dict(state or {})  # type: ignore[index]
            await app(scope, receive, send)  # type: ignore[arg-type]

        transport = httpx.ASGITransport(app=app_with_state)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

            async def create(key: str | None) -> None:
                # The client runs in this process too: a write without a key sends a header
                # of the same size under another name, so that the client's share is equal.
                name = "Idempotency-Key" if key is not None else "X-Not-A-Key-Header"
                sent = {**headers, name: f'"{key or uuid.uuid4()}"'}
                response = await http.post(
                    f"/api/{user}/tasks",
                    json={"title": "bench task", "description": "made by the bench"},
                    headers=sent,
                )
                assert response.status_code == 201, response.text

            async def toggle(task_id: int) -> None:
                response = await http.patch(
                    f"/api/{user}/tasks/{task_id}/complete", headers=headers
                )
                assert response.status_code == 200, response.text

            await create(None)  # opens the pool's one connection
            backend = psutil.Process(await _backend_pid(url))
            toggled = await admin.fetchval("SELECT min(id) FROM tasks WHERE owner_id = $1", user)
            try:
                for block in range(blocks):
                    for kind in kinds if block % 2 else kinds[::-1]:
                        if events:
                            await admin.execute(
                                NO_EVENT_FUNCTION if "no event" in kind else recorded
                            )
                        app_before, db_before = time.process_time(), _cpu(backend)
                        for _ in range(writes):
                            if kind.startswith("toggle"):
                                await toggle(toggled)
                            else:
                                await create(str(uuid.uuid4()) if kind == "with a key" else None)
                        app_spent = time.process_time() - app_before
                        db_spent = _cpu(backend) - db_before
                        results[kind].append((app_spent / writes * 1e6, db_spent / writes * 1e6))
            finally:
                await admin.execute(recorded)
                await admin.close()
    return results


async def _backend_pid(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        # The pool's one connection: the one that ran the create (the app also keeps a
        # connection that LISTENs for live updates).
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND query LIKE '%taskql_create_task%'"
        )
    finally:
        await conn.close()
    [pid] = [row["pid"] for row in pids]
    return int(pid)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def _create(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    scheme, _, rest = admin_url.partition("://")
    authority, _, path = rest.partition("/")
    query = path.partition("?")[2]
    url = f"{scheme}://{authority}/{name}" + (f"?{query}" if query else "")
    engine = create_engine(DatabaseConfig(url=url))
    await upgrade(engine)
    await engine.dispose()
    return url


async def _drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


def main_() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=10, help="blocks of each kind")
    # /proc counts CPU time in 10 ms ticks: 500 writes measure each to 20 µs.
    parser.add_argument("--writes", type=int, default=500, help="writes per block")
    parser.add_argument(
        "--events", action="store_true", help="with and without recording events, not keys"
    )
    args = parser.parse_args()
    server = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        server = start_embedded_postgres(PROJECT / ".data" / "bench-postgres")
        admin_url = server.url
    name = f"taskql_write_cost_{os.getpid()}"
    try:
        url = asyncio.run(_create(admin_url, name))
        results = asyncio.run(measure(url, args.blocks, args.writes, events=args.events))
    finally:
        asyncio.run(_drop(admin_url, name))
        if server is not None:
            server.stop()
    print(f"{args.blocks} blocks of {args.writes} REST writes of each kind, medians per write:")
    print("\n| | app CPU µs | PostgreSQL CPU µs | total µs |\n|---|---|---|---|")
    totals = {}
    for kind, blocks in results.items():
        app_us = statistics.median(a for a, _ in blocks)
        db_us = statistics.median(d for _, d in blocks)
        totals[kind] = statistics.median(a + d for a, d in blocks)
        print(f"| {kind} | {app_us:.0f} | {db_us:.0f} | {totals[kind]:.0f} |")
    if args.events:
        for write in ("create", "toggle"):
            extra = totals[f"{write}, event recorded"] / totals[f"{write}, no event"] - 1
            print(f"\nRecording its event costs a {write} {100 * extra:+.1f}% CPU.")
    else:
        extra = totals["with a key"] / totals["without a key"] - 1
        print(f"\nA key costs {100 * extra:+.1f}% CPU per create.")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
