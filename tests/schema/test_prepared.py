"""Queries run again as prepared runs (schema/prepared.py) answer as their first execution,
by graphql-core's executor, did: through the real app (data, errors, status), and on a
schema whose root resolvers fail, return null or hand back values the reads refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from graphql import GraphQLResolveInfo
from strawberry.extensions import SchemaExtension

import main
from schema.prepared import PreparedRun
from tests.support.app import running_app
from tests.support.graphql import seed_tasks
from tests.support.shortcut import (
    Source,
    count_prepared_runs,
    executed_twice,
    odd_schemas,
    with_shortcut,
)
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
    return count_prepared_runs(monkeypatch)


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


# Root fields that fail or are null: the prepared run hands their outcomes to graphql-core.
ROOT_OUTCOMES = {
    "all read": ((), ()),
    "a nullable root fails": (("a",), ()),
    "two fail": (("a", "b"), ()),
    "a nullable root is null": ((), ("b",)),
    "one fails, one is null": (("b",), ("a",)),
    "the non-null root fails": (("data",), ()),
}


@pytest.mark.parametrize("outcome", ROOT_OUTCOMES, ids=list(ROOT_OUTCOMES))
async def test_root_fields_that_fail_or_are_null_get_graphql_cores_answer(outcome: str) -> None:
    shortcut, stock = odd_schemas([Source(), Source(name="z")])
    query = (
        "{ a: later { first { name } } b: later { rows { name count } } data { first { name } } }"
    )
    fail, none = ROOT_OUTCOMES[outcome]
    context = {"fail": fail, "none": none}
    fast = await executed_twice(shortcut, query, context_value=context)
    reference = await stock.execute(query, context_value=context)
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in reference.errors or ()]
    assert len(fast.errors or ()) == len(fail)
    assert (fast.data is None) == ("data" in fail)


PREPARED = {
    "a query": ("{ data { first { name } } }", {}),
    "a query with variables": (
        "query ($n: Int) { a: later(first: $n) { rows { name } } data { rows { count } } } ",
        {"n": 1},
    ),
    "a named operation": ("query Named { data { first { name } } }", {}),
    "fragments": (
        "{ ...root } fragment root on Query { data { first { ... on Row { name } } } }",
        {},
    ),
}
NOT_PREPARED = {
    "a directive": (
        "query ($off: Boolean!) { data { first { name @skip(if: $off) } } }",
        {"off": 1 > 2},
    ),
    "a scalar at the root": ("{ __typename data { first { name } } }", {}),
}


@pytest.mark.parametrize("name", [*PREPARED, *NOT_PREPARED])
async def test_a_query_run_again_is_a_prepared_run_when_its_root_fields_are_read_objects(
    prepared_runs: list[PreparedRun], name: str
) -> None:
    shortcut, stock = odd_schemas([Source(), Source(name="z")])
    query, variables = {**PREPARED, **NOT_PREPARED}[name]
    reference = await stock.execute(query, variable_values=variables)
    for _ in range(3):
        fast = await shortcut.execute(query, variable_values=variables)
        assert fast.data == reference.data
        assert fast.errors is None
    assert len(prepared_runs) == (2 if name in PREPARED else 0)


async def test_variables_a_prepared_run_cannot_coerce_get_graphql_cores_errors(
    prepared_runs: list[PreparedRun],
) -> None:
    shortcut, stock = odd_schemas([Source()])
    query = "query ($n: Int!) { later(first: $n) { first { name } } }"
    await shortcut.execute(query, variable_values={"n": 1})
    for variables in ({"n": "many"}, {}, {"n": 2**40}):
        fast = await shortcut.execute(query, variable_values=variables)
        reference = await stock.execute(query, variable_values=variables)
        assert fast.data is None
        assert [e.formatted for e in fast.errors or ()] == [
            e.formatted for e in reference.errors or ()
        ]
    # build returned graphql-core's variable errors, as its own build does
    assert prepared_runs == []


async def test_a_request_with_middleware_is_never_a_prepared_run(
    prepared_runs: list[PreparedRun],
) -> None:
    shortcut, _ = odd_schemas([Source()])
    seen: list[str] = []

    class Noting(SchemaExtension):
        def resolve(self, _next: Any, root: Any, info: GraphQLResolveInfo[Any], **args: Any) -> Any:
            seen.append(info.field_name)
            return _next(root, info, **args)

    noting = with_shortcut(shortcut.query, Noting)
    for _ in range(2):
        result = await noting.execute("{ data { first { name } } }")
        assert result.data == {"data": {"first": {"name": "a"}}}
    assert prepared_runs == []
    assert seen == ["data", "first", "name"] * 2
