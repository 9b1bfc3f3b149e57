"""Security headers on every kind of response, and a GraphiQL policy that admits its own assets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.guards import graphiql_policy
from tests.support.app import app_client, make_settings
from tests.support.responses import assert_no_internals

HARDENING = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@pytest.fixture
async def http(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(database_url, MAX_BODY_BYTES="1000")) as client:
        yield client


def assert_hardened(response: httpx.Response) -> None:
    for name, value in HARDENING.items():
        assert response.headers[name] == value, (name, response.status_code)
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert_no_internals(response.text)


async def test_every_response_is_hardened(
    http: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    me = auth("hal")
    json = {**me, "Content-Type": "application/json"}
    responses = [
        await http.get("/healthz"),
        await http.get("/api/openapi.json"),
        await http.get("/api/hal/tasks", headers=me),
        await http.get("/api/hal/tasks"),
        await http.get("/api/someone-else/tasks", headers=me),
        await http.get("/api/hal/tasks/123456", headers=me),
        await http.post("/api/hal/tasks", content=b"{", headers=json),
        await http.post("/api/hal/tasks", content=b"x" * 2000, headers=json),
        await http.post(
            "/api/hal/tasks", content=b"x", headers={**me, "Content-Type": "text/plain"}
        ),
        # The collection takes GET, POST, PATCH and DELETE: PUT is a 405.
        await http.put("/api/hal/tasks", headers=me),
        await http.get("/no/such/route"),
        await http.post("/graphql", json={"query": "{ viewer { id } }"}, headers=me),
        await http.post("/graphql", json={"query": "{ viewer { id } }"}),
        await http.post("/graphql", json={"query": "{"}, headers=me),
        await http.post("/graphql", content=b"x" * 2000, headers=json),
    ]
    assert {r.status_code for r in responses} >= {200, 401, 403, 404, 405, 413, 415, 422, 400}
    for response in responses:
        assert_hardened(response)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")
        assert "unsafe-inline" not in response.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("assets_url", "origin"),
    [
        (None, "https://cdn.jsdelivr.net"),
        ("http://127.0.0.1:9999/assets", "http://127.0.0.1:9999"),
    ],
)
async def test_graphiql_page_gets_a_policy_that_loads_its_assets(
    database_url: str, assets_url: str | None, origin: str
) -> None:
    overrides = {"GRAPHIQL_ASSETS_URL": assets_url} if assets_url else {}
    async with app_client(make_settings(database_url, **overrides)) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert_hardened(page)
    policy = page.headers["content-security-policy"]
    assert policy == graphiql_policy([origin])
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    asset_urls = re.findall(r'(?:src|href)="(https?://[^"]+)"', page.text)
    assert asset_urls, "the page loads its scripts from the assets URL"
    for url in asset_urls:
        assert url.startswith(origin + "/")
    # Its bootstrap code is inline, and it queries this server.
    assert "<script>" in page.text
    assert "'unsafe-inline'" in directives["script-src"]
    assert directives["connect-src"] == "'self'"
