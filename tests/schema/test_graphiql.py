"""schema/graphiql.py: GraphiQL at GET /graphql, its assets from the configured base URL."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import jwt
import pytest

import main
from schema.graphiql import GRAPHIQL_PACKAGES
from tests.support.app import BROWSER, app_client, make_settings


async def test_browsers_get_graphiql_with_assets_from_the_configured_base(
    clean_database: str,
) -> None:
    settings = make_settings(clean_database, GRAPHIQL_ASSETS_URL="http://assets.test/npm/")
    async with app_client(settings) as client:
        response = await client.get("/graphql", headers=BROWSER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    version = GRAPHIQL_PACKAGES["graphiql"]
    assert f'src="http://assets.test/npm/graphiql@{version}/graphiql.min.js"' in response.text
    assert "defaultEditorToolsVisibility" in response.text
    # Production: nothing prefilled, no token anywhere in the page.
    assert '"headers": null' in response.text
    assert "Bearer" not in response.text


async def test_graphiql_can_be_turned_off(clean_database: str) -> None:
    async with app_client(make_settings(clean_database, GRAPHIQL="false")) as client:
        response = await client.get("/graphql", headers=BROWSER)
    # Without GraphiQL nothing here speaks HTML: a browser's Accept gets 406 Not Acceptable.
    assert response.status_code == 406
    assert "<html" not in response.text


async def test_development_graphiql_prefills_a_working_token(tmp_path: Path) -> None:
    settings = main.read_settings({"DATA_DIR": str(tmp_path)})
    assert settings.auth.secret is not None
    # No lifespan: the page is served before any database is needed.
    transport = httpx.ASGITransport(app=main.create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
        response = await client.get("/graphql", headers=BROWSER)
    match = re.search(r"const config = (.*);", response.text)
    assert match is not None
    config = json.loads(match[1])
    headers = json.loads(config["headers"])
    token = headers["Authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, settings.auth.secret, algorithms=["HS256"])
    assert claims["sub"] == main.DEV_USER_ID


@pytest.mark.asyncio(loop_scope="module")
async def test_graphql_serves_graphiql_to_browsers(http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "graphiql" in response.text.lower()
