"""Limits on GraphQL documents and the introspection switch, each refused with a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from graphql import get_introspection_query

from tests.support.app import app_client, make_settings
from tests.support.graphql import graphql

Auth = Callable[[str], dict[str, str]]


async def refusal(http: httpx.AsyncClient, query: str, headers: dict[str, str]) -> str:
    """The message of a document refused as invalid (400, no data)."""
    response = await http.post("/graphql", json={"query": query}, headers=headers)
    body = response.json()
    assert response.status_code == 400, body
    assert "data" not in body
    assert {error["extensions"]["code"] for error in body["errors"]} == {
        "GRAPHQL_VALIDATION_FAILED"
    }
    return str(body["errors"][0]["message"])


@pytest.fixture
async def strict(clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        clean_database,
        GRAPHQL_MAX_DEPTH="2",
        GRAPHQL_MAX_ALIASES="2",
        GRAPHQL_MAX_TOKENS="40",
        GRAPHQL_MAX_BYTES="300",
    )
    async with app_client(settings) as http:
        yield http


async def test_depth_limit(strict: httpx.AsyncClient, auth: Auth) -> None:
    await graphql(strict, "{ tasks { pageInfo { hasNextPage } } }", headers=auth("a"))
    message = await refusal(strict, "{ tasks { edges { node { id } } } }", auth("a"))
    assert message == "'anonymous' exceeds maximum operation depth of 2"


async def test_alias_limit(strict: httpx.AsyncClient, auth: Auth) -> None:
    await graphql(strict, "{ a: viewer { id } b: viewer { id } }", headers=auth("a"))
    message = await refusal(
        strict, "{ a: viewer { id } b: viewer { id } c: viewer { id } }", auth("a")
    )
    assert message == "3 aliases found. Allowed: 2"


async def test_token_limit(strict: httpx.AsyncClient, auth: Auth) -> None:
    fields = " ".join(["id"] * 40)
    message = await refusal(strict, f"{{ viewer {{ {fields} }} }}", auth("a"))
    assert message == "The document has more than 40 tokens"


async def test_size_limit_is_checked_before_parsing(strict: httpx.AsyncClient, auth: Auth) -> None:
    # Comments are not tokens, and this is not even valid GraphQL: only its size is judged.
    query = "{ viewer { id " + "#" * 300
    message = await refusal(strict, query, auth("a"))
    assert message == f"The document is {len(query)} bytes; at most 300 are allowed"


async def test_the_defaults_allow_graphiqls_introspection_and_fifty_aliases(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    introspection = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    body = await graphql(client, introspection)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"
    aliases = " ".join(f'a{n}: task(id: "{n + 1}") {{ id }}' for n in range(100))
    await graphql(client, f"{{ {aliases} }}", headers=auth("a"))


async def test_the_defaults_refuse_what_exceeds_them(client: httpx.AsyncClient, auth: Auth) -> None:
    aliases = " ".join(f"a{n}: viewer {{ id }}" for n in range(101))
    assert await refusal(client, f"{{ {aliases} }}", auth("a")) == "101 aliases found. Allowed: 100"
    padding = "#" * 100_000
    message = await refusal(client, f"{{ viewer {{ id }} }}\n{padding}", auth("a"))
    assert message.endswith("at most 100000 are allowed")


@pytest.fixture
async def closed(clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(make_settings(clean_database, GRAPHQL_INTROSPECTION="false")) as http:
        yield http


@pytest.mark.parametrize(
    "query", ["{ __schema { types { name } } }", '{ __type(name: "Task") { name } }']
)
async def test_introspection_can_be_switched_off(
    closed: httpx.AsyncClient, auth: Auth, query: str
) -> None:
    assert "introspection" in await refusal(closed, query, auth("a"))
    await graphql(closed, "{ viewer { __typename } }", headers=auth("a"))


SUGGESTING = [
    ("{ taks { totalCount } }", None),
    (
        "query($o: TaskOrder) { tasks(orderBy: $o) { totalCount } }",
        {"o": {"field": "CREATED"}},
    ),
]


@pytest.mark.parametrize(("query", "variables"), SUGGESTING)
async def test_no_suggestions_without_introspection(
    client: httpx.AsyncClient,
    closed: httpx.AsyncClient,
    auth: Auth,
    query: str,
    variables: dict[str, object] | None,
) -> None:
    body = {"query": query, "variables": variables}
    suggested = await client.post("/graphql", json=body, headers=auth("a"))
    assert "Did you mean" in suggested.text
    hidden = await closed.post("/graphql", json=body, headers=auth("a"))
    assert hidden.status_code == 400
    assert "Did you mean" not in hidden.text
