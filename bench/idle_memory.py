"""Where an idle subscriber's memory goes: the Python heap of one worker, per package.

Usage: python bench/idle_memory.py [--subscribers 1000] [--transport graphql-sse|rest-sse]

Runs `main.py serve` with one worker in a child process with `tracemalloc` on, opens the
subscribers of bench/live.py (one user each; by default acknowledged and subscribed over
graphql-transport-ws, or event streams of GraphQL over SSE or of the REST route) from this
process, and compares the worker's heap before and after.
Each allocation counts for the innermost frame that belongs to a package or to this project
(Python's own modules count for whoever called them). Uses DATABASE_URL or the embedded
server, like bench/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import live  # bench/live.py, beside this script
import run as bench

PROJECT = Path(__file__).resolve().parent.parent
# The worker: `main.py serve` itself (one worker), with a heap snapshot on each SIGUSR1.
WORKER = """
import os, signal, sys, tracemalloc, gc
sys.path.insert(0, os.getcwd())
import main  # before tracemalloc starts: importing under it takes minutes
snapshots = iter(sys.argv[1:])
def dump(*_):
    gc.collect()
    path = next(snapshots)
    tracemalloc.take_snapshot().dump(path + ".part")
    os.rename(path + ".part", path)
signal.signal(signal.SIGUSR1, dump)
tracemalloc.start(40)
sys.exit(main.main(["serve"]))
"""
# Where an allocation is charged: the first of these its innermost frame's file matches.
LIBRARIES = [
    ("/uvicorn/", "uvicorn (WebSocket protocol)"),
    ("/websockets/", "websockets (handshake, frames)"),
    ("/strawberry/", "Strawberry (graphql-transport-ws handler, subscription)"),
    ("/graphql/", "graphql-core (subscription executor)"),
    ("/starlette/", "Starlette (app, router, middleware)"),
]
OURS = [
    (f"{PROJECT}/resolvers/", "ours: resolvers/"),
    (f"{PROJECT}/schema/", "ours: schema/"),
    (f"{PROJECT}/server/", "ours: server/"),
    (f"{PROJECT}/", "ours: other"),
]


def part_of(traceback: tracemalloc.Traceback) -> str:
    for frame in reversed(traceback):  # innermost first
        path = frame.filename
        if "/site-packages/" in path:
            parts = LIBRARIES
        elif path.startswith(f"{PROJECT}/"):
            parts = OURS
        else:
            continue  # Python's own modules: charged to their caller
        # A package not listed is charged to its caller too.
        name = next((name for marker, name in parts if marker in path), None)
        if name is not None:
            return name
    return "other"


def site_of(traceback: tracemalloc.Traceback) -> str:
    """The innermost frame outside Python's own modules, as a short file:line."""
    for frame in reversed(traceback):
        path = frame.filename
        if "/site-packages/" in path:
            return f"{path.split('/site-packages/')[1]}:{frame.lineno}"
        if path.startswith(f"{PROJECT}/"):
            return f"{path[len(str(PROJECT)) + 1 :]}:{frame.lineno}"
    return "other"


def snapshot(worker: psutil.Process, path: Path) -> tracemalloc.Snapshot:
    worker.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker wrote no snapshot")
        time.sleep(0.2)
    return tracemalloc.Snapshot.load(str(path))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument(
        "--transport",
        choices=["graphql-transport-ws", "graphql-sse", "rest-sse"],
        default="graphql-transport-ws",
    )
    parser.add_argument(
        "--lines", type=int, default=0, help="also list this many allocation sites (file:line)"
    )
    args = parser.parse_args()
    bench.WORK_DIR.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="taskql-idle-memory-"))
    before_path, after_path = directory / "before", directory / "after"
    with bench.database(args) as url, _removed_afterwards(directory):
        port = bench.free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": bench.SECRET,
            "PORT": str(port),
            "WORKERS": "1",
            "LOG_LEVEL": "WARNING",
        }
        command = [sys.executable, "-c", WORKER, str(before_path), str(after_path)]
        with bench.server(command, env, port) as worker:
            before = snapshot(worker, before_path)
            users = [f"idle-{n}" for n in range(args.subscribers)]
            connections, errors, after = asyncio.run(
                _with_subscribers(args.transport, port, users, lambda: snapshot(worker, after_path))
            )
    sizes: collections.Counter[str] = collections.Counter()
    sites: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        sizes[part_of(stat.traceback)] += stat.size_diff
        sites[site_of(stat.traceback)] += stat.size_diff
    count = args.subscribers
    print(f"{connections:,} subscribers open, {errors} errors\n")
    print("| where | KB per subscriber |\n|---|---|")
    for name, size in sizes.most_common():
        print(f"| {name} | {size / 1024 / count:.1f} |")
    print(f"| total | {sum(sizes.values()) / 1024 / count:.1f} |")
    if args.lines:
        print("\n| allocation site (innermost frame of a package or ours) | KB per subscriber |")
        print("|---|---|")
        for site, size in sites.most_common(args.lines):
            print(f"| {site} | {size / 1024 / count:.2f} |")
    return 0 if errors == 0 else 1


@contextmanager
def _removed_afterwards(directory: Path) -> Iterator[None]:
    try:
        yield
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _with_subscribers(
    transport: str, port: int, users: list[str], measure: Callable[[], tracemalloc.Snapshot]
) -> tuple[int, int, tracemalloc.Snapshot]:
    """Open the subscribers, let them idle, and take `measure` while they are open (in a
    thread, so that this loop goes on answering the server's pings)."""
    opened, errors = await live.open_idle(transport, port, bench.SECRET, users)
    await asyncio.sleep(2)
    measured = await asyncio.to_thread(measure)
    errors += sum(1 for connection in opened if connection.close_code is not None)
    await asyncio.gather(*(connection.close() for connection in opened), return_exceptions=True)
    return len(opened), errors, measured


if __name__ == "__main__":
    sys.exit(main())
