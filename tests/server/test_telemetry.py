"""Request telemetry: request ids in and out, and one structured access log line per request."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from schema.http import _operation_name
from server.logs import JsonFormatter

Auth = Callable[[str], dict[str, str]]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """The access log records so far, rendered as the JSON lines production writes."""
    formatter = JsonFormatter()
    return [
        json.loads(formatter.format(record))
        for record in caplog.records
        if record.name == "taskql.access"
    ]


async def test_request_id_from_the_client_is_echoed_and_logged(
    client: httpx.AsyncClient, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")
    response = await client.get(
        "/api/alice/tasks", headers={**auth("alice"), "X-Request-ID": "req-42.a:b"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42.a:b"
    [line] = access_lines(caplog)
    assert line["request_id"] == "req-42.a:b"


@pytest.mark.parametrize("sent", [None, "has space", "x" * 129, "evil\x7f"])
async def test_request_id_is_generated_when_absent_or_implausible(
    client: httpx.AsyncClient, auth: Auth, sent: str | None
) -> None:
    headers = auth("alice") | ({"X-Request-ID": sent} if sent is not None else {})
    response = await client.get("/api/alice/tasks", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_rest_line_has_route_template_status_duration_and_user_hash(
    client: httpx.AsyncClient, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    created = await client.post("/api/alice/tasks", headers=auth("alice"), json={"title": "a"})
    caplog.set_level(logging.INFO, logger="taskql.access")
    task_id = created.json()["id"]
    await client.get(f"/api/alice/tasks/{task_id}", headers=auth("alice"))
    await client.get(f"/api/alice/tasks/{task_id}", headers=auth("alice"))
    await client.get("/api/bob/tasks/999", headers=auth("bob"))
    first, second, bob = access_lines(caplog)
    assert first["route"] == "/api/{user_id}/tasks/{task_id}"
    assert first["method"] == "GET"
    assert first["status"] == 200
    assert first["operation"] is None
    assert isinstance(first["duration_ms"], float)
    assert first["time"].endswith("+00:00")
    assert re.fullmatch(r"[0-9a-f]{16}", first["user"])
    assert "alice" not in json.dumps(first)
    assert first["user"] == second["user"] != bob["user"]
    assert bob["status"] == 404


async def test_graphql_line_names_the_operation(
    client: httpx.AsyncClient, auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")
    named = {"query": "# list\nquery MyTasks { tasks(first: 1) { totalCount } }"}
    chosen = {"query": "query A { viewer { id } } query B { viewer { id } }", "operationName": "B"}
    for body in (named, chosen, {"query": "{ viewer { id } }"}):
        await client.post("/graphql", headers=auth("alice"), json=body)
    lines = access_lines(caplog)
    assert [line["operation"] for line in lines] == ["MyTasks", "B", None]
    assert {line["route"] for line in lines} == {"/graphql"}
    assert all(line["user"] for line in lines)
    assert [line["status"] for line in lines] == [200, 200, 200]


@pytest.mark.parametrize(
    ("operation_name", "logged"),
    [("A\nfake log line", None), ("x" * 101, None), (None, "Long" + "g" * 96)],
)
def test_only_graphql_names_are_logged_as_operations(
    operation_name: str | None, logged: str | None
) -> None:
    query = "query Long" + "g" * 200 + " { viewer { id } }"
    params = {"query": query, "operationName": operation_name}
    assert _operation_name(params) == logged


async def test_anonymous_and_unmatched_requests_are_logged_without_user(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskql.access")
    assert (await client.get("/api/alice/tasks")).status_code == 401
    assert (await client.get("/no/such/path/123")).status_code == 404
    unauthenticated, unmatched = access_lines(caplog)
    assert unauthenticated["user"] is None
    assert unauthenticated["status"] == 401
    assert unmatched["route"] == "<unmatched>"
