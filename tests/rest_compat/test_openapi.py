"""rest_compat/openapi.py: /api/openapi.json describes the REST routes exactly as they behave.

Each REST operation answers with exactly the statuses the document lists for it, in the
documented shapes: every listed status is provoked for real, and every provocation is listed
(over a real uvicorn on 127.0.0.1, against the session's PostgreSQL and, for 503, none at all).
The document names every route and list parameter, and its patterns admit exactly the titles
and due dates the API accepts.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.support import doors
from tests.support.app import app_client, make_settings
from tests.support.live import live_server
from tests.support.servers import free_port
from tests.support.tokens import JWT_SECRET, hs256_token

MAX_BODY_BYTES = 256
# Requests a fresh user may make before the rate limit answers; each provocation needs two.
BURST = 3
SETTINGS = {
    "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    "RATE_LIMIT_PER_MINUTE": "1",
    "RATE_LIMIT_BURST": str(BURST),
}
OPERATIONS = (
    "listTasks",
    "createTask",
    "getTask",
    "updateTask",
    "deleteTask",
    "toggleTask",
    "setTasksCompletion",
    "deleteTasks",
)
# What an operation needs beyond its path to be called as documented: a bulk change names its
# tasks (an empty filter is refused) and its body is the completion alone.
DOCUMENTED_PARAMS = {
    "setTasksCompletion": {"completed": "false"},
    "deleteTasks": {"completed": "true"},
}
DOCUMENTED_BODIES = {"setTasksCompletion": b'{"completed": true}'}
# Walked by tests/rest_compat/test_events.py, as its response never ends.
STREAMS = ("streamTaskEvents",)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
MISSING_TASK = 2**31


@pytest.fixture(scope="module")
def api(database_url: str) -> Iterator[str]:
    with live_server(make_settings(database_url, **SETTINGS)) as url:
        yield url


@pytest.fixture(scope="module")
def api_without_database() -> Iterator[str]:
    """The same API with nothing listening where its database should be."""
    unreachable = f"postgresql://postgres@127.0.0.1:{free_port()}/taskql"
    settings = make_settings(unreachable, DB_CONNECT_TIMEOUT="1", **SETTINGS)
    with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
def document(api: str) -> dict[str, Any]:
    return dict(httpx.get(f"{api}/api/openapi.json").json())


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def success(self) -> int:
        [status] = [int(s) for s in self.spec["responses"] if s.startswith("2")]
        return status

    @property
    def reads_body(self) -> bool:
        return "requestBody" in self.spec

    @property
    def names_task(self) -> bool:
        return "{task_id}" in self.path

    def takes(self, parameter: str) -> bool:
        return any(p["name"] == parameter for p in self.spec.get("parameters", []))


def find_operation(document: dict[str, Any], operation_id: str) -> Operation:
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method != "parameters" and spec["operationId"] == operation_id:
                return Operation(method.upper(), path, spec)
    raise AssertionError(f"{operation_id} is not in the document")


@dataclass
class Caller:
    """A fresh user (so a fresh rate-limit bucket) and, for task paths, one task of theirs."""

    http: httpx.AsyncClient
    operation: Operation
    user: str
    task_id: int | str = MISSING_TASK

    async def send(
        self,
        *,
        path_user: str | None = None,
        task_id: int | str | None = None,
        token: str | None = None,
        anonymous: bool = False,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The operation as documented, but for what the arguments change."""
        op = self.operation
        url = op.path.format(
            user_id=path_user or self.user, task_id=self.task_id if task_id is None else task_id
        )
        sent = {} if anonymous else {"Authorization": f"Bearer {token or hs256_token(self.user)}"}
        if op.reads_body or content is not None:
            sent["Content-Type"] = "application/json"
            documented = DOCUMENTED_BODIES.get(op.spec["operationId"], b'{"title": "probe"}')
            content = documented if content is None else content
        params = {**DOCUMENTED_PARAMS.get(op.spec["operationId"], {}), **(params or {})}
        return await self.http.request(
            op.method, url, headers={**sent, **(headers or {})}, content=content, params=params
        )


Send = Callable[[Caller], Awaitable[httpx.Response]]


@dataclass(frozen=True)
class Provocation:
    """A request and the status it must get from an operation (None: it does not apply)."""

    name: str
    expected: Callable[[Operation], int | None]
    send: Send
    without_database: bool = False


def _otherwise_success(applies: Callable[[Operation], bool], status: int) -> Any:
    return lambda op: status if applies(op) else op.success


