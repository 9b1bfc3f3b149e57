"""Subscriptions at /graphql over real sockets: gql's graphql-transport-ws transport, a raw
WebSocket for the close codes, and GraphQL over SSE with httpx-sse."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import websockets
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from websockets.exceptions import ConnectionClosed

from tests.support.app import make_settings
from tests.support.live import awaiting, eventually, live_server
from tests.support.streams import (
    SUBSCRIPTION_TEXT,
    bearer,
    create_tasks,
    graphql_event,
    graphql_events,
    new_user,
    recorded_cursors,
    subscribe,
    websocket_session,
    websocket_url,
)
from tests.support.tokens import hs256_token

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    settings = make_settings(
        database_url,
        DB_POOL_SIZE="4",
        CORS_ORIGINS=ORIGIN,
        LIVE_CONNECTIONS_PER_USER="2",
        LIVE_SUBSCRIPTIONS_PER_CONNECTION="2",
    )
    with live_server(settings) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def test_gql_over_graphql_transport_ws_gets_missed_then_live_events(
    base_url: str, http: httpx.AsyncClient, database_url: str
) -> None:
    user = new_user()
    [first] = await create_tasks(http, user, 1)
    received: list[dict[str, Any]] = []
    first_arrived = asyncio.Event()
    async with websocket_session(base_url, user) as session:

        async def listen() -> None:
            async for event in subscribe(session, after="0"):
                received.append(event)
                first_arrived.set()
                if len(received) == 3:
                    return

        listening = asyncio.create_task(listen())
        await asyncio.wait_for(first_arrived.wait(), 10)
        await http.patch(f"/api/{user}/tasks/{first}/complete", headers=bearer(user))
        await http.delete(f"/api/{user}/tasks/{first}", headers=bearer(user))
        await asyncio.wait_for(listening, 10)

    created, toggled, deleted = await recorded_cursors(database_url, user)
    assert [(e["kind"], e["cursor"], e["version"]) for e in received] == [
        ("CREATED", created, 1),
        ("COMPLETION_TOGGLED", toggled, 2),
        ("DELETED", deleted, 2),
    ]
    assert received[1]["task"] == {"id": str(first), "title": "task 0", "completed": True}
    assert received[2]["task"] is None
    assert received[2]["taskId"] == str(first)


async def _open(base_url: str, **options: Any) -> websockets.ClientConnection:
    return await websockets.connect(
        websocket_url(base_url), subprotocols=["graphql-transport-ws"], **options
    )


async def _init(socket: websockets.ClientConnection, token: str | None) -> Any:
    payload = {} if token is None else {"Authorization": f"Bearer {token}"}
    await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
    return json.loads(await asyncio.wait_for(socket.recv(), 5))


async def _closed(socket: websockets.ClientConnection) -> tuple[int, str]:
    """The close code and reason the server sent, 5 seconds at most from now."""
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await socket.recv()
    frame = socket.protocol.close_rcvd
    assert frame is not None, "the server did not close the connection"
    return frame.code, frame.reason


@pytest.mark.parametrize(
    "token",
    [None, "not-a-jwt", hs256_token("someone", secret="another-secret-that-is-long-enough")],
)
async def test_connection_init_without_a_valid_token_is_closed_4403(
    base_url: str, token: str | None
) -> None:
    async with await _open(base_url) as socket:
        await socket.send(json.dumps({"type": "connection_init", "payload": _payload(token)}))
        code, reason = await _closed(socket)
    assert code == 4403
    assert reason


async def test_an_acknowledged_socket_keeps_neither_its_token_nor_its_init_timer(
    base_url: str,
) -> None:
    async with await _open(base_url) as socket:
        assert (await _init(socket, hs256_token(new_user())))["type"] == "connection_ack"
        # The server notes the acknowledgement right after sending it.
        await eventually(_acknowledged_handlers)
        for handler in _acknowledged_handlers():
            assert handler.connection_init_timeout_task is None
            assert handler.context.connection_params is None


async def test_an_open_socket_keeps_no_frame_that_only_forwards_it(base_url: str) -> None:
    async with await _open(base_url) as socket:
        assert (await _init(socket, hs256_token(new_user())))["type"] == "connection_ack"
        chains = [
            chain
            for task in gc.get_objects()
            if issubclass(type(task), asyncio.Task)
            and "StreamingGraphQL._serve_websocket" in (chain := awaiting(task))
        ]
    assert chains
    for chain in chains:
        assert "StreamingGraphQL.__call__" not in chain


def _acknowledged_handlers() -> list[BaseGraphQLTransportWSHandler[Any, Any]]:
    """The server's graphql-transport-ws handlers of acknowledged connections."""
    return [
        handler
        for handler in gc.get_objects()
        # By type, not isinstance: a weak proxy to a dead object would raise.
        if issubclass(type(handler), BaseGraphQLTransportWSHandler)
        and handler.connection_acknowledged
    ]


