"""CORS for the headers real clients send: tracing, Sentry, Apollo's client awareness and
idempotency keys pass the preflight, a setting adds more, the page can read what it needs,
and an origin that is not allowed stays blocked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from server.cors import DEFAULT_ALLOW_HEADERS, EXPOSE_HEADERS
from server.settings import ConfigError
from tests.support.app import app_client, make_settings

APP = "https://app.example"
CLIENT_HEADERS = (
    "traceparent",
    "tracestate",
    "baggage",
    "sentry-trace",
    "apollographql-client-name",
    "apollographql-client-version",
    "idempotency-key",
    "authorization",
    "content-type",
    "if-match",
    "x-request-id",
)


@pytest.fixture
async def cors_client(clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(clean_database, CORS_ORIGINS=APP, CORS_ALLOW_HEADERS="X-Tenant")
    async with app_client(settings) as http:
        yield http


@pytest.mark.parametrize("path", ["/graphql", "/api/alice/tasks"])
async def test_the_preflight_allows_what_tracing_and_graphql_clients_send(
    cors_client: httpx.AsyncClient, path: str
) -> None:
    response = await cors_client.options(
        path,
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": ",".join(CLIENT_HEADERS),
        },
    )

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == APP
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert set(CLIENT_HEADERS) <= allowed
    assert "PATCH" in response.headers["access-control-allow-methods"]


async def test_a_setting_adds_headers_and_others_stay_refused(
    cors_client: httpx.AsyncClient,
) -> None:
    added = await cors_client.options(
        "/graphql",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-tenant, traceparent",
        },
    )
    unknown = await cors_client.options(
        "/graphql",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-something-else",
        },
    )

    assert added.status_code == 200
    assert unknown.status_code == 400


async def test_an_origin_not_allowed_stays_blocked(cors_client: httpx.AsyncClient) -> None:
    refused = await cors_client.options(
        "/graphql",
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "traceparent",
        },
    )
    simple = await cors_client.get("/healthz", headers={"Origin": "https://evil.example"})

    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in simple.headers


async def test_a_page_can_read_the_request_id_and_what_else_it_needs(
    cors_client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]]
) -> None:
    response = await cors_client.get(
        "/api/alice/tasks", headers={"Origin": APP, **auth("alice"), "X-Request-ID": "page-1"}
    )

    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"x-request-id", "etag", "location", "x-total-count", "retry-after"} <= exposed
    assert "idempotent-replayed" in exposed
    assert response.headers["x-request-id"] == "page-1"
    # Credentials (cookies) stay out: tokens travel in a header.
    assert "access-control-allow-credentials" not in response.headers


def test_the_defaults_are_exactly_the_documented_ones() -> None:
    assert {h.lower() for h in DEFAULT_ALLOW_HEADERS} == set(CLIENT_HEADERS)
    assert "X-Request-ID" in EXPOSE_HEADERS


@pytest.mark.parametrize("value", ["*", "X-Ok, bad header", "X-Ok,(comment)"])
def test_a_header_list_that_is_not_names_is_refused_at_start(value: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ALLOW_HEADERS must list header names"):
        make_settings("postgresql://nowhere/x", CORS_ALLOW_HEADERS=value)


def test_the_setting_adds_to_the_defaults_once() -> None:
    settings = make_settings(
        "postgresql://nowhere/x", CORS_ALLOW_HEADERS="X-Tenant, traceparent, x-tenant"
    )
    assert settings.cors_allow_headers == (*DEFAULT_ALLOW_HEADERS, "X-Tenant")
