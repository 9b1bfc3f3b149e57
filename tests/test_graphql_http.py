"""GraphQL over HTTP through the real app: media types, status codes, methods, CORS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import orjson
import pytest

import main
from tests.conftest import app_client, make_settings
from tests.support.graphql import GRAPHQL_RESPONSE

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
    body = {"query": TASKS, "extensions": {"persistedQuery": {}}, "id": "x", "extra": [1]}
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
            "extensions": '{"persistedQuery": {}}',
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


@pytest.fixture
async def cors_client(clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(clean_database, CORS_ORIGINS="https://app.example, https://b.example")
    async with app_client(settings) as http:
        yield http


async def test_cors_preflight_allows_configured_origins_only(
    cors_client: httpx.AsyncClient,
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    allowed = await cors_client.options(
        "/graphql", headers=preflight | {"Origin": "https://b.example"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://b.example"
    refused = await cors_client.options(
        "/graphql", headers=preflight | {"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_responses_expose_headers_to_the_frontend(
    cors_client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await cors_client.get(
        "/api/alice/tasks", headers=auth("alice") | {"Origin": "https://app.example"}
    )
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "X-Total-Count" in response.headers["access-control-expose-headers"]


async def test_no_cors_headers_without_cors_origins(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/graphql",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_setting_is_a_comma_separated_list(clean_database: str) -> None:
    settings: main.Settings = make_settings(clean_database, CORS_ORIGINS=" https://a.example ,,")
    assert settings.cors_origins == ("https://a.example",)
