"""Live-update scenarios of the benchmark: delivery latency from commit to client, one user's
many connections, and what idle subscribers cost.

Subscribers are raw graphql-transport-ws clients (the `websockets` library), many per client
process; writes are REST creates paced at a fixed rate by a process of their own. Latency is
the time from an event's `recordedAt` (its transaction's start, on the database's clock: this
machine's) to its arrival at the client, so it includes the write itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import random
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

import jwt
import psutil
import websockets

SUBSCRIPTION = "subscription { taskEvents { cursor recordedAt } }"
CREATE_BODY = b'{"title": "live bench"}'
CONNECT_AT_ONCE = 100
Opened = TypeVar("Opened")


@dataclass
class LiveResult:
    name: str
    subscribers: int
    target_rate: float
    writes: int = 0
    write_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    # How late this process's event loop woke from 5 ms sleeps while the writes ran.
    client_lag_ms: list[float] = field(default_factory=list)


def token(secret: str, user_id: str) -> str:
    return jwt.encode({"sub": user_id, "exp": int(time.time()) + 6 * 3600}, secret, "HS256")


async def subscriber(url: str, bearer: str) -> websockets.ClientConnection:
    """A connection that has been acknowledged and has subscribed to taskEvents."""
    connection = await websockets.connect(
        url, subprotocols=["graphql-transport-ws"], max_queue=None, open_timeout=60
    )
    await connection.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {bearer}"}})
    )
    acknowledged = json.loads(await connection.recv())
    if acknowledged["type"] != "connection_ack":
        raise RuntimeError(f"not acknowledged: {acknowledged}")
    await connection.send(
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
    )
    return connection


async def open_all(url: str, bearers: list[str]) -> tuple[list[websockets.ClientConnection], int]:
    """Subscribers for every token, CONNECT_AT_ONCE at a time; and how many failed."""
    return await _open_gated([functools.partial(subscriber, url, bearer) for bearer in bearers])


async def _open_gated(openers: list[Callable[[], Awaitable[Opened]]]) -> tuple[list[Opened], int]:
    """What each opener opens, CONNECT_AT_ONCE at a time; and how many failed."""
    opened: list[Opened] = []
    errors = 0
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(opener: Callable[[], Awaitable[Opened]]) -> None:
        nonlocal errors
        async with gate:
            try:
                opened.append(await opener())
            except Exception:
                errors += 1

    await asyncio.gather(*(one(opener) for opener in openers))
    return opened, errors


class EventStream:
    """An idle event stream (SSE) whose response has begun: a socket and nothing else, so that
    10,000 of them cost the client little. Like a WebSocket client's, `close_code` is None
    while the stream is open."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    @property
    def close_code(self) -> int | None:
        return 1000 if self._writer.transport.is_closing() else None

    async def close(self) -> None:
        self._writer.close()


async def event_stream(port: int, request: bytes) -> EventStream:
    """Sends `request` and waits for a 200 status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    status = await asyncio.wait_for(reader.readline(), 60)
    if b" 200 " not in status:
        writer.close()
        raise RuntimeError(f"not a stream: {status!r}")
    return EventStream(writer)


def stream_request(transport: str, bearer: str, user: str) -> bytes:
    """The request that opens a stream of `transport` ("graphql-sse" or "rest-sse")."""
    if transport == "graphql-sse":  # GraphQL over SSE, a connection per subscription
        body = json.dumps({"query": SUBSCRIPTION}).encode()
        head = (
            f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n"
            "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body
    return (
        f"GET /api/{user}/tasks/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {bearer}\r\nAccept: text/event-stream\r\n\r\n"
    ).encode()


async def _read(connection: websockets.ClientConnection, result: LiveResult) -> None:
    try:
        async for message in connection:
            arrived = time.time()
            payload = json.loads(message)
            if payload["type"] != "next" or "errors" in payload["payload"]:
                result.errors += 1
                continue
            recorded = payload["payload"]["data"]["taskEvents"]["recordedAt"]
            result.latencies_ms.append(
                (arrived - datetime.fromisoformat(recorded).timestamp()) * 1000
            )
    except websockets.ConnectionClosed:
        result.errors += 1


async def _loop_lag(result: LiveResult, period: float = 0.005) -> None:
    """Records how late this process's event loop wakes. The subscribers' client shares one
    loop, so a late wake-up here is latency the server did not cause (the client was busy,
    or the machine stalled), and a p99 of deliveries near the loop's own lag says so."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + period
        await asyncio.sleep(period)
        result.client_lag_ms.append((loop.time() - expected) * 1000)


