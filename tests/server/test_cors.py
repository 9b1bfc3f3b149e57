"""server/cors.py: cross-origin access for configured origins only, exposing what they read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

import main
from tests.support.app import app_client, make_settings

Auth = Callable[[str], dict[str, str]]


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
