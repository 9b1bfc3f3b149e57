"""Posting GraphQL operations to the app under test and seeding tasks straight into PostgreSQL."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import httpx

GRAPHQL_RESPONSE = "application/graphql-response+json"


async def graphql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The response body of a POSTed operation that is expected to succeed without errors."""
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    assert response.status_code == 200, body
    assert "errors" not in body, body["errors"]
    return body


async def post_graphql(
    http: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """The response to a POSTed operation, whatever it is."""
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=dict(headers or {})
    )


async def seed_tasks(
    database_url: str,
    owner_id: str,
    rows: Sequence[tuple[str, str, bool, datetime | None, datetime, datetime]],
) -> list[int]:
    """Insert (title, description, completed, due_date, created_at, updated_at) rows; their ids."""
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            """
            INSERT INTO tasks (owner_id, title, description, completed, due_date,
                               created_at, updated_at)
            SELECT $1, t.title, t.description, t.completed, t.due_date, t.created_at,
                   t.updated_at
            FROM unnest($2::text[], $3::text[], $4::bool[], $5::timestamptz[],
                        $6::timestamptz[], $7::timestamptz[])
                 WITH ORDINALITY
                 AS t(title, description, completed, due_date, created_at, updated_at, n)
            ORDER BY t.n
            RETURNING id
            """,
            owner_id,
            *(list(column) for column in zip(*rows, strict=True)),
        )
    finally:
        await conn.close()
    return [record["id"] for record in records]