def _payload(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
async def test_an_expiring_token_closes_the_socket_4403_within_a_second(
    base_url: str,
) -> None:
    user = new_user()
    expires_at = int(time.time()) + 2
    async with await _open(base_url) as socket:
        assert (await _init(socket, hs256_token(user, exp=expires_at)))["type"] == "connection_ack"
        query = SUBSCRIPTION_TEXT % ""
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        code, reason = await _closed(socket)
        closed_at = time.time()
    assert code == 4403
    assert "resume after" in reason
    assert expires_at <= closed_at < expires_at + 1.0


@pytest.mark.slow
async def test_an_expiring_token_closes_a_socket_without_subscriptions_within_a_second(
    base_url: str,
) -> None:
    expires_at = int(time.time()) + 2
    async with await _open(base_url) as socket:
        ack = await _init(socket, hs256_token(new_user(), exp=expires_at))
        assert ack["type"] == "connection_ack"
        code, reason = await _closed(socket)
        closed_at = time.time()
    assert code == 4403
    assert "expired" in reason
    assert expires_at <= closed_at < expires_at + 1.0


async def test_a_third_connection_of_one_user_is_closed_4429(base_url: str) -> None:
    user = new_user()
    async with await _open(base_url) as one, await _open(base_url) as two:
        for socket in (one, two):
            assert (await _init(socket, hs256_token(user)))["type"] == "connection_ack"
        async with await _open(base_url) as three:
            await three.send(
                json.dumps({"type": "connection_init", "payload": _payload(hs256_token(user))})
            )
            code, _ = await _closed(three)
    assert code == 4429


async def test_subscriptions_past_the_limit_get_an_error_with_a_code(base_url: str) -> None:
    query = SUBSCRIPTION_TEXT % ""
    async with await _open(base_url) as socket:
        await _init(socket, hs256_token(new_user()))
        for operation in ("1", "2", "3"):
            message = {"id": operation, "type": "subscribe", "payload": {"query": query}}
            await socket.send(json.dumps(message))
        refusal = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert refusal["type"] == "error"
    assert refusal["id"] == "3"
    assert refusal["payload"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"


async def test_queries_and_mutations_over_a_socket_are_refused(base_url: str) -> None:
    async with await _open(base_url) as socket:
        await _init(socket, hs256_token(new_user()))
        message = {"id": "q", "type": "subscribe", "payload": {"query": "{ viewer { id } }"}}
        await socket.send(json.dumps(message))
        answer = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert answer["payload"]["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert answer["payload"]["data"] is None


async def test_the_legacy_graphql_ws_protocol_is_not_offered(base_url: str) -> None:
    async with await websockets.connect(
        websocket_url(base_url), subprotocols=["graphql-ws"]
    ) as socket:
        assert socket.subprotocol is None
        code, _ = await _closed(socket)
    assert code == 4406


async def test_an_upgrade_from_an_origin_not_in_cors_origins_is_refused(base_url: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await _open(base_url, origin="https://evil.example.com")
    assert refused.value.response.status_code == 403
    async with await _open(base_url, origin=ORIGIN) as allowed:
        assert (await _init(allowed, hs256_token(new_user())))["type"] == "connection_ack"


async def test_graphql_over_sse_gets_missed_then_live_events(
    http: httpx.AsyncClient, database_url: str
) -> None:
    user = new_user()
    await create_tasks(http, user, 2)
    first, second = await recorded_cursors(database_url, user)
    async with graphql_events(http, user, after=first) as events:
        [missed] = [graphql_event(await anext(events))]
        await create_tasks(http, user, 1)
        live = graphql_event(await anext(events))
    *_, third = await recorded_cursors(database_url, user)
    assert (missed["kind"], missed["cursor"]) == ("CREATED", second)
    assert (live["kind"], live["cursor"]) == ("CREATED", third)


@pytest.mark.slow
async def test_an_expiring_token_ends_graphql_over_sse_with_an_error_within_a_second(
    http: httpx.AsyncClient,
) -> None:
    user = new_user()
    expires_at = int(time.time()) + 2
    headers = bearer(user, exp=expires_at)
    async with graphql_events(http, user, headers=headers) as events:
        ended = await anext(events)
        ended_at = time.time()
        complete = await anext(events)
    error = json.loads(ended.data)["errors"][0]
    assert (ended.event, complete.event) == ("next", "complete")
    assert error["extensions"]["code"] == "TOKEN_EXPIRED"
    # No event came: the cursor is where the stream started (a position, for resuming).
    assert error["extensions"]["cursor"].isdigit()
    assert expires_at <= ended_at < expires_at + 1.0


async def test_graphql_over_sse_without_a_token_is_401_before_any_stream(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": SUBSCRIPTION_TEXT % ""},
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_subscription_sent_as_a_plain_post_is_told_where_to_go(
    http: httpx.AsyncClient,
) -> None:
    user = new_user()
    response = await http.post(
        "/graphql", json={"query": SUBSCRIPTION_TEXT % ""}, headers=bearer(user)
    )
    assert response.status_code == 400
    assert "text/event-stream" in response.json()["errors"][0]["message"]


async def test_a_bad_cursor_is_refused_with_its_code(http: httpx.AsyncClient) -> None:
    user = new_user()
    async with graphql_events(http, user, after="yesterday") as events:
        refused = json.loads((await anext(events)).data)
    assert refused["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