def _writes(op: Operation) -> bool:
    return op.takes("Idempotency-Key")


async def _a_key_reused_for_another_request(caller: Caller) -> httpx.Response:
    """The operation with a key that was used first for another request: another body for a
    create, another If-Match for the writes that take one (the task is at version 1)."""
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}
    if caller.operation.takes("If-Match"):
        first = await caller.send(headers={**key, "If-Match": '"1"'})
    else:
        first = await caller.send(headers=key, content=b'{"title": "another"}')
    assert first.status_code == caller.operation.success, first.text
    return await caller.send(headers=key)


async def _a_retry_with_the_same_key(caller: Caller) -> httpx.Response:
    """The operation sent twice with one key: the second answer is the first one's replay."""
    key = {"Idempotency-Key": f'"{uuid.uuid4()}"'}
    first = await caller.send(headers=key)
    replay = await caller.send(headers=key)
    if _writes(caller.operation):
        assert replay.headers["idempotent-replayed"] == "true"
        assert (replay.status_code, replay.content) == (first.status_code, first.content)
    else:
        assert "idempotent-replayed" not in replay.headers
    return replay


async def _over_the_rate_limit(caller: Caller) -> httpx.Response:
    for _ in range(BURST):
        await caller.send(task_id=MISSING_TASK)
    return await caller.send(task_id=MISSING_TASK)


PROVOCATIONS = [
    Provocation("as documented", lambda op: op.success, lambda c: c.send()),
    Provocation("no token", lambda op: 401, lambda c: c.send(anonymous=True)),
    Provocation(
        "a token signed with another key",
        lambda op: 401,
        lambda c: c.send(token=hs256_token(c.user, secret=JWT_SECRET + "-not-ours")),
    ),
    Provocation("someone else's path", lambda op: 403, lambda c: c.send(path_user="someone-else")),
    Provocation(
        "no such task",
        lambda op: 404 if op.names_task else None,
        lambda c: c.send(task_id=MISSING_TASK),
    ),
    Provocation(
        "a task id that is not a number",
        lambda op: 422 if op.names_task else None,
        lambda c: c.send(task_id="one"),
    ),
    Provocation(
        "a stale If-Match",
        _otherwise_success(lambda op: op.takes("If-Match"), 412),
        lambda c: c.send(headers={"If-Match": '"999"'}),
    ),
    Provocation(
        "a malformed If-Match",
        _otherwise_success(lambda op: op.takes("If-Match"), 422),
        lambda c: c.send(headers={"If-Match": "yesterday"}),
    ),
    Provocation(
        "a malformed Idempotency-Key",
        _otherwise_success(_writes, 400),
        lambda c: c.send(headers={"Idempotency-Key": '"unterminated'}),
    ),
    Provocation(
        "an Idempotency-Key reused for another request",
        lambda op: 422 if _writes(op) else None,
        _a_key_reused_for_another_request,
    ),
    Provocation(
        "a retry with the same Idempotency-Key", lambda op: op.success, _a_retry_with_the_same_key
    ),
    Provocation(
        "a body that is not JSON",
        _otherwise_success(lambda op: op.reads_body, 415),
        lambda c: c.send(content=b"title=x", headers={"Content-Type": "text/plain"}),
    ),
    Provocation(
        "malformed JSON",
        _otherwise_success(lambda op: op.reads_body, 422),
        lambda c: c.send(content=b'{"title": '),
    ),
    Provocation(
        "a body over MAX_BODY_BYTES",
        lambda op: 413,
        lambda c: c.send(content=b"[" + b" " * MAX_BODY_BYTES + b"]"),
    ),
    Provocation(
        "a bad query parameter",
        # A bulk change takes no limit at all, and refuses one rather than ignore it.
        _otherwise_success(lambda op: op.takes("limit") or op.takes("all"), 422),
        lambda c: c.send(params={"limit": "-1"}),
    ),
    # REST speaks JSON whatever the client accepts: no 406.
    Provocation(
        "an Accept it cannot meet",
        lambda op: op.success,
        lambda c: c.send(headers={"Accept": "application/xml"}),
    ),
    Provocation("over the rate limit", lambda op: 429, _over_the_rate_limit),
    Provocation(
        "the database unreachable", lambda op: 503, lambda c: c.send(), without_database=True
    ),
]


