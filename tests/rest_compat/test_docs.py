"""rest_compat/docs.py: Swagger UI at /api/docs, assets from GraphiQL's base, a dev token."""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
import jwt
import pytest

import main
from rest_compat.docs import TOKEN_META
from tests.support.app import BROWSER, app_client, make_settings


async def test_api_docs_is_swagger_ui_for_the_openapi_document(clean_database: str) -> None:
    settings = make_settings(clean_database, GRAPHIQL_ASSETS_URL="http://assets.test")
    async with app_client(settings) as client:
        page = await client.get("/api/docs")
        document = (await client.get("/api/openapi.json")).json()
    assert page.status_code == 200
    assert re.search(
        r'src="http://assets.test/swagger-ui-dist@[0-9.]+/swagger-ui-bundle.js"', page.text
    )
    assert 'url: "/api/openapi.json"' in page.text
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]


def development_token_in(page: str) -> str | None:
    match = re.search(rf'<meta name="{TOKEN_META}" content="([^"]*)">', page)
    return None if match is None else html.unescape(match[1])


async def test_development_api_docs_is_preauthorised_like_graphiql(tmp_path: Path) -> None:
    settings = main.read_settings({"DATA_DIR": str(tmp_path)})
    assert settings.auth.secret is not None
    # No lifespan: the pages are served before any database is needed.
    transport = httpx.ASGITransport(app=main.create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
        page = await client.get("/api/docs")
        document = (await client.get("/api/openapi.json")).json()
    token = development_token_in(page.text)
    assert token is not None
    claims = jwt.decode(token, settings.auth.secret, algorithms=["HS256"])
    assert claims["sub"] == main.DEV_USER_ID
    # Swagger UI is told to use it for the scheme the document declares.
    [scheme] = document["components"]["securitySchemes"]
    assert f'preauthorizeApiKey("{scheme}", token)' in page.text


@pytest.mark.parametrize(
    "environment",
    [
        # Production: DATABASE_URL set, tokens come from the auth service.
        {"DATABASE_URL": "postgresql://db.example/taskql", "JWT_SECRET": "s" * 32},
        # Embedded, but verifying tokens from a JWKS: there is no secret to sign one with.
        {"JWT_JWKS_URL": "https://auth.example/api/auth/jwks"},
    ],
    ids=["production", "jwks"],
)
async def test_api_docs_carries_no_token_without_a_development_secret(
    tmp_path: Path, environment: dict[str, str]
) -> None:
    settings = main.read_settings({"DATA_DIR": str(tmp_path), **environment})
    transport = httpx.ASGITransport(app=main.create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://prod") as client:
        page = await client.get("/api/docs")
        graphiql = await client.get("/graphql", headers=BROWSER)
    assert page.status_code == graphiql.status_code == 200
    assert development_token_in(page.text) is None
    assert f'<meta name="{TOKEN_META}"' not in page.text
    assert "eyJ" not in page.text
    assert "Bearer" not in graphiql.text