class KeepAliveClient:
    """Requests over a few kept-alive HTTP/1.1 connections, with nothing else.

    Why not httpx: on this 2-core machine it spends about 2 ms of CPU per request, so 200
    writes/s took 40% of a core from the server being measured (this: about 0.4 ms). It reads
    only what the API sends: a status line, headers, and a Content-Length body.
    """

    def __init__(self, base: str, connections: int, authorization: str = "") -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._authorization = authorization
        # Each place in the pool: an open connection, or None until one is needed.
        self._places: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]
        self._places = asyncio.Queue()
        for _ in range(connections):
            self._places.put_nowait(None)

    async def request(
        self, method: str, target: str, body: bytes = b"", authorization: str = ""
    ) -> tuple[int, bytes]:
        """The response's status and body."""
        place = await self._places.get()
        try:
            reader, writer = place or await asyncio.open_connection(self._host, self._port)
        except BaseException:
            self._places.put_nowait(None)
            raise
        try:
            status, content = await self._exchange(
                reader, writer, method, target, body, authorization
            )
        except BaseException:
            # A connection left mid-response (a timeout, a reset) cannot be reused; its
            # place is given back empty, so that a failure never holds up other requests.
            writer.close()
            self._places.put_nowait(None)
            raise
        self._places.put_nowait((reader, writer))
        return status, content

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        method: str,
        target: str,
        body: bytes,
        authorization: str,
    ) -> tuple[int, bytes]:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: {self._host}\r\n"
            f"Authorization: {authorization or self._authorization}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await reader.readexactly(length)

    async def close(self) -> None:
        while not self._places.empty():
            place = self._places.get_nowait()
            if place is not None:
                place[1].close()


def _write_at_rate(
    base: str, tokens: dict[str, str], rate: float, seconds: float, out: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """Another process: REST creates for random users, `rate` a second, for `seconds`."""

    async def run() -> tuple[int, int, float]:
        users = list(tokens)
        done = failed = 0
        started = time.monotonic()
        pending: set[asyncio.Task[None]] = set()
        http = KeepAliveClient(base, connections=50)

        async def create(user: str) -> None:
            nonlocal done, failed
            request = http.request(
                "POST", f"/api/{user}/tasks", CREATE_BODY, f"Bearer {tokens[user]}"
            )
            try:
                status, _ = await asyncio.wait_for(request, 10)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
                failed += 1
                return
            if status == 201:
                done += 1
            else:
                failed += 1

        count = int(rate * seconds)
        for n in range(count):
            # Paced from the start, so a slow response does not slow the rate.
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(create(random.choice(users)))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        await http.close()
        return done, failed, time.monotonic() - started

    out.put(asyncio.run(run()))


async def delivery(
    name: str,
    ws_url: str,
    base: str,
    secret: str,
    users: list[str],
    connections_per_user: int,
    rate: float,
    seconds: float,
) -> LiveResult:
    """Subscribers for `users` (`connections_per_user` each) while writes land at `rate`/s."""
    tokens = {user: token(secret, user) for user in users}
    bearers = [tokens[user] for user in users for _ in range(connections_per_user)]
    result = LiveResult(name, len(bearers), rate)
    connections, result.errors = await open_all(ws_url, bearers)
    readers = [asyncio.create_task(_read(c, result)) for c in connections]
    await asyncio.sleep(1)
    lag = asyncio.create_task(_loop_lag(result))
    out: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    writer = multiprocessing.get_context("spawn").Process(
        target=_write_at_rate, args=(base, tokens, rate, seconds, out)
    )
    # Starting a spawned process waits for it to read its arguments, and joining one waits
    # for its interpreter to shut down: both off the loop, or the subscribers' events would
    # wait for them (the loop-lag column showed 130-290 ms stalls that matched the maxima).
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, writer.start)
    done, failed, result.write_seconds = await loop.run_in_executor(None, out.get)
    await loop.run_in_executor(None, writer.join)
    result.writes = done
    result.errors += failed
    await asyncio.sleep(2)  # the last events
    for reader in [*readers, lag]:
        reader.cancel()
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return result


