"""Live-update clients for tests: gql over graphql-transport-ws, httpx-sse for the SSE doors."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import httpx
from gql import Client, gql
from gql.client import AsyncClientSession
from gql.transport.websockets import WebsocketsTransport
from httpx_sse import ServerSentEvent, aconnect_sse

from rest_compat.events import RETRY_MILLISECONDS
from tests.support.cli import PROJECT_DIR
from tests.support.servers import free_port, wait_until_healthy
from tests.support.tokens import JWT_SECRET, hs256_token

SUBSCRIPTION = gql(
    "subscription Events($after: String) { taskEvents(after: $after) "
    "{ kind cursor taskId version task { id title completed } } }"
)
SUBSCRIPTION_TEXT = (
    "subscription { taskEvents%s { kind cursor taskId version task { id title completed } } }"
)


def new_user() -> str:
    return f"live-{uuid.uuid4().hex[:12]}"


def bearer(user_id: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {hs256_token(user_id, **claims)}"}


def websocket_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


def transport(base_url: str, token: str, **options: Any) -> WebsocketsTransport:
    """gql's WebSocket transport, speaking graphql-transport-ws only."""
    return WebsocketsTransport(
        url=websocket_url(base_url),
        init_payload={"Authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        **options,
    )


@asynccontextmanager
async def websocket_session(
    base_url: str, user_id: str, **claims: Any
) -> AsyncIterator[AsyncClientSession]:
    async with Client(transport=transport(base_url, hs256_token(user_id, **claims))) as session:
        yield session


async def subscribe(
    session: AsyncClientSession, *, after: str | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The taskEvents of a gql session, one dict each."""
    async for result in session.subscribe(SUBSCRIPTION, variable_values={"after": after}):
        yield result["taskEvents"]


@asynccontextmanager
async def rest_events(
    http: httpx.AsyncClient,
    user_id: str,
    *,
    after: str | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    """GET /api/{user}/tasks/events, as an async iterator of its server-sent events."""
    params = {} if after is None else {"after": after}
    async with aconnect_sse(
        http,
        "GET",
        f"/api/{user_id}/tasks/events",
        params=params,
        headers=headers if headers is not None else bearer(user_id),
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        yield _dispatched(source.aiter_sse())


async def _dispatched(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[ServerSentEvent]:
    """The events a browser dispatches: a block without data (`retry:` alone) is none."""
    async for event in events:
        if event.data or event.event != "message":
            yield event


@asynccontextmanager
async def graphql_events(
    http: httpx.AsyncClient,
    user_id: str,
    *,
    after: str | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[AsyncIterator[ServerSentEvent]]:
    """A GraphQL subscription over SSE (graphql-sse, distinct connections), its events."""
    argument = "" if after is None else f'(after: "{after}")'
    async with aconnect_sse(
        http,
        "POST",
        "/graphql",
        json={"query": SUBSCRIPTION_TEXT % argument},
        headers=headers if headers is not None else bearer(user_id),
    ) as source:
        assert source.response.status_code == 200, await source.response.aread()
        yield source.aiter_sse()


def rest_event(sse: ServerSentEvent) -> dict[str, Any]:
    """A REST stream event's data, checked against its id."""
    data: dict[str, Any] = json.loads(sse.data)
    assert sse.event == "message", sse
    assert sse.id == data["cursor"]
    return data


def graphql_event(sse: ServerSentEvent) -> dict[str, Any]:
    """A GraphQL-over-SSE `next` event's taskEvents."""
    assert sse.event == "next", sse
    payload = json.loads(sse.data)
    assert "errors" not in payload, payload
    event: dict[str, Any] = payload["data"]["taskEvents"]
    return event


async def create_tasks(http: httpx.AsyncClient, user_id: str, count: int) -> list[int]:
    """`count` tasks created through REST; their ids."""
    ids = []
    for number in range(count):
        response = await http.post(
            f"/api/{user_id}/tasks", json={"title": f"task {number}"}, headers=bearer(user_id)
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


class Deadline:
    """Seconds left until a point in time, for bounding waits in tests."""

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._at - time.monotonic())


@contextmanager
def served(database_url: str, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`main.py serve` in a process of its own on a free port: its URL and the process."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": JWT_SECRET,
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "4",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, "main.py", "serve"], cwd=PROJECT_DIR, env=environment
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


async def resuming_websocket(
    base_url: str, user_id: str, received: list[dict[str, Any]], stop: asyncio.Event
) -> None:
    """A gql subscriber that, whenever its connection ends, resumes from its last cursor."""
    cursor = "0"
    while not stop.is_set():
        try:
            async with websocket_session(base_url, user_id) as session:
                async for event in subscribe(session, after=cursor):
                    received.append(event)
                    cursor = event["cursor"]
        except Exception:
            await asyncio.sleep(0.1)


async def resuming_event_source(
    base_url: str,
    user_id: str,
    received: list[dict[str, Any]],
    stop: asyncio.Event,
    endings: list[str] | None = None,
    connections: list[str] | None = None,
) -> None:
    """An SSE subscriber of the REST stream that resumes as a browser's EventSource does: with
    Last-Event-ID, once the reconnection time the server's `retry:` field sets has passed.
    The codes of the `error` events that ended its streams go to `endings`; each connection's
    Last-Event-ID and how it ended go to `connections` (for failure messages)."""
    cursor = "0"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        while not stop.is_set():
            headers = {**bearer(user_id), "Last-Event-ID": cursor}
            outcome = "ended"
            try:
                async with rest_events(http, user_id, headers=headers) as events:
                    async for sse in events:
                        if sse.event == "error":
                            code = json.loads(sse.data)["code"]
                            outcome = f"error {code}"
                            if endings is not None:
                                endings.append(code)
                            break
                        event = rest_event(sse)
                        received.append(event)
                        cursor = event["cursor"]
            except (httpx.HTTPError, AssertionError) as error:
                outcome = type(error).__name__
            if connections is not None:
                connections.append(f"after {headers['Last-Event-ID']}: {outcome}")
            await asyncio.sleep(RETRY_MILLISECONDS / 1000)


def cursors(received: list[dict[str, Any]]) -> list[int]:
    return [int(event["cursor"]) for event in received]


async def recorded_cursors(database_url: str, user_id: str) -> list[str]:
    """The cursors of the user's recorded events, oldest first (read as the database's owner,
    past row-level security). Positions grow but skip: one sequence numbers everyone's."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT position FROM task_events WHERE owner_id = $1 ORDER BY position", user_id
        )
    finally:
        await conn.close()
    return [str(row["position"]) for row in rows]