@pytest.mark.parametrize("operation_id", OPERATIONS)
async def test_every_listed_status_is_given_and_every_status_given_is_listed(
    api: str, api_without_database: str, document: dict[str, Any], operation_id: str
) -> None:
    operation = find_operation(document, operation_id)
    given: dict[int, str] = {}
    async with (
        httpx.AsyncClient(base_url=api) as http,
        httpx.AsyncClient(base_url=api_without_database) as http_without_database,
    ):
        assert (await http_without_database.get("/api/openapi.json")).json() == document
        for provocation in PROVOCATIONS:
            expected = provocation.expected(operation)
            if expected is None:
                continue
            caller = Caller(http, operation, f"walker-{uuid.uuid4().hex}")
            if operation.names_task:
                created = await http.post(
                    f"/api/{caller.user}/tasks",
                    json={"title": "walked"},
                    headers={"Authorization": f"Bearer {hs256_token(caller.user)}"},
                )
                caller.task_id = created.json()["id"]
            if provocation.without_database:
                caller.http = http_without_database
            response = await provocation.send(caller)
            assert response.status_code == expected, (provocation.name, response.text)
            assert_as_documented(document, operation, response)
            given.setdefault(expected, provocation.name)
    listed = {int(status) for status in operation.spec["responses"]}
    assert set(given) == listed, f"listed but never given: {listed - set(given)}; given: {given}"


def assert_as_documented(
    document: dict[str, Any], operation: Operation, response: httpx.Response
) -> None:
    """The response's body and headers are those the document lists for its status."""
    documented = operation.spec["responses"].get(str(response.status_code))
    assert documented is not None, f"{response.status_code} is not listed"
    content = documented.get("content")
    if content is None:
        assert response.content == b""
    else:
        schema = {**content["application/json"]["schema"], "components": document["components"]}
        assert response.headers["content-type"] == "application/json"
        jsonschema_rs.validate(schema, response.json())
    for name, header in documented.get("headers", {}).items():
        value = response.headers.get(name)
        if value is None:
            assert not header["required"], f"{response.status_code} without its {name} header"
            continue
        jsonschema_rs.validate(
            header["schema"], int(value) if header["schema"]["type"] == "integer" else value
        )


async def test_a_method_a_path_does_not_list_is_405_allowing_those_it_does(
    api: str, document: dict[str, Any]
) -> None:
    error_schema = {"$ref": "#/components/schemas/Error", "components": document["components"]}
    assert "405" in document["info"]["description"]
    async with httpx.AsyncClient(base_url=api) as http:
        for path, item in document["paths"].items():
            listed = {method.upper() for method in item if method != "parameters"}
            # HTTP gives every GET a HEAD; it is not an operation of its own.
            allowed = listed | ({"HEAD"} if "GET" in listed else set())
            url = path.format(user_id="walker", task_id=1)
            for method in set(METHODS) - allowed:
                response = await http.request(
                    method, url, headers={"Authorization": f"Bearer {hs256_token('walker')}"}
                )
                assert response.status_code == 405, (method, path)
                assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
                if method != "HEAD":
                    jsonschema_rs.validate(error_schema, response.json())


async def test_the_document_walks_every_operation_and_lists_429_only_with_a_rate_limit(
    database_url: str, document: dict[str, Any]
) -> None:
    operations = [op for item in document["paths"].values() for op in item.values()]
    assert sorted(op["operationId"] for op in operations if "operationId" in op) == sorted(
        OPERATIONS + STREAMS
    )
    unlimited = dict(SETTINGS, RATE_LIMIT_PER_MINUTE="0")
    async with app_client(make_settings(database_url, **unlimited)) as http:
        without_limit = (await http.get("/api/openapi.json")).json()
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method == "parameters":
                continue
            assert "429" in spec["responses"]
            responses = {k: v for k, v in spec["responses"].items() if k != "429"}
            unlimited = without_limit["paths"][path][method]["responses"]
            # A stream can also meet the limit on live connections, rate limit or not.
            if spec["operationId"] in STREAMS:
                unlimited = {k: v for k, v in unlimited.items() if k != "429"}
            assert unlimited == responses