def workers_rss_mb(server: psutil.Process) -> float:
    """Resident memory of the server's processes (its workers), PostgreSQL's excluded."""
    total = 0
    for process in [server, *server.children(recursive=True)]:
        try:
            if "postgres" not in process.name():
                total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


async def open_idle(
    transport: str, port: int, secret: str, users: list[str]
) -> tuple[list[websockets.ClientConnection] | list[EventStream], int]:
    """A subscriber over `transport` for each user, open and idle; and how many failed."""
    if transport == "graphql-transport-ws":
        bearers = [token(secret, user) for user in users]
        return await open_all(f"ws://127.0.0.1:{port}/graphql", bearers)
    # "graphql-sse" or "rest-sse"
    requests = [stream_request(transport, token(secret, user), user) for user in users]
    return await _open_gated(
        [functools.partial(event_stream, port, request) for request in requests]
    )


async def idle(
    name: str, transport: str, port: int, secret: str, server: psutil.Process, count: int
) -> LiveResult:
    """`count` subscribers over `transport`, one user each, connected and idle: errors and
    memory each."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count * 2 + 1000)), hard))
    result = LiveResult(name, count, 0.0)
    users = [f"idle-{n}" for n in range(count)]
    await asyncio.sleep(1)
    result.rss_before_mb = workers_rss_mb(server)
    connections, result.errors = await open_idle(transport, port, secret, users)
    await asyncio.sleep(5)  # idle, as connected clients mostly are
    result.errors += sum(1 for c in connections if c.close_code is not None)
    result.rss_after_mb = workers_rss_mb(server)
    await asyncio.gather(*(c.close() for c in connections), return_exceptions=True)
    return result


def report(results: list[LiveResult]) -> str:
    lines = [
        "| live scenario | subscribers | writes/s | events delivered | p50 ms | p99 ms | max ms "
        "| client loop lag p99 / max ms | errors | server RSS before -> after MB "
        "| per subscriber KB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        latencies = sorted(r.latencies_ms)
        p50 = f"{statistics.median(latencies):.1f}" if latencies else "-"
        p99 = f"{latencies[int(len(latencies) * 0.99) - 1]:.1f}" if latencies else "-"
        top = f"{latencies[-1]:.1f}" if latencies else "-"
        rate = f"{r.writes / r.write_seconds:,.0f}" if r.write_seconds else "-"
        lags = sorted(r.client_lag_ms)
        lag = f"{lags[int(len(lags) * 0.99) - 1]:.1f} / {lags[-1]:.1f}" if lags else "-"
        memory = per_kb = "-"
        if r.rss_after_mb:
            memory = f"{r.rss_before_mb:,.0f} -> {r.rss_after_mb:,.0f}"
            per_kb = f"{(r.rss_after_mb - r.rss_before_mb) * 1024 / r.subscribers:.1f}"
        lines.append(
            f"| {r.name} | {r.subscribers:,} | {rate} | {len(latencies):,} | {p50} | {p99} "
            f"| {top} | {lag} | {r.errors} | {memory} | {per_kb} |"
        )
    return "\n".join(lines)
