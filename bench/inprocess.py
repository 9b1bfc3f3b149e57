"""The app's own CPU time per request, in one process, as a ratio between two requests.

Usage: python bench/inprocess.py [--rounds 300] [--lists-from-memory] [REQUEST ...]
  requests: rest_list, graphql_list, graphql_create, rest_create, typename, floor_list
  (default: rest_list graphql_list)

Calls the ASGI app of `main.create_app` directly (no server, no sockets to clients; its
database is real) in interleaved batches of 10 requests of each kind, and prints each kind's
mean CPU time per request and each one's ratio to the first. Interleaving makes every kind
meet the same moments of a shared machine, so the ratio moves by about 2% between runs where
requests/s and even a worker's CPU per request move by 20-30%: small changes to the
app's own work show here before they show (if ever) in bench/run.py. `floor_list` is the
floor's list (bench/floor.py, in the same process, on its own pool of the same database):
put first, each request's CPU as a multiple of it is the in-process counterpart of the
inverse of bench/run.py's "ratio" (requests/s of the API over the floor's). Uses DATABASE_URL (an
admin URL: a database of its own is made and dropped) or the embedded server.

`--lists-from-memory` takes the database out of the lists: the list operation both doors call
(`resolvers.tasks.list_tasks`) answers each request with the page it read for the first one
like it, so what is left is the app's own work (HTTP layer, authentication, GraphQL, reading
and writing JSON) without the driver, the pool and the round trip, which are three quarters
of a REST list's CPU and the same for every way of serving it. What GraphQL adds to a list
then shows undiluted, and a change of a few microseconds to it shows in the ratio. The
replacement is patched into this process only, a measurement, never a way to serve requests.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from unittest.mock import patch

import asyncpg
import jwt

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import run as bench  # bench/run.py, beside this script

import main
from resolvers import tasks as operations

LIST_QUERY = b'{"query":"' + bench.LIST_QUERY.encode() + b'"}'
CREATE_MUTATION = (
    b'{"query":"mutation { createTask(input: {title: \\"bench task\\", description: '
    b'\\"made by wrk\\"}) { task { id title completed createdAt } userErrors { code } } }"}'
)
CREATE_BODY = b'{"title":"bench task","description":"made by wrk"}'
BATCH = 10


async def call(
    app: Any, state: dict[str, Any], method: str, path: str, body: bytes, token: str
) -> int:
    """One request through the ASGI app; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"authorization", b"Bearer " + token.encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": dict(state),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(url: str, kinds: list[str], rounds: int) -> dict[str, float]:
    """Mean CPU seconds per request of each kind."""
    reader, writer = "reader-" + secrets.token_hex(6), "writer-" + secrets.token_hex(6)
    conn = await asyncpg.connect(url)
    records = [(reader, f"Task {n}", "seeded for the benchmark", n % 3 == 0) for n in range(20)]
    await conn.copy_records_to_table(
        "tasks", records=records, columns=["owner_id", "title", "description", "completed"]
    )
    await conn.close()
    expires = int(time.time()) + 3600
    tokens = {
        user: jwt.encode({"sub": user, "exp": expires}, bench.SECRET, algorithm="HS256")
        for user in (reader, writer)
    }
    # Writes go to a user of their own, so that the lists stay at 20 tasks.
    requests = {
        "rest_list": ("GET", f"/api/{reader}/tasks", b"", reader),
        "graphql_list": ("POST", "/graphql", LIST_QUERY, reader),
        "typename": ("POST", "/graphql", b'{"query":"{ __typename }"}', reader),
        "rest_create": ("POST", f"/api/{writer}/tasks", CREATE_BODY, writer),
        "graphql_create": ("POST", "/graphql", CREATE_MUTATION, writer),
        "floor_list": ("GET", f"/api/{reader}/tasks", b"", reader),
    }
    env = {"DATABASE_URL": url, "JWT_SECRET": bench.SECRET, "LOG_LEVEL": "WARNING"}
    app = main.create_app(main.read_settings(env))
    spent = dict.fromkeys(kinds, 0.0)
    async with (
        app.router.lifespan_context(app) as state,
        floor_app(env, wanted="floor_list" in kinds) as floor,
    ):
        served_by = {kind: (app, state or {}) for kind in kinds}
        if floor is not None:
            served_by["floor_list"] = floor
        for kind in kinds:  # warm up, and check that each request succeeds
            method, path, body, user = requests[kind]
            status = await call(*served_by[kind], method, path, body, tokens[user])
            if status not in (200, 201):
                raise RuntimeError(f"{kind} answered {status}")
        for _ in range(rounds):
            for kind in kinds:
                method, path, body, user = requests[kind]
                started = time.process_time()
                for _ in range(BATCH):
                    await call(*served_by[kind], method, path, body, tokens[user])
                spent[kind] += time.process_time() - started
    return {kind: spent[kind] / (rounds * BATCH) for kind in kinds}


@asynccontextmanager
async def floor_app(
    env: dict[str, str], *, wanted: bool
) -> AsyncIterator[tuple[Any, dict[str, Any]] | None]:
    """bench/floor.py's app with its pool open, when wanted. It reads its settings from the
    environment (at import and at start), which gets them meanwhile."""
    if not wanted:
        yield None
        return
    with patch.dict(os.environ, env):
        floor = importlib.import_module("floor")  # bench/floor.py, beside this script
        async with floor.lifespan(floor.app) as state:
            yield floor.app, dict(state)


@contextmanager
def lists_from_memory() -> Iterator[None]:
    """`resolvers.tasks.list_tasks` answers from the page it read first for the same owner and
    arguments (see --lists-from-memory)."""
    read_from_database = operations.list_tasks
    pages: dict[tuple[Any, ...], Any] = {}

    async def remembered(context: Any, *, filters: Any, order: Any, page: Any) -> Any:
        # Filters, order and page request are frozen values: hashed, not compared by text.
        key = (context.viewer.user_id, filters, order, page)
        if key not in pages:
            pages[key] = await read_from_database(context, filters=filters, order=order, page=page)
        return pages[key]

    operations.list_tasks = remembered  # type: ignore[assignment]
    try:
        yield
    finally:
        operations.list_tasks = read_from_database  # type: ignore[assignment]


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", default=["rest_list", "graphql_list"])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument(
        "--lists-from-memory",
        action="store_true",
        help="lists answer from a page read once: the app's own work without the database",
    )
    args = parser.parse_args()
    lists = lists_from_memory() if args.lists_from_memory else nullcontext()
    with bench.database(args) as url, lists:
        cpu = asyncio.run(measure(url, args.kinds, args.rounds))
    first = args.kinds[0]
    for kind, seconds in cpu.items():
        print(
            f"{kind}: {seconds * 1e6:.0f} µs CPU per request, {seconds / cpu[first]:.3f}x {first}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(cli())
