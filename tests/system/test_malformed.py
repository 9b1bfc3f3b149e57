"""Malformed and hostile requests through both doors: always a clear 4xx, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from tests.support.app import app_client, make_settings
from tests.support.responses import assert_no_internals

USER = "mallory"
MiB = 1024 * 1024

HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"title=x"),
    ("truncated", b'{"title": "x"'),
    ("invalid utf-8", b'{"title": "\xff\xfe\xfd"}'),
    ("overlong utf-8", b'{"title": "\xc0\xaf"}'),
    ("lone surrogate", b'{"title": "\\ud800"}'),
    ("lone low surrogate", b'{"title": "x\\udfff"}'),
    ("nul", b'{"title": "a\\u0000b"}'),
    ("nul in description", b'{"title": "a", "description": "\\u0000"}'),
    ("nul in due_date", b'{"title": "a", "due_date": "2026-01-01\\u0000"}'),
    ("number title", b'{"title": 5}'),
    ("object title", b'{"title": {"$gt": ""}}'),
    ("array title", b'{"title": ["x"]}'),
    ("string completed", b'{"title": "x", "completed": "true"}'),
    ("number due_date", b'{"title": "x", "due_date": 1700000000}'),
    ("due_date out of range", b'{"title": "x", "due_date": "9999-12-31T23:59:59-14:00"}'),
    ("array body", b'[{"title": "x"}]'),
    ("string body", b'"title"'),
    ("null body", b"null"),
    ("10,000-char title", b'{"title": "' + b"x" * 10_000 + b'"}'),
    ("100,001-char description", b'{"title": "x", "description": "' + b"y" * 100_001 + b'"}'),
    ("huge number", b'{"title": "x", "completed": 1e400}'),
    ("huge integer", b'{"title": "x", "completed": ' + b"9" * 5000 + b"}"),
    ("100k nested arrays", b"[" * 100_000 + b"]" * 100_000),
    ("100k nested objects", b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("nested in a field", b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
]


@pytest.fixture
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database_url)) as client:
        yield client


def assert_clean_4xx(response: httpx.Response, *statuses: int) -> None:
    assert response.status_code in (statuses or (400, 422)), response.text[:300]
    assert response.headers["content-type"].startswith("application/")
    assert_no_internals(response.text)


@pytest.mark.parametrize(("case", "body"), HOSTILE_BODIES, ids=[c for c, _ in HOSTILE_BODIES])
async def test_rest_hostile_bodies(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], case: str, body: bytes
) -> None:
    headers = {**auth(USER), "Content-Type": "application/json"}
    task = await http.post(f"/api/{USER}/tasks", json={"title": "target"}, headers=auth(USER))
    assert task.status_code == 201
    for method, path in [
        ("POST", f"/api/{USER}/tasks"),
        ("PUT", f"/api/{USER}/tasks/{task.json()['id']}"),
    ]:
        assert_clean_4xx(await http.request(method, path, content=body, headers=headers), 422)


@pytest.mark.parametrize(("case", "body"), HOSTILE_BODIES, ids=[c for c, _ in HOSTILE_BODIES])
async def test_graphql_hostile_bodies(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], case: str, body: bytes
) -> None:
    headers = {**auth(USER), "Content-Type": "application/json"}
    assert_clean_4xx(await http.post("/graphql", content=body, headers=headers), 400)


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_wrong_content_type_is_415(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], content_type: str
) -> None:
    headers = {**auth(USER), "Content-Type": content_type}
    for path in (f"/api/{USER}/tasks", "/graphql"):
        response = await http.post(path, content=b'{"title": "x"}', headers=headers)
        assert_clean_4xx(response, 415)


@pytest.mark.parametrize(
    "task_id", ["abc", "-1", "0", "1.5", "1e3", "99999999999999999999999", "%00", "٣", "+1"]
)
async def test_rest_odd_task_ids(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], task_id: str
) -> None:
    response = await http.get(f"/api/{USER}/tasks/{task_id}", headers=auth(USER))
    assert_clean_4xx(response, 404, 422)


async def graphql(
    http: httpx.AsyncClient, headers: dict[str, str], query: str, **variables: object
) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


async def test_graphql_alias_bomb_is_refused_before_execution(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    # One alias over the limit: small enough to pass the size and token limits.
    query = "{ " + " ".join(f"a{i}: tasks {{ totalCount }}" for i in range(101)) + " }"
    response = await graphql(http, auth(USER), query)
    assert_clean_4xx(response, 400)
    assert "aliases" in response.json()["errors"][0]["message"]


async def test_graphql_deep_selection_is_refused(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    deepest_honest = "{ tasks { edges { node { id } } pageInfo { endCursor } } }"
    assert (await graphql(http, auth(USER), deepest_honest)).status_code == 200
    nested = "{ tasks { nodes " + "{ id " * 5000 + "}" * 5000 + " } }"
    assert_clean_4xx(await graphql(http, auth(USER), nested), 400)


@pytest.mark.parametrize(
    "query",
    [
        # a chain of fragments 2,000 deep
        "query { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(2000))
        + " fragment F2000 on Query { viewer { id } }",
        # a fragment cycle
        "query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        # an alias bomb hidden in a fragment
        "query { ...L } fragment L on Query { "
        + " ".join(f"t{i}: tasks {{ totalCount }}" for i in range(101))
        + " }",
        "{" * 100_000,
        "query " + "($v: Int)" * 1000 + " { viewer { id } }",
    ],
    ids=["fragment chain", "fragment cycle", "aliases in a fragment", "braces", "var lists"],
)
async def test_graphql_hostile_documents(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], query: str
) -> None:
    assert_clean_4xx(await graphql(http, auth(USER), query), 400)


async def test_graphql_batched_array_is_refused(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    batch = [{"query": "{ viewer { id } }"}] * 100
    assert_clean_4xx(await http.post("/graphql", json=batch, headers=auth(USER)), 400)


async def test_graphql_huge_variables_within_the_body_limit(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    create = "mutation($t: String!) { createTask(input: {title: $t}) { userErrors { code } } }"
    response = await graphql(http, auth(USER), create, t="x" * 900_000)
    assert response.status_code == 200
    assert response.json()["data"]["createTask"]["userErrors"] == [{"code": "STRING_TOO_LONG"}]
    nested = "query($v: [[Int]]) { viewer { id } }"
    assert_clean_4xx(await graphql(http, auth(USER), nested, v=[[1] * 1000] * 100), 400)


async def chunks(count: int, size: int, sent: list[int]) -> AsyncIterator[bytes]:
    for _ in range(count):
        sent.append(size)
        yield b" " * size


@pytest.mark.parametrize("path", [f"/api/{USER}/tasks", "/graphql"])
async def test_declared_oversized_body_is_413_before_reading(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], path: str
) -> None:
    sent: list[int] = []
    headers = {
        **auth(USER),
        "Content-Type": "application/json",
        "Content-Length": str(2 * MiB),
    }
    response = await http.post(path, content=chunks(32, 64 * 1024, sent), headers=headers)
    assert_clean_4xx(response, 413)
    assert sum(sent) <= 64 * 1024


@pytest.mark.parametrize("path", [f"/api/{USER}/tasks", "/graphql"])
async def test_streamed_oversized_body_is_413_once_over_the_limit(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], path: str
) -> None:
    sent: list[int] = []
    headers = {**auth(USER), "Content-Type": "application/json"}
    response = await http.post(path, content=chunks(64, 64 * 1024, sent), headers=headers)
    assert_clean_4xx(response, 413)
    assert MiB < sum(sent) < 2 * MiB


async def test_body_at_the_limit_is_read(
    database_url: str, auth: Callable[[str], dict[str, str]]
) -> None:
    async with app_client(make_settings(database_url, MAX_BODY_BYTES="100")) as small:
        body = b'{"title": "' + b"x" * 87 + b'"}'
        assert len(body) == 100
        headers = {**auth(USER), "Content-Type": "application/json"}
        ok = await small.post(f"/api/{USER}/tasks", content=body, headers=headers)
        assert ok.status_code == 201
        refused = await small.post(f"/api/{USER}/tasks", content=body + b" ", headers=headers)
        assert_clean_4xx(refused, 413)
        assert refused.json() == {"detail": "The request body is larger than 100 bytes"}
