"""GraphQL over HTTP through the real app: media types, status codes, methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from tests.support.app import app_client, make_settings
from tests.support.doors import Caller
from tests.support.graphql import GRAPHQL_RESPONSE, post_graphql

Auth = Callable[[str], dict[str, str]]
JSON = "application/json"
TASKS = "{ tasks { totalCount } }"


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, GRAPHQL_RESPONSE),
        ("", GRAPHQL_RESPONSE),
        ("*/*", GRAPHQL_RESPONSE),
        ("application/*", GRAPHQL_RESPONSE),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (JSON, JSON),
        ("application/json; charset=utf-8", JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        (f"{JSON}, {GRAPHQL_RESPONSE};q=0.9", JSON),
        (f"{GRAPHQL_RESPONSE};q=0, */*;q=0.1", JSON),
        ("text/html, */*;q=0.8", GRAPHQL_RESPONSE),
    ],
)
async def test_content_negotiation(
    client: httpx.AsyncClient, auth: Auth, accept: str | None, expected: str
) -> None:
    headers = auth("alice") | ({} if accept is None else {"Accept": accept})
    response = await client.post("/graphql", json={"query": TASKS}, headers=headers)
    assert response.status_code == 200
    assert media_type(response) == expected
    assert response.json() == {"data": {"tasks": {"totalCount": 0}}}


@pytest.mark.parametrize("accept", ["application/xml", "text/html", f"{JSON};q=0"])
async def test_nothing_acceptable_is_406(
    client: httpx.AsyncClient, auth: Auth, accept: str
) -> None:
    response = await client.post(
        "/graphql", json={"query": TASKS}, headers=auth("alice") | {"Accept": accept}
    )
    assert response.status_code == 406


async def request(
    client: httpx.AsyncClient,
    *,
    method: str = "POST",
    body: Any = None,
    content: bytes | None = None,
    content_type: str | None = JSON,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    all_headers = dict(headers or {})
    if content_type is not None:
        all_headers["Content-Type"] = content_type
    if body is not None:
        content = orjson.dumps(body)
    return await client.request(
        method, "/graphql", content=content, params=params, headers=all_headers
    )


@pytest.mark.parametrize(
    ("arguments", "status", "code"),
    [
        ({"content": b"{not json"}, 400, "BAD_REQUEST"),
        ({"body": [{"query": TASKS}]}, 400, "BAD_REQUEST"),
        ({"body": {"variables": {}}}, 400, "BAD_REQUEST"),
        ({"body": {"query": 1}}, 400, "BAD_REQUEST"),
        ({"body": {"query": TASKS, "variables": "{}"}}, 400, "BAD_REQUEST"),
        ({"body": {"query": TASKS, "extensions": "{}"}}, 400, "BAD_REQUEST"),
        ({"body": {"query": TASKS, "extensions": [1]}}, 400, "BAD_REQUEST"),
        (
            {
                "method": "GET",
                "params": {"query": TASKS, "extensions": "[1]"},
                "content_type": None,
            },
            400,
            "BAD_REQUEST",
        ),
        ({"body": {"query": "{ tasks {"}}, 400, "GRAPHQL_PARSE_FAILED"),
        ({"body": {"query": "query A { viewer { id } }", "operationName": "B"}}, 400, None),
        ({"body": {"query": "{ nope }"}}, 400, "GRAPHQL_VALIDATION_FAILED"),
        (
            {
                "body": {
                    "query": "query($n: Int) { tasks(first: $n) { totalCount } }",
                    "variables": {"n": "many"},
                }
            },
            400,
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            {"content": b"query=%7B%7D", "content_type": "application/x-www-form-urlencoded"},
            415,
            None,
        ),
        ({"content": b"--x\r\n", "content_type": "multipart/form-data; boundary=x"}, 415, None),
        ({"content": TASKS.encode(), "content_type": "text/plain"}, 415, None),
        ({"content": b'{"query": "{ viewer { id } }"}', "content_type": None}, 415, None),
    ],
)
async def test_request_errors_have_their_status_and_no_data(
    client: httpx.AsyncClient, auth: Auth, arguments: dict[str, Any], status: int, code: str | None
) -> None:
    response = await request(client, headers=auth("alice"), **arguments)
    assert response.status_code == status, response.text
    assert media_type(response) == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    if code is not None:
        assert body["errors"][0]["extensions"]["code"] == code


async def test_request_errors_are_200_for_legacy_json_clients(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await request(
        client, body={"query": "{ nope }"}, headers=auth("alice") | {"Accept": JSON}
    )
    assert (response.status_code, media_type(response)) == (200, JSON)
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


async def test_unknown_body_keys_are_ignored(client: httpx.AsyncClient, auth: Auth) -> None:
    # persistedQuery is a known extension now (tests/schema/test_persisted.py); others pass.
    body = {"query": TASKS, "extensions": {"tracing": {}}, "id": "x", "extra": [1]}
    response = await request(client, body=body, headers=auth("alice"))
    assert response.status_code == 200
    assert response.json() == {"data": {"tasks": {"totalCount": 0}}}


async def test_queries_over_get_with_variables_and_operation_name(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    query = "query Count($n: Int) { tasks(first: $n) { totalCount } } query Who { viewer { id } }"
    response = await client.get(
        "/graphql",
        params={
            "query": query,
            "variables": '{"n": 3}',
            "operationName": "Who",
            "extensions": '{"clientLibrary": {"name": "test"}}',
        },
        headers=auth("alice"),
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"viewer": {"id": "alice"}}}


async def test_mutations_over_get_are_405_allowing_post(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { createTask(input: {title: "x"}) { task { id } } }'},
        headers=auth("alice"),
    )
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    assert "data" not in response.json()


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "PROPFIND"])
async def test_other_methods_are_405_allowing_get_and_post(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, "/graphql")
    assert (response.status_code, response.headers["allow"]) == (405, "GET, POST")


async def test_get_without_query_is_400_or_graphiql_for_browsers(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/graphql")).status_code == 400
    page = await client.get("/graphql", headers={"Accept": "text/html,*/*;q=0.8"})
    assert (page.status_code, media_type(page)) == (200, "text/html")


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["missing", "invalid"]
)
async def test_missing_or_invalid_credentials_are_401(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await request(client, body={"query": TASKS}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_introspection_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await request(client, body={"query": "{ __schema { queryType { name } } }"})
    assert response.status_code == 200
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_database_unavailable_is_503(auth: Auth) -> None:
    settings = make_settings("postgresql://postgres@127.0.0.1:1/none", DB_CONNECT_TIMEOUT="1")
    async with app_client(settings) as http:
        response = await request(http, body={"query": TASKS}, headers=auth("alice"))
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("{ tasks( ", 400, "GRAPHQL_PARSE_FAILED"),
        ("mutation {", 400, "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", 400, "GRAPHQL_VALIDATION_FAILED"),
        ("{ tasks { nodes { owner_id } } }", 400, "GRAPHQL_VALIDATION_FAILED"),
        ('{ task(id: "1") }', 400, "GRAPHQL_VALIDATION_FAILED"),
        (
            "mutation { createTask(input: {title: 5}) { task { id } } }",
            400,
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ],
)
async def test_graphql_request_errors(
    http: httpx.AsyncClient, alice: Caller, query: str, status: int, code: str
) -> None:
    response = await post_graphql(http, query, headers=alice.headers)

    assert response.status_code == status
    assert response.headers["content-type"] == GRAPHQL_RESPONSE
    body = response.json()
    assert "data" not in body
    assert [e["extensions"]["code"] for e in body["errors"]] == [code] * len(body["errors"])
    assert (await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)).json() == []


@pytest.mark.asyncio(loop_scope="module")
async def test_graphql_request_errors_are_200_for_plain_json_clients(
    http: httpx.AsyncClient, alice: Caller
) -> None:
    response = await post_graphql(
        http, "{ nope }", headers={**alice.headers, "Accept": "application/json"}
    )

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.asyncio(loop_scope="module")
async def test_graphql_queries_work_over_get(http: httpx.AsyncClient, alice: Caller) -> None:
    response = await http.get(
        "/graphql",
        params={
            "query": "query($n: Int) { viewer { id } tasks(first: $n) { totalCount } }",
            "variables": '{"n": 1}',
        },
        headers=alice.headers,
    )

    assert response.status_code == 200
    assert response.json() == {
        "data": {"viewer": {"id": alice.user_id}, "tasks": {"totalCount": 0}}
    }


@pytest.mark.asyncio(loop_scope="module")
async def test_graphql_mutations_over_get_are_405(http: httpx.AsyncClient, alice: Caller) -> None:
    response = await http.get(
        "/graphql",
        params={"query": 'mutation { createTask(input: {title: "x"}) { task { id } } }'},
        headers=alice.headers,
    )

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert (await http.get(f"/api/{alice.user_id}/tasks", headers=alice.headers)).json() == []


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (None, GRAPHQL_RESPONSE),
        ("*/*", GRAPHQL_RESPONSE),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        ("application/json", "application/json"),
    ],
)
async def test_graphql_response_media_type(
    http: httpx.AsyncClient, alice: Caller, accept: str | None, media_type: str
) -> None:
    headers = dict(alice.headers)
    if accept is not None:
        headers["Accept"] = accept
    request = http.build_request(
        "POST", "/graphql", json={"query": "{ viewer { id } }"}, headers=headers
    )
    if accept is None:
        del request.headers["Accept"]

    response = await http.send(request)

    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.json() == {"data": {"viewer": {"id": alice.user_id}}}


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"query=%7Bviewer%7Bid%7D%7D", "application/x-www-form-urlencoded", 415),
        (b"{ viewer { id } }", "text/plain", 415),
        (b"{not json", "application/json", 400),
        (b'[{"query": "{ viewer { id } }"}]', "application/json", 400),
        (b'{"query": 5}', "application/json", 400),
        (b'{"query": "{ viewer { id } }", "variables": [1]}', "application/json", 400),
    ],
)
async def test_graphql_malformed_requests(
    http: httpx.AsyncClient, alice: Caller, content: bytes, content_type: str, status: int
) -> None:
    response = await http.post(
        "/graphql", content=content, headers={**alice.headers, "Content-Type": content_type}
    )

    assert response.status_code == status
    assert response.json()["errors"][0]["message"]
