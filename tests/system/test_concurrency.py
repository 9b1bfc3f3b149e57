"""Concurrent writes to one task through both doors: no lost update, no resurrection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.support.app import app_client, make_settings

USER = "alice"
TOGGLES = 200
RIVAL_UPDATES = 50

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
async def busy_client(clean_database: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a pool large enough that requests really run side by side in PostgreSQL."""
    settings = make_settings(clean_database, DB_POOL_SIZE="50")
    async with app_client(settings) as http:
        yield http


async def _create(http: httpx.AsyncClient, auth: Headers, title: str = "contended") -> int:
    response = await http.post(f"/api/{USER}/tasks", json={"title": title}, headers=auth(USER))
    assert response.status_code == 201, response.text
    task_id: int = response.json()["id"]
    return task_id


async def _graphql(
    http: httpx.AsyncClient, auth: Headers, query: str, **variables: Any
) -> dict[str, Any]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=auth(USER)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


TOGGLE = """mutation($id: ID!) {
  toggleTaskCompletion(id: $id) { task { completed version } userErrors { code } }
}"""
UPDATE = """mutation($id: ID!, $title: String!, $version: Int) {
  updateTask(id: $id, input: {title: $title}, expectedVersion: $version) {
    task { title version } userErrors { code }
  }
}"""


async def _toggle(http: httpx.AsyncClient, auth: Headers, door: str, task_id: int) -> int:
    """Toggle once; the version the toggle produced."""
    if door == "rest":
        response = await http.patch(f"/api/{USER}/tasks/{task_id}/complete", headers=auth(USER))
        assert response.status_code == 200, response.text
        return _version(response)
    payload = (await _graphql(http, auth, TOGGLE, id=str(task_id)))["toggleTaskCompletion"]
    assert payload["userErrors"] == []
    version: int = payload["task"]["version"]
    return version


async def _conditional_update(
    http: httpx.AsyncClient, auth: Headers, door: str, task_id: int, title: str
) -> bool:
    """Update the title if the task is still at version 1; whether this update won."""
    if door == "rest":
        response = await http.put(
            f"/api/{USER}/tasks/{task_id}",
            json={"title": title},
            headers={**auth(USER), "If-Match": '"1"'},
        )
        if response.status_code == 412:
            assert response.json()["current_version"] == 2
            return False
        assert response.status_code == 200, response.text
        return True
    payload = (await _graphql(http, auth, UPDATE, id=str(task_id), title=title, version=1))[
        "updateTask"
    ]
    if payload["userErrors"]:
        assert payload["userErrors"] == [{"code": "VERSION_CONFLICT"}]
        assert payload["task"]["version"] == 2
        return False
    return True


def _version(response: httpx.Response) -> int:
    """The task version a REST response names in its ETag."""
    return int(response.headers["etag"].strip('"'))


async def _task(http: httpx.AsyncClient, auth: Headers, task_id: int) -> httpx.Response:
    return await http.get(f"/api/{USER}/tasks/{task_id}", headers=auth(USER))


@pytest.mark.slow
@pytest.mark.parametrize("door", ["rest", "graphql"])
async def test_parallel_toggles_lose_none(
    busy_client: httpx.AsyncClient, auth: Headers, door: str
) -> None:
    task_id = await _create(busy_client, auth)

    versions = await asyncio.gather(
        *(_toggle(busy_client, auth, door, task_id) for _ in range(TOGGLES))
    )

    # Each toggle produced its own version: none read a stale row and overwrote another.
    assert sorted(versions) == list(range(2, TOGGLES + 2))
    final = await _task(busy_client, auth, task_id)
    assert _version(final) == 1 + TOGGLES
    assert final.json()["completed"] is (TOGGLES % 2 == 1)


@pytest.mark.slow
@pytest.mark.parametrize("door", ["rest", "graphql"])
async def test_parallel_updates_of_one_version_let_exactly_one_win(
    busy_client: httpx.AsyncClient, auth: Headers, door: str
) -> None:
    task_id = await _create(busy_client, auth)

    won = await asyncio.gather(
        *(
            _conditional_update(busy_client, auth, door, task_id, f"writer {n}")
            for n in range(RIVAL_UPDATES)
        )
    )

    assert won.count(True) == 1
    assert won.count(False) == RIVAL_UPDATES - 1
    final = await _task(busy_client, auth, task_id)
    assert _version(final) == 2
    assert final.json()["title"] == f"writer {won.index(True)}"


@pytest.mark.slow
async def test_parallel_updates_and_delete_never_resurrect(
    busy_client: httpx.AsyncClient, auth: Headers
) -> None:
    task_ids = [await _create(busy_client, auth, f"task {n}") for n in range(10)]

    async def update(task_id: int) -> httpx.Response:
        return await busy_client.put(
            f"/api/{USER}/tasks/{task_id}", json={"title": "edited"}, headers=auth(USER)
        )

    async def delete(task_id: int) -> httpx.Response:
        return await busy_client.delete(f"/api/{USER}/tasks/{task_id}", headers=auth(USER))

    requests = []
    for task_id in task_ids:
        requests += [update(task_id) for _ in range(10)]
        requests.insert(len(requests) - 5, delete(task_id))
    responses = await asyncio.gather(*requests)

    assert sorted({r.status_code for r in responses if r.request.method == "DELETE"}) == [204]
    updates = [r for r in responses if r.request.method == "PUT"]
    assert {r.status_code for r in updates} <= {200, 404}
    for task_id in task_ids:
        assert (await _task(busy_client, auth, task_id)).status_code == 404
        # Updates that got in before the delete were serialised, not lost to one another.
        versions = sorted(
            _version(r) for r in updates if r.status_code == 200 and r.json()["id"] == task_id
        )
        assert versions == list(range(2, len(versions) + 2))
    listed = await busy_client.get(f"/api/{USER}/tasks", headers=auth(USER))
    assert listed.json() == []
