"""The OpenAPI document and the API agree on which titles are valid, edge cases included."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
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
