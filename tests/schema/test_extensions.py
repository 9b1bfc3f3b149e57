"""The authentication gate: data needs a valid token; introspection needs none, a bad one is 401."""

from __future__ import annotations

import httpx
import pytest

from tests.support.graphql import post_graphql
from tests.support.tokens import bearer

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_graphql_introspection_works_without_a_token(http: httpx.AsyncClient) -> None:
    response = await post_graphql(
        http, "{ __schema { queryType { name } mutationType { name } } __typename }"
    )

    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "__schema": {"queryType": {"name": "Query"}, "mutationType": {"name": "Mutation"}},
            "__typename": "Query",
        }
    }


@pytest.mark.parametrize(
    "query",
    [
        "{ tasks { totalCount } }",
        "{ viewer { id } }",
        "{ __typename task(id: 1) { id } }",
        "{ __t: tasks { totalCount } }",
        "{ ... on Query { tasks { totalCount } } }",
        "query { ...__Sneaky } fragment __Sneaky on Query { tasks { totalCount } }",
        'mutation { createTask(input: {title: "x"}) { task { id } } }',
    ],
)
async def test_graphql_data_without_a_token_is_401(http: httpx.AsyncClient, query: str) -> None:
    response = await post_graphql(http, query)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    body = response.json()
    assert body.get("data") is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"]


async def test_graphql_an_invalid_token_is_401_even_for_introspection(
    http: httpx.AsyncClient,
) -> None:
    response = await post_graphql(http, "{ __typename }", headers=bearer("garbage"))

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
