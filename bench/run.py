"""Load benchmark: the API against a minimal floor app, interleaved, medians of several runs.

Usage: python bench/run.py [--workers 2] [--users 1000] [--tasks 20] [--duration 10] ...
Uses DATABASE_URL when set, otherwise an embedded PostgreSQL in .data/bench-postgres.
Needs `wrk` (apt-get install wrk / brew install wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import jwt
import psutil

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import live  # noqa: E402  (bench/live.py, beside this script)

from db.embedded import start_embedded_postgres  # noqa: E402
from db.engine import DatabaseConfig, create_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402

SECRET = secrets.token_urlsafe(32)
WORK_DIR = PROJECT / ".data" / "bench"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    floor: bool  # whether the floor app serves the same requests
    connections: int | None = None  # None: --connections
    think_ms: int = 0
    think: str = "jitter"  # or "lockstep" (see scenario.lua)
    # False: the API's writes record no event for this scenario's runs (the database's
    # taskql_record_event does nothing meanwhile), so one run shows what events cost a write.
    event_rows: bool = True


SCENARIOS = [
    Scenario("rest_list", "REST list (GET /api/{user}/tasks)", floor=True),
    Scenario("graphql_list", "GraphQL list (tasks(first: 20))", floor=True),
    Scenario(
        "graphql_list_persisted",
        "GraphQL list by persisted hash (POST, hash only)",
        floor=False,
    ),
    Scenario("graphql_list_persisted_get", "GraphQL list by persisted hash (GET)", floor=False),
    Scenario("rest_create", "REST create", floor=True),
    # The cost of Idempotency-Key: the same create, each request with a key of its own.
    Scenario("rest_create_key", "REST create with an Idempotency-Key", floor=False),
    Scenario("graphql_create", "GraphQL createTask", floor=True),
    Scenario("rest_toggle", "REST toggle", floor=True),
    Scenario("rest_create", "REST create, no event rows", floor=True, event_rows=False),
    Scenario("rest_toggle", "REST toggle, no event rows", floor=True, event_rows=False),
    Scenario("mix", "mix: 70% list, 10% create, 10% toggle, 5% update, 5% delete", floor=False),
    Scenario(
        "mix",
        "1,000 users, think time 0.5-1.5 s (mix)",
        floor=False,
        connections=1000,
        think_ms=1000,
    ),
    Scenario(
        "mix",
        "1,000 users in lockstep, think time 1 s (mix, one burst a second)",
        floor=False,
        connections=1000,
        think_ms=1000,
        think="lockstep",
    ),
    Scenario(
        "mix", "saturation: 1,000 connections, no think time (mix)", floor=False, connections=1000
    ),
]
# The document scenario.lua's graphql_list sends in full, and the persisted scenarios by hash.
LIST_QUERY = "{ tasks(first: 20) { nodes { id title description completed dueDate createdAt } } }"
LIST_HASH = hashlib.sha256(LIST_QUERY.encode()).hexdigest()
PERSISTED_EXTENSIONS = {"persistedQuery": {"version": 1, "sha256Hash": LIST_HASH}}
# Tasks cleared in one request, and one by one, by --bulk-rounds.
BULK_TASKS = 1000
# Browsers open at most 6 connections to one host over HTTP/1.1.
BROWSER_CONNECTIONS = 6
# Live updates (bench/live.py): subscribers over graphql-transport-ws while REST writes land.
LIVE_SCENARIOS = {
    "live: 1,000 subscribers, one per user, 200 writes/s": "many",
    "live: one user with 100 connections, 50 writes/s": "one",
    # Each idle scenario on a server of its own, started for it: RSS that an earlier scenario
    # grew and freed would otherwise be reused, and the difference would show too little.
    "live: 10,000 idle subscribers": "graphql-transport-ws",
    "live: 10,000 idle GraphQL-over-SSE streams": "graphql-sse",
    "live: 10,000 idle REST event streams": "rest-sse",
}
# The floor implements list, create and toggle; the GraphQL scenarios compare with the
# floor doing the same database work through its REST-shaped routes.
WARM_UP_SECONDS = 2
FLOOR_EQUIVALENT = {"graphql_list": "rest_list", "graphql_create": "rest_create"}


@dataclass
class Run:
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    peak_rss_mb: float
    # Worker CPU time (user + system) per request: what a request costs the server, which
    # other work on a shared machine changes far less than requests/s.
    cpu_us: float


@dataclass
class Row:
    scenario: Scenario
    api: list[Run] = field(default_factory=list)
    floor: list[Run] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    """A fresh, migrated and seeded database; dropped afterwards."""
    server = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        server = start_embedded_postgres(PROJECT / ".data" / "bench-postgres")
        admin_url = server.url
    name = f"taskql_bench_{os.getpid()}"
    url = (
        admin_url.replace("/postgres?", f"/{name}?")
        if "/postgres?" in admin_url
        else (admin_url.rsplit("/", 1)[0] + f"/{name}")
    )
    asyncio.run(_create(admin_url, name, url))
    try:
        yield url
    finally:
        asyncio.run(_drop(admin_url, name))
        if server is not None:
            server.stop()


async def _create(admin_url: str, name: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    engine = create_engine(DatabaseConfig(url=url))
    await upgrade(engine)
    await engine.dispose()


# Writes that record no event: the migrated function's signature, no body.
NO_EVENT_FUNCTION = (
    "CREATE OR REPLACE FUNCTION taskql_record_event(kind text, task tasks) RETURNS void "
    "LANGUAGE plpgsql AS $$ BEGIN END $$"
)


async def _record_no_events(url: str) -> str:
    """Make writes record no event; the statement that restores the function as it was."""
    conn = await asyncpg.connect(url)
    try:
        restore = await conn.fetchval(
            "SELECT pg_get_functiondef('taskql_record_event(text, tasks)'::regprocedure)"
        )
        await conn.execute(NO_EVENT_FUNCTION)
    finally:
        await conn.close()
    return str(restore)


async def _execute(url: str, statement: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def event_rows(url: str, recorded: bool) -> Iterator[None]:
    """Writes record their events inside the block or, when not `recorded`, none."""
    if recorded:
        yield
        return
    restore = asyncio.run(_record_no_events(url))
    try:
        yield
    finally:
        asyncio.run(_execute(url, restore))


async def _drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await conn.close()


Users = list[dict[str, str]]


async def seed(url: str, users: int, tasks: int) -> tuple[Users, Users]:
    """`users` readers with `tasks` tasks each, and as many writers with none."""
    readers = [secrets.token_hex(16) for _ in range(users)]
    writers = [secrets.token_hex(16) for _ in range(users)]
    records = [
        (owner, f"Task {n} of {owner[:6]}", "seeded for the benchmark", n % 3 == 0)
        for owner in readers
        for n in range(tasks)
    ]
    conn = await asyncpg.connect(url)
    await conn.copy_records_to_table(
        "tasks", records=records, columns=["owner_id", "title", "description", "completed"]
    )
    first_task = dict(await conn.fetch("SELECT owner_id, min(id) FROM tasks GROUP BY owner_id"))
    await conn.execute("ANALYZE tasks")
    await conn.close()
    expires = int(time.time()) + 6 * 3600

    def user(user_id: str, task: int | None) -> dict[str, str]:
        token = jwt.encode({"sub": user_id, "exp": expires}, SECRET, algorithm="HS256")
        return {"id": user_id, "token": token, "task": str(task or 0)}

    return [user(r, first_task[r]) for r in readers], [user(w, None) for w in writers]


def write_lua_data(readers: list[dict[str, str]], writers: list[dict[str, str]]) -> Path:
    def table(users: list[dict[str, str]]) -> str:
        return ",\n".join(
            f'{{id="{u["id"]}", token="{u["token"]}", task="{u["task"]}"}}' for u in users
        )

    path = WORK_DIR / "data.lua"
    path.write_text(f"return {{readers={{{table(readers)}}},\nwriters={{{table(writers)}}}}}\n")
    return path


@contextmanager
def server(command: list[str], env: dict[str, str], port: int) -> Iterator[psutil.Process]:
    process = subprocess.Popen(command, cwd=PROJECT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start") from error
                time.sleep(0.2)
        yield psutil.Process(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


class RssSampler:
    """Peak resident memory per worker process while a run goes on."""

    def __init__(self, parent: psutil.Process) -> None:
        self.parent = parent
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            for child in self.parent.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                except psutil.Error:
                    continue
                if "postgres" not in child.name():
                    self.peak[child.pid] = max(self.peak.get(child.pid, 0), rss)
            self._stop.wait(0.5)

    @property
    def peak_mb(self) -> float:
        return max(self.peak.values(), default=0) / 2**20


def soak(port: int, process: psutil.Process, seconds: int, connections: int, data: Path) -> str:
    """The mix for `seconds`; each worker's RSS after the first fifth (warm) and at the end."""
    env = {**os.environ, "SCENARIO": "mix", "BENCH_DATA": str(data), "THINK_MS": "0"}
    command = [
        "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(PROJECT / "bench" / "scenario.lua"), f"http://127.0.0.1:{port}",
    ]  # fmt: skip
    load = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    warm: dict[int, int] = {}
    last: dict[int, int] = {}
    started = time.monotonic()
    while load.poll() is None:
        for child in process.children(recursive=True):
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            last[child.pid] = rss
            if time.monotonic() - started >= seconds / 5:
                warm.setdefault(child.pid, rss)
        time.sleep(2)
    output = load.communicate()[0]
    result = json.loads(next(ln for ln in output.splitlines() if ln.startswith("RESULT "))[7:])
    lines = [
        f"soak: mix for {seconds} s on {connections} connections, "
        f"{result['requests'] / (result['duration_us'] / 1e6):,.0f} req/s, "
        f"{result['non2xx']} non-2xx",
        "",
        "| worker | RSS after warm-up MB | RSS at end MB | change |",
        "|---|---|---|---|",
    ]
    for pid in sorted(warm):
        before, after = warm[pid] / 2**20, last[pid] / 2**20
        lines.append(f"| {pid} | {before:.1f} | {after:.1f} | {100 * (after / before - 1):+.1f}% |")
    return "\n".join(lines)


