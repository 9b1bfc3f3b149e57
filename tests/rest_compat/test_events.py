"""GET /api/{user_id}/tasks/events over a real socket: ids are cursors, Last-Event-ID and
`after` resume, keep-alive comments, the error event, and every documented status."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.support.app import make_settings
from tests.support.live import live_server
from tests.support.servers import free_port
from tests.support.streams import (
    bearer,
    create_tasks,
    new_user,
    recorded_cursors,
    rest_event,
    rest_events,
)
from tests.support.tokens import hs256_token

MAX_BODY_BYTES = 64
SETTINGS = {
    "DB_POOL_SIZE": "3",
    "LIVE_CONNECTIONS_PER_USER": "1",
    "LIVE_HEARTBEAT_SECONDS": "0.3",
    "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
}


@pytest.fixture(scope="module")
def base_url(database_url: str) -> Iterator[str]:
    with live_server(make_settings(database_url, **SETTINGS)) as url:
        yield url


@pytest.fixture
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


async def test_each_event_carries_its_cursor_as_id_and_after_resumes_past_it(
    http: httpx.AsyncClient, database_url: str
) -> None:
    user = new_user()
    [task_id] = await create_tasks(http, user, 1)
    await http.patch(f"/api/{user}/tasks/{task_id}/complete", headers=bearer(user))
    created, *_ = await recorded_cursors(database_url, user)
    async with rest_events(http, user, after=created) as events:
        toggled = rest_event(await anext(events))
        await http.delete(f"/api/{user}/tasks/{task_id}", headers=bearer(user))
        deleted = rest_event(await anext(events))
    _, toggled_at, deleted_at = await recorded_cursors(database_url, user)
    assert toggled["kind"] == "completion_toggled"
    assert (toggled["cursor"], toggled["version"]) == (toggled_at, 2)
    assert toggled["task"]["completed"] is True
    assert toggled["task"]["id"] == task_id
    assert deleted == {
        "kind": "deleted",
        "cursor": deleted_at,
        "task_id": task_id,
        "version": 2,
        "task": None,
    }


async def test_last_event_id_wins_over_after(http: httpx.AsyncClient, database_url: str) -> None:
    # EventSource reconnects to the same URL, with the last id it saw as Last-Event-ID.
    user = new_user()
    await create_tasks(http, user, 3)
    _, second, third = await recorded_cursors(database_url, user)
    headers = {**bearer(user), "Last-Event-ID": second}
    async with rest_events(http, user, after="0", headers=headers) as events:
        assert rest_event(await anext(events))["cursor"] == third


async def test_a_browser_token_in_the_query_is_accepted(
    http: httpx.AsyncClient, database_url: str
) -> None:
    user = new_user()
    await create_tasks(http, user, 1)
    [created] = await recorded_cursors(database_url, user)
    url = f"/api/{user}/tasks/events?after=0&access_token={hs256_token(user)}"
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        lines = response.aiter_lines()
        assert await anext(lines) == "retry: 1000"
        assert await anext(lines) == ""
        assert await anext(lines) == f"id: {created}"


@pytest.mark.slow
async def test_an_idle_stream_gets_keep_alive_comments(http: httpx.AsyncClient) -> None:
    user = new_user()
    async with http.stream("GET", f"/api/{user}/tasks/events", headers=bearer(user)) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert response.headers["x-accel-buffering"] == "no"
        lines = response.aiter_lines()
        started = time.monotonic()
        seen = [await anext(lines) for _ in range(4)]
    assert seen == ["retry: 1000", "", ": keep-alive", ""]
    assert 0.25 < time.monotonic() - started < 2


@pytest.mark.slow
async def test_an_expiring_token_ends_the_stream_with_an_error_event_within_a_second(
    http: httpx.AsyncClient, database_url: str
) -> None:
    user = new_user()
    [task_id] = await create_tasks(http, user, 1)
    expires_at = int(time.time()) + 2
    async with rest_events(http, user, after="0", headers=bearer(user, exp=expires_at)) as events:
        assert rest_event(await anext(events))["task_id"] == task_id
        ended = await anext(events)
        ended_at = time.time()
    assert ended.event == "error"
    assert json.loads(ended.data) == {
        "detail": "The token has expired",
        "code": "TOKEN_EXPIRED",
        "cursor": (await recorded_cursors(database_url, user))[0],
    }
    assert expires_at <= ended_at < expires_at + 1.0


async def test_head_answers_the_headers_alone(http: httpx.AsyncClient) -> None:
    user = new_user()
    response = await http.head(f"/api/{user}/tasks/events", headers=bearer(user))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content == b""


@pytest.fixture(scope="module")
def unreachable_base_url() -> Iterator[str]:
    """The same API with nothing listening where its database should be."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/taskql"
    with live_server(make_settings(url, DB_CONNECT_TIMEOUT="1", **SETTINGS)) as base:
        yield base


async def test_every_documented_status_is_given_as_documented(
    http: httpx.AsyncClient, unreachable_base_url: str
) -> None:
    document = (await http.get("/api/openapi.json")).json()
    operation = document["paths"]["/api/{user_id}/tasks/events"]["get"]
    user = new_user()
    given: dict[int, httpx.Response] = {}

    async def refused(path_user: str, **request: Any) -> None:
        response = await http.request("GET", f"/api/{path_user}/tasks/events", **request)
        given[response.status_code] = response

    await refused(user)
    await refused(user, headers={"Authorization": "Bearer not-a-token"})
    await refused("someone-else", headers=bearer(user))
    await refused(user, headers=bearer(user), params={"after": "yesterday"})
    await refused(user, headers={**bearer(user), "Last-Event-ID": "-1"})
    await refused(user, headers=bearer(user), content=b"x" * (MAX_BODY_BYTES + 1))
    async with rest_events(http, user):
        await refused(user, headers=bearer(user))  # one live connection per user here
    async with httpx.AsyncClient(base_url=unreachable_base_url, timeout=10) as elsewhere:
        response = await elsewhere.get(f"/api/{user}/tasks/events", headers=bearer(user))
        given[response.status_code] = response
    listed = {int(status) for status in operation["responses"]} - {200}
    assert set(given) == listed
    for status, response in given.items():
        documented = operation["responses"][str(status)]
        schema = documented["content"]["application/json"]["schema"]
        jsonschema_rs.validate({**schema, "components": document["components"]}, response.json())
        for header in documented.get("headers", {}):
            assert header in response.headers, (status, header)
    assert given[422].json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]


@pytest.mark.slow
async def test_other_methods_are_405_listing_get(http: httpx.AsyncClient) -> None:
    user = new_user()
    response = await http.post(f"/api/{user}/tasks/events", headers=bearer(user))
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
