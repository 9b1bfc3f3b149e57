"""Each REST operation answers with exactly the statuses /api/openapi.json lists for it, in the
documented shapes: every listed status is provoked for real, and every provocation is listed.

Over a real uvicorn on 127.0.0.1, against the session's PostgreSQL (and, for 503, none at all).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema_rs
import pytest

from tests.conftest import JWT_SECRET, app_client, hs256_token, make_settings
from tests.support.live import live_server
from tests.support.servers import free_port

MAX_BODY_BYTES = 256
# Requests a fresh user may make before the rate limit answers; each provocation needs two.
BURST = 3
SETTINGS = {
    "MAX_BODY_BYTES": str(MAX_BODY_BYTES),
    "RATE_LIMIT_PER_MINUTE": "1",
    "RATE_LIMIT_BURST": str(BURST),
}
OPERATIONS = ("listTasks", "createTask", "getTask", "updateTask", "deleteTask", "toggleTask")
# Walked by tests/system/test_live_rest.py, as its response never ends.
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
            content = b'{"title": "probe"}' if content is None else content
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
        _otherwise_success(lambda op: op.takes("limit"), 422),
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
        assert header["required"], name
        value = response.headers.get(name)
        assert value is not None, f"{response.status_code} without its {name} header"
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
