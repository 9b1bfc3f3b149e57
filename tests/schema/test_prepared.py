"""Queries the app runs again as prepared runs (schema/prepared.py) answer as their first
execution, by graphql-core's executor, did: data, errors and status, through the real app."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import main
from schema.prepared import PreparedRun
from tests.support.app import running_app
from tests.support.graphql import seed_tasks
from tests.support.tokens import bearer, hs256_token

TASK = "id title completed dueDate createdAt __typename"
# name: (query, variables, whether its runs after the first are prepared runs)
QUERIES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "a page": (f"{{ tasks(first: 20) {{ nodes {{ {TASK} }} }} }}", {}, True),
    "a page by variables": (
        f"query ($n: Int, $done: Boolean) {{ tasks(first: $n, filter: {{completed: $done}}) "
        f"{{ nodes {{ {TASK} }} }} }}",
        {"n": 2, "done": False},
        True,
    ),
    "one task": ("query ($id: ID!) { task(id: $id) { title } }", {"id": "FIRST"}, True),
    "a task nobody has": ("{ task(id: 999999) { title } }", {}, True),
    "a task id that is not one": ('{ task(id: "seven") { title } }', {}, True),
    "a page the resolver refuses": (
        f'{{ tasks(first: 5, after: "not a cursor") {{ nodes {{ {TASK} }} }} }}',
        {},
        True,
    ),
    "a refused page beside a task": (
        "{ task(id: 999999) { title } tasks(first: -1) { nodes { id } } }",
        {},
        True,
    ),
    "variables that do not coerce": (
        "query ($n: Int) { tasks(first: $n) { nodes { id } } }",
        {"n": "many"},
        False,
    ),
}


# Answered with errors (graphql-core's, the prepared runs handing it the resolver's error).
ERRORS = {
    "a page the resolver refuses",
    "a refused page beside a task",
    "variables that do not coerce",
}


@pytest.fixture
def prepared_runs(monkeypatch: pytest.MonkeyPatch) -> list[PreparedRun]:
    runs: list[PreparedRun] = []
    execute = PreparedRun.execute_operation

    def counting(self: PreparedRun) -> Any:
        runs.append(self)
        return execute(self)

    monkeypatch.setattr(PreparedRun, "execute_operation", counting)
    return runs


@pytest.mark.parametrize("name", QUERIES)
async def test_a_query_run_again_answers_as_its_first_execution(
    settings: main.Settings, clean_database: str, prepared_runs: list[PreparedRun], name: str
) -> None:
    query, variables, prepared = QUERIES[name]
    rows = [(f"Task {n}", "", n % 2 == 0, None, _created(n), _created(n)) for n in range(3)]
    ids = await seed_tasks(clean_database, "alice", rows)
    variables = {key: str(ids[0]) if v == "FIRST" else v for key, v in variables.items()}
    headers = bearer(hs256_token("alice"))
    async with running_app(settings) as (http, _):
        responses = [await _post(http, query, variables, headers) for _ in range(3)]
    assert responses[1] == responses[0]
    assert responses[2] == responses[0]
    assert len(prepared_runs) == (2 if prepared else 0)
    status, body = responses[0]
    assert status == (400 if name == "variables that do not coerce" else 200)
    assert (b'"errors"' in body) == (name in ERRORS), body


async def _post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any], headers: dict[str, str]
) -> tuple[int, bytes]:
    response = await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return response.status_code, response.content


def _created(n: int) -> datetime:
    return datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=n)