def wrk(
    port: int,
    scenario: str,
    connections: int,
    duration: int,
    data: Path,
    *,
    think_ms: int = 0,
    think: str = "jitter",
) -> dict[str, int]:
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "BENCH_DATA": str(data),
        "THINK_MS": str(think_ms),
        "THINK": think,
    }
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "-s",
        str(PROJECT / "bench" / "scenario.lua"),
        f"http://127.0.0.1:{port}",
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def worker_cpu_seconds(parent: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by the server's processes, PostgreSQL's aside."""
    total = 0.0
    for child in [parent, *parent.children(recursive=True)]:
        try:
            if "postgres" not in child.name():
                times = child.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def measure(
    port: int,
    process: psutil.Process,
    scenario: Scenario,
    args: argparse.Namespace,
    data: Path,
    wrk_scenario: str | None = None,
) -> Run:
    connections = scenario.connections or args.connections
    cpu_before = worker_cpu_seconds(process)
    with RssSampler(process) as rss:
        result = wrk(
            port,
            wrk_scenario or scenario.name,
            connections,
            args.duration,
            data,
            think_ms=scenario.think_ms,
            think=scenario.think,
        )
    seconds = result["duration_us"] / 1e6
    return Run(
        rps=result["requests"] / seconds,
        p50_ms=result["p50_us"] / 1000,
        p95_ms=result["p95_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        non2xx=result["non2xx"],
        socket_errors=sum(
            result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        peak_rss_mb=rss.peak_mb,
        cpu_us=(worker_cpu_seconds(process) - cpu_before) / max(1, result["requests"]) * 1e6,
    )


def warm_up(
    api_port: int, floor_port: int | None, scenario: Scenario, args: argparse.Namespace, data: Path
) -> None:
    """A short unrecorded run of the scenario on each app: both pools open their connections
    and prepare their statements before anything is measured, not inside the first run."""
    connections = scenario.connections or args.connections
    wrk(api_port, scenario.name, connections, WARM_UP_SECONDS, data, think_ms=scenario.think_ms)
    if floor_port is not None:
        floor_scenario = FLOOR_EQUIVALENT.get(scenario.name, scenario.name)
        wrk(floor_port, floor_scenario, connections, WARM_UP_SECONDS, data)


def register_list_document(port: int, user: dict[str, str]) -> None:
    """Send the list query with its hash once, so that the persisted scenarios find it."""
    body = json.dumps({"query": LIST_QUERY, "extensions": PERSISTED_EXTENSIONS}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Authorization": f"Bearer {user['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "errors" not in json.loads(response.read()), "the list query did not register"


async def seed_completed(url: str, owner: str, count: int) -> list[int]:
    """`count` completed tasks of a new owner; their ids."""
    conn = await asyncpg.connect(url)
    try:
        records = [(owner, f"done {n}", "", True) for n in range(count)]
        await conn.copy_records_to_table(
            "tasks", records=records, columns=["owner_id", "title", "description", "completed"]
        )
        rows = await conn.fetch("SELECT id FROM tasks WHERE owner_id = $1 ORDER BY id", owner)
    finally:
        await conn.close()
    return [row["id"] for row in rows]


async def clear_completed(port: int, way: str, owner: str, ids: list[int]) -> float:
    """Seconds to delete the owner's completed tasks `way`: in one bulk request, or one
    request per task, one after another or BROWSER_CONNECTIONS at a time."""
    token = jwt.encode({"sub": owner, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    # Not httpx: its own CPU time per request (about 2 ms here) would be most of what the
    # single DELETEs are timed at; a browser's is far less.
    http = live.KeepAliveClient(
        f"http://127.0.0.1:{port}", BROWSER_CONNECTIONS, authorization=f"Bearer {token}"
    )
    path = f"/api/{owner}/tasks"
    await http.request("GET", f"{path}?limit=1")  # the connection, opened before timing
    started = time.perf_counter()
    if way == "bulk":
        status, body = await http.request("DELETE", f"{path}?completed=true")
        assert status == 200, body
        assert json.loads(body)["count"] == len(ids), body
    elif way == "sequential":
        for task_id in ids:
            assert (await http.request("DELETE", f"{path}/{task_id}"))[0] == 204
    else:
        responses = await asyncio.gather(*(http.request("DELETE", f"{path}/{i}") for i in ids))
        assert all(status == 204 for status, _ in responses)
    elapsed = time.perf_counter() - started
    await http.close()
    return elapsed


CLEARING = {
    "bulk": "one request: DELETE /api/{user}/tasks?completed=true",
    "sequential": f"{BULK_TASKS:,} single DELETEs, one after another",
    "concurrent": f"{BULK_TASKS:,} single DELETEs, {BROWSER_CONNECTIONS} at a time "
    "(a browser's connections to one host)",
}


def measure_clearing(port: int, process: psutil.Process, url: str, rounds: int) -> str:
    """Clearing BULK_TASKS completed tasks each way, interleaved; medians of `rounds`: the
    time the client waits, and the CPU time the API's processes spend."""
    seconds: dict[str, list[float]] = {way: [] for way in CLEARING}
    cpu: dict[str, list[float]] = {way: [] for way in CLEARING}
    for round_number in range(rounds):
        for way in CLEARING:
            owner = secrets.token_hex(16)
            ids = asyncio.run(seed_completed(url, owner, BULK_TASKS))
            cpu_before = worker_cpu_seconds(process)
            seconds[way].append(asyncio.run(clear_completed(port, way, owner, ids)))
            cpu[way].append(worker_cpu_seconds(process) - cpu_before)
            print(
                f"round {round_number + 1}: clearing, {way}: {seconds[way][-1]:.3f} s",
                file=sys.stderr,
                flush=True,
            )
    bulk = statistics.median(seconds["bulk"])
    lines = [
        f"clearing {BULK_TASKS:,} completed tasks (medians of {rounds} rounds)",
        "",
        "| how | requests | seconds | tasks/s | vs one request | API CPU s |",
        "|---|---|---|---|---|---|",
    ]
    for way, description in CLEARING.items():
        median = statistics.median(seconds[way])
        requests = 1 if way == "bulk" else BULK_TASKS
        lines.append(
            f"| {description} | {requests:,} | {median:.3f} | {BULK_TASKS / median:,.0f} "
            f"| {median / bulk:.1f}x | {statistics.median(cpu[way]):.3f} |"
        )
    return "\n".join(lines)


def median_run(runs: list[Run]) -> Run:
    return Run(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p95_ms=statistics.median(r.p95_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        non2xx=sum(r.non2xx for r in runs),
        socket_errors=sum(r.socket_errors for r in runs),
        peak_rss_mb=max(r.peak_rss_mb for r in runs),
        cpu_us=statistics.median(r.cpu_us for r in runs),
    )


def report(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"workers={args.workers} users={args.users} tasks/user={args.tasks} "
        f"connections={args.connections} duration={args.duration}s rounds={args.rounds} "
        f"(medians; errors summed over rounds)",
        "",
        "| scenario | API req/s | floor req/s | ratio | p50 ms | p95 ms | p99 ms "
        "| non-2xx | socket errors | peak RSS/worker MB | API CPU µs/req | floor CPU µs/req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        api = median_run(row.api)
        floor = median_run(row.floor) if row.floor else None
        ratio = f"{api.rps / floor.rps:.2f}" if floor else "-"
        floor_rps = f"{floor.rps:,.0f}" if floor else "-"
        lines.append(
            f"| {row.scenario.description} | {api.rps:,.0f} | {floor_rps} | {ratio} "
            f"| {api.p50_ms:.1f} | {api.p95_ms:.1f} | {api.p99_ms:.1f} | {api.non2xx} "
            f"| {api.socket_errors} | {api.peak_rss_mb:.0f} | {api.cpu_us:,.0f} "
            f"| {f'{floor.cpu_us:,.0f}' if floor else '-'} |"
        )
    by_name = {row.scenario.name: median_run(row.api) for row in rows if row.scenario.event_rows}
    lines += _event_cost(rows)
    if "rest_create" in by_name and "rest_create_key" in by_name:
        with_key, without = by_name["rest_create_key"], by_name["rest_create"]
        lines += [
            "",
            f"REST create with an Idempotency-Key: {with_key.rps / without.rps:.2f} of the "
            f"requests/s without one, p50 {with_key.p50_ms:.1f} ms against {without.p50_ms:.1f} ms",
        ]
    return "\n".join(lines)


def _event_cost(rows: list[Row]) -> list[str]:
    """What recording events costs each write scenario measured with and without them."""
    ratios: dict[tuple[str, bool], float] = {}
    for row in rows:
        if row.floor:
            ratios[row.scenario.name, row.scenario.event_rows] = (
                median_run(row.api).rps / median_run(row.floor).rps
            )
    lines = []
    for name, label in (("rest_create", "REST create"), ("rest_toggle", "REST toggle")):
        if (name, True) in ratios and (name, False) in ratios:
            with_events, without = ratios[name, True], ratios[name, False]
            lines.append(
                f"{label}: {with_events:.2f} of the floor with event rows, {without:.2f} without "
                f"(events: {with_events / without - 1:+.0%})"
            )
    return ["", *lines] if lines else []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per scenario and app")
    parser.add_argument("--only", nargs="*", help="scenario descriptions containing these words")
    parser.add_argument(
        "--soak",
        type=int,
        default=0,
        metavar="SECONDS",
        help="after the scenarios, run the mix this long and report RSS growth per worker",
    )
    parser.add_argument(
        "--bulk-rounds",
        type=int,
        default=5,
        help=f"rounds of clearing {BULK_TASKS:,} completed tasks in one request and one by one "
        "(0: none)",
    )
    parser.add_argument(
        "--live-seconds", type=float, default=20, help="seconds of writes per live scenario"
    )
    parser.add_argument(
        "--without-event-rows",
        action="store_true",
        help="writes record no event for live updates (taskql_record_event does nothing in "
        "the benchmark's database): what recording them costs, against a run without this",
    )
    parser.add_argument(
        "--api-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="settings for the API only, e.g. RLS=false",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or brew install wrk)", file=sys.stderr)
        return 2
    # 1,000 connections need as many file descriptors, in wrk and in the servers.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    # For scenario.lua's persisted scenarios; wrk inherits this environment.
    os.environ["PERSISTED_HASH"] = LIST_HASH
    os.environ["PERSISTED_QUERY_STRING"] = urllib.parse.urlencode(
        {"extensions": json.dumps(PERSISTED_EXTENSIONS, separators=(",", ":"))}
    )
    if LIST_QUERY not in (PROJECT / "bench" / "scenario.lua").read_text():
        print("LIST_QUERY is not the query scenario.lua lists with", file=sys.stderr)
        return 2
    scenarios = [
        s for s in SCENARIOS if not args.only or any(word in s.description for word in args.only)
    ]
    live_results: list[live.LiveResult] = []
    with database(args) as url:
        if args.without_event_rows:
            asyncio.run(_record_no_events(url))
        readers, writers = asyncio.run(seed(url, args.users, args.tasks))
        data = write_lua_data(readers, writers)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": SECRET,
            "WORKERS": str(args.workers),
            "LOG_LEVEL": "WARNING",
            "HOST": "127.0.0.1",
        }
        api_port, floor_port = free_port(), free_port()
        api_env = dict(item.split("=", 1) for item in args.api_env)
        api_cmd = [sys.executable, "main.py", "serve"]
        floor_cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(floor_port),
            "--workers",
            str(args.workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        with (
            server(api_cmd, {**env, **api_env, "PORT": str(api_port)}, api_port) as api,
            server(floor_cmd, env, floor_port) as floor,
        ):
            register_list_document(api_port, readers[0])
            rows = [Row(s) for s in scenarios]
            for round_number in range(args.rounds):
                # Every other round runs the scenarios backwards, so that a drift in the
                # machine's load (other jobs starting or ending) weighs on neighbours alike.
                for row in rows if round_number % 2 == 0 else rows[::-1]:
                    s = row.scenario
                    if round_number == 0:
                        warm_up(api_port, floor_port if s.floor else None, s, args, data)
                    with event_rows(url, s.event_rows):
                        if s.floor:
                            wrk_name = FLOOR_EQUIVALENT.get(s.name, s.name)
                            row.floor.append(measure(floor_port, floor, s, args, data, wrk_name))
                        row.api.append(measure(api_port, api, s, args, data))
                    floor_rps = f", floor {row.floor[-1].rps:,.0f}" if s.floor else ""
                    print(
                        f"round {round_number + 1}: {s.description}: {row.api[-1].rps:,.0f} req/s"
                        f" ({row.api[-1].cpu_us:,.0f} µs CPU/request){floor_rps}",
                        file=sys.stderr,
                        flush=True,
                    )
            cleared = ""
            if args.bulk_rounds:
                cleared = measure_clearing(api_port, api, url, args.bulk_rounds)
            soaked = soak(api_port, api, args.soak, args.connections, data) if args.soak else ""
            wanted = [
                name
                for name in LIVE_SCENARIOS
                if not args.only or any(word in name for word in args.only)
            ]
            if wanted:

                def fresh_api(port: int) -> AbstractContextManager[psutil.Process]:
                    return server(api_cmd, {**env, **api_env, "PORT": str(port)}, port)

                live_results = asyncio.run(run_live(wanted, api_port, api, fresh_api, args))
    if args.rounds > 0 and rows:
        print(report(rows, args) + ("\n" if soaked or cleared else ""))
    if cleared:
        print(cleared + ("\n" if soaked else ""))
    if soaked:
        print(soaked + "\n")
    if live_results:
        print(live.report(live_results))
    return 0


async def run_live(
    names: list[str],
    port: int,
    api: psutil.Process,
    fresh_api: Callable[[int], AbstractContextManager[psutil.Process]],
    args: argparse.Namespace,
) -> list[live.LiveResult]:
    """The live-update scenarios, one after another: deliveries against the running API, each
    idle scenario against a fresh one (`fresh_api(port)` starts it)."""
    base, ws_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/graphql"
    results = []
    for name in names:
        kind = LIVE_SCENARIOS[name]
        print(f"{name} ...", file=sys.stderr, flush=True)
        if kind == "many":
            users = [f"live-{n}" for n in range(1000)]
            result = await live.delivery(
                name, ws_url, base, SECRET, users, 1, 200, args.live_seconds
            )
        elif kind == "one":
            result = await live.delivery(
                name, ws_url, base, SECRET, ["live-one"], 100, 50, args.live_seconds
            )
        else:
            idle_port = free_port()
            with fresh_api(idle_port) as idle_api:
                result = await live.idle(name, kind, idle_port, SECRET, idle_api, 10_000)
        results.append(result)
    return results


if __name__ == "__main__":
    sys.exit(main())
