"""A database that is not what the code needs, through both doors: 503 while waiting may
help, 500 when only an operator can, the cause and the fix logged once; never a 422."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.app import app_client, make_settings
from tests.support.databases import empty_database, migrate_to

USER = "alice"
# What a client may learn: none of the server's words.
LEAKS = ("taskql_", "function", "relation", "role", "permission", "asyncpg", "migrat", "SELECT")

Headers = Callable[[str], dict[str, str]]


@pytest.fixture
async def unmigrated(admin_database_url: str) -> AsyncIterator[str]:
    async with empty_database(admin_database_url, "taskql_faults") as url:
        yield url


@pytest.fixture
async def migrated(unmigrated: str) -> str:
    """A database of this test's own, at the code's revision, which the test may damage."""
    await migrate_to(unmigrated)
    return unmigrated


async def _run(url: str, statement: str) -> Any:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(statement)
    finally:
        await conn.close()


def _graphql(query: str) -> dict[str, Any]:
    return {"query": query}


LIST = _graphql("{ tasks(first: 5) { nodes { id } } }")
CREATE = _graphql('mutation { createTask(input: {title: "milk"}) { task { id } } }')


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.ERROR and text in r.getMessage()
    ]


def _assert_no_leak(response: httpx.Response) -> None:
    for leak in LEAKS:
        assert leak not in response.text, response.text


async def test_an_unmigrated_database_answers_503_never_422(
    unmigrated: str, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    headers = auth(USER)
    async with app_client(make_settings(unmigrated)) as http:
        responses = [
            await http.get(f"/api/{USER}/tasks", headers=headers),
            await http.post(f"/api/{USER}/tasks", json={"title": "milk"}, headers=headers),
            await http.patch(f"/api/{USER}/tasks/1/complete", headers=headers),
        ]
        graphql = [
            await http.post("/graphql", json=LIST, headers=headers),
            await http.post("/graphql", json=CREATE, headers=headers),
        ]
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json() == {
            "detail": "The service is waiting for its database schema to be upgraded; retry shortly"
        }
    for response in graphql:
        assert response.status_code == 503, response.text
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        _assert_no_leak(response)
    # Said once for the five requests, with what to run.
    [said] = _logged(caplog, "no alembic_version")
    assert "run `taskql migrate`" in said


@pytest.mark.slow
async def test_a_dropped_function_is_a_500_with_its_cause_logged(
    migrated: str, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    signature = await _run(migrated, "SELECT 'taskql_toggle_task'::regproc::regprocedure::text")
    await _run(migrated, f"DROP FUNCTION {signature}")
    caplog.set_level(logging.ERROR)
    headers = auth(USER)
    toggle = _graphql('mutation { toggleTaskCompletion(id: "1") { task { id } } }')
    async with app_client(make_settings(migrated)) as http:
        created = await http.post(f"/api/{USER}/tasks", json={"title": "milk"}, headers=headers)
        task_id = created.json()["id"]
        rest = await http.patch(f"/api/{USER}/tasks/{task_id}/complete", headers=headers)
        graphql = await http.post("/graphql", json=toggle, headers=headers)
        # Only what needs the function fails; the process stays ready.
        listed = await http.get(f"/api/{USER}/tasks", headers=headers)
        ready = await http.get("/readyz")
    assert created.status_code == 201
    assert rest.status_code == 500, rest.text
    assert rest.json() == {
        "detail": "The service is misconfigured; its operators can find why in its log"
    }
    assert graphql.status_code == 500, graphql.text
    body = graphql.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "SERVICE_MISCONFIGURED"
    for response in (rest, graphql):
        _assert_no_leak(response)
    assert (listed.status_code, ready.status_code) == (200, 200)
    # One line for both requests: the cause in the server's words, then the fix.
    [said] = _logged(caplog, "taskql_toggle_task")
    assert said.startswith("function taskql_toggle_task(")
    assert ") does not exist: apply the migrations" in said


async def test_a_withheld_privilege_is_a_500_with_its_cause_logged(
    migrated: str, auth: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    await _run(migrated, "REVOKE SELECT ON tasks FROM taskql_app")
    caplog.set_level(logging.ERROR)
    async with app_client(make_settings(migrated)) as http:
        response = await http.get(f"/api/{USER}/tasks", headers=auth(USER))
    assert response.status_code == 500, response.text
    _assert_no_leak(response)
    [said] = _logged(caplog, "permission denied for table tasks")
    assert "grant it to DB_APP_ROLE" in said


@pytest.mark.parametrize("pooler", ["false", "true"])
async def test_a_missing_role_is_a_500_never_422(
    database_url: str, auth: Headers, caplog: pytest.LogCaptureFixture, pooler: str
) -> None:
    # Roles belong to the whole server, so a role that does not exist stands in for a
    # dropped one: as a database restored on another server without its roles.
    settings = make_settings(
        database_url,
        DB_APP_ROLE="taskql_no_such_role",
        DB_POOLER=pooler,
        DATABASE_LISTEN_URL=database_url,
    )
    caplog.set_level(logging.ERROR)
    headers = auth(USER)
    async with app_client(settings) as http:
        rest = [
            await http.get(f"/api/{USER}/tasks", headers=headers),
            await http.post(f"/api/{USER}/tasks", json={"title": "milk"}, headers=headers),
        ]
        graphql = await http.post("/graphql", json=LIST, headers=headers)
    for response in rest:
        assert response.status_code == 500, response.text
        _assert_no_leak(response)
    assert graphql.status_code == 500
    assert graphql.json()["errors"][0]["extensions"]["code"] == "SERVICE_MISCONFIGURED"
    [said] = _logged(caplog, "taskql_no_such_role")
    assert said.startswith('role "taskql_no_such_role" does not exist: DB_APP_ROLE is')
