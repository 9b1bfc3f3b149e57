"""The OpenAPI document and the API agree on which titles and due dates are valid, edge cases
included."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import jsonschema_rs
import pytest

TITLES = [
    "a",
    " a ",
    "a" * 255,
    # Too long only before trimming: valid (found by schemathesis).
    " " + "a" * 255,
    "\t" + "a" * 255 + "\n",
    "a" * 256,
    " " + "a" * 256 + " ",
    "",
    "   ",
    "\x1c",
    "\x1ca\x1c",
    # Whitespace in Python's sense but not in ECMAScript's `\s` (found by schemathesis).
    "\x0c\x0b\t \r\x85\x0c",
    "\ufeffa",
    "a\x00b",
]


@pytest.mark.parametrize("title", TITLES, ids=[repr(t[:8]) + f"/{len(t)}" for t in TITLES])
async def test_the_documented_title_pattern_is_what_the_api_accepts(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], title: str
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    schema = document["components"]["schemas"]["TaskCreate"]["properties"]["title"]
    documented_valid = re.search(schema["pattern"], title) is not None

    response = await client.post("/api/alice/tasks", json={"title": title}, headers=auth("alice"))

    assert response.status_code == (201 if documented_valid else 422), response.text
    if documented_valid:
        assert response.json()["title"] == title.strip()


DUE_DATES = [
    "2026-12-31",
    "2026-12-31T17:00",
    "2026-12-31T17:00:00",
    "2026-12-31T17:00:00Z",
    "2026-12-31t17:00:00.123z",
    "2026-12-31 18:00:00+01:00",
    "2026-12-31T12:00:00-0500",
    "2024-02-29",
    "0002-01-01T00:00:00+23:59",
    "9998-12-31T23:59:59.999999-23:59",
    # PostgreSQL would store these two instants as -infinity and infinity (found by schemathesis).
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-02-29",
    "2026-12-31T24:00:00Z",
    "2026-12-31T17",
    "2026-W53-4",
    "20261231",
    "2026-12-31T17:00:00+01",
    "next tuesday",
]


@pytest.mark.parametrize("due", DUE_DATES)
async def test_the_documented_due_dates_are_what_the_api_accepts(
    client: httpx.AsyncClient, auth: Callable[[str], dict[str, str]], due: str
) -> None:
    document = (await client.get("/api/openapi.json")).json()
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
    [due_before] = [p["schema"] for p in listing if p["name"] == "due_before"]
    body_schema = {"$ref": "#/components/schemas/TaskCreate", **document}
    documented_valid = jsonschema_rs.is_valid(due_before, due)
    assert jsonschema_rs.is_valid(body_schema, {"title": "x", "due_date": due}) == documented_valid

    listed = await client.get("/api/alice/tasks", params={"due_before": due}, headers=auth("alice"))
    created = await client.post(
        "/api/alice/tasks", json={"title": "x", "due_date": due}, headers=auth("alice")
    )

    assert listed.status_code == (200 if documented_valid else 422), listed.text
    assert created.status_code == (201 if documented_valid else 422), created.text
    if documented_valid:
        written = datetime.fromisoformat(due.upper())
        instant = written if written.tzinfo else written.replace(tzinfo=UTC)
        assert datetime.fromisoformat(created.json()["due_date"]) == instant