@pytest.mark.asyncio(loop_scope="module")
async def test_rest_openapi_document_describes_the_routes(
    http: httpx.AsyncClient, alice: doors.Caller
) -> None:
    response = await http.get("/api/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    operations = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert operations == {
        ("GET", "/api/{user_id}/tasks"),
        ("POST", "/api/{user_id}/tasks"),
        ("GET", "/api/{user_id}/tasks/{task_id}"),
        ("PUT", "/api/{user_id}/tasks/{task_id}"),
        ("DELETE", "/api/{user_id}/tasks/{task_id}"),
        ("PATCH", "/api/{user_id}/tasks/{task_id}/complete"),
        ("PATCH", "/api/{user_id}/tasks"),
        ("DELETE", "/api/{user_id}/tasks"),
        ("GET", "/api/{user_id}/tasks/events"),
    }
    assert len({op["operationId"] for op in _operations(document)}) == 9
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for ref in _refs(document):
        name = ref.removeprefix("#/components/schemas/")
        assert name in document["components"]["schemas"], ref
    task_schema = document["components"]["schemas"]["Task"]
    assert set(task_schema["required"]) == set(task_schema["properties"]) == doors.REST_TASK_FIELDS
    # Every documented operation exists: without a token each is a 401, never a 404 or 405.
    for method, path in operations:
        concrete = path.replace("{user_id}", alice.user_id).replace("{task_id}", "1")
        answer = await http.request(method, concrete)
        assert answer.status_code == 401, (method, path)
        assert str(answer.status_code) in _operation(document, path, method)["responses"]


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                yield operation


def _operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    return document["paths"][path][method.lower()]


def _refs(value: object) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from _refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _refs(item)


async def test_openapi_describes_the_list_parameters(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/openapi.json")).json()
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]
    names = {p["name"] for p in listing["parameters"]}
    assert names == {
        "completed",
        "overdue",
        "due_before",
        "due_after",
        "q",
        "sort",
        "limit",
        "offset",
    }
    assert "X-Total-Count" in listing["responses"]["200"]["headers"]


TITLES = [
    "a",
    " a ",
    "a" * 255,
    # Too long only before trimming: valid (found by schemathesis).
    " " + "a" * 255,
    "\t" + "a" * 255 + "\n",
    "a" * 256,
    " " + "a" * 256 + " ",
    "",
    "   ",
    "\x1c",
    "\x1ca\x1c",
    # Whitespace in Python's sense but not in ECMAScript's `\s` (found by schemathesis).
    "\x0c\x0b\t \r\x85\x0c",
    "\ufeffa",
    "a\x00b",
]


@pytest.mark.parametrize("title", TITLES, ids=[repr(t[:8]) + f"/{len(t)}" for t in TITLES])
async def test_the_documented_title_pattern_is_what_the_api_accepts(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], title: str
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    schema = document["components"]["schemas"]["TaskCreate"]["properties"]["title"]
    documented_valid = re.search(schema["pattern"], title) is not None

    response = await client.post("/api/alice/tasks", json={"title": title}, headers=auth("alice"))

    assert response.status_code == (201 if documented_valid else 422), response.text
    if documented_valid:
        assert response.json()["title"] == title.strip()


DUE_DATES = [
    "2026-12-31",
    "2026-12-31T17:00",
    "2026-12-31T17:00:00",
    "2026-12-31T17:00:00Z",
    "2026-12-31t17:00:00.123z",
    "2026-12-31 18:00:00+01:00",
    "2026-12-31T12:00:00-0500",
    "2024-02-29",
    "0002-01-01T00:00:00+23:59",
    "9998-12-31T23:59:59.999999-23:59",
    # PostgreSQL would store these two instants as -infinity and infinity (found by schemathesis).
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-02-29",
    "2026-12-31T24:00:00Z",
    "2026-12-31T17",
    "2026-W53-4",
    "20261231",
    "2026-12-31T17:00:00+01",
    "next tuesday",
]


@pytest.mark.parametrize("due", DUE_DATES)
async def test_the_documented_due_dates_are_what_the_api_accepts(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], due: str
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
    [due_before] = [p["schema"] for p in listing if p["name"] == "due_before"]
    body_schema = {"$ref": "#/components/schemas/TaskCreate", **document}
    documented_valid = jsonschema_rs.is_valid(due_before, due)
    assert jsonschema_rs.is_valid(body_schema, {"title": "x", "due_date": due}) == documented_valid

    listed = await client.get("/api/alice/tasks", params={"due_before": due}, headers=auth("alice"))
    created = await client.post(
        "/api/alice/tasks", json={"title": "x", "due_date": due}, headers=auth("alice")
    )

    assert listed.status_code == (200 if documented_valid else 422), listed.text
    assert created.status_code == (201 if documented_valid else 422), created.text
    if documented_valid:
        written = datetime.fromisoformat(due.upper())
        instant = written if written.tzinfo else written.replace(tzinfo=UTC)
        assert datetime.fromisoformat(created.json()["due_date"]) == instant
