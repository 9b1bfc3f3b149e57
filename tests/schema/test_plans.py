"""Compiled plans against the standard executor: generated operations, byte-identical responses.

Two apps run on one database, one with GRAPHQL_COMPILED and one without. Hypothesis writes
documents out of this schema's pieces (aliases, inline fragments, named fragments,
@skip/@include with literals and variables, __typename, arguments as literals and variables,
missing tasks, bad cursors, out-of-range pages, bad variables, anonymous callers), and every
response must be the same bytes with the same status and media type from both.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from graphql import GraphQLError
from graphql.execution.values import get_variable_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.types.graphql import OperationType

from db.engine import Database, DatabaseConfig
from resolvers.auth import Principal
from resolvers.context import Context
from schema.build import TaskSchema, build_schema
from schema.plans import MAX_DIRECTIVE_VARIABLES, CompiledOperations, Selection
from tests.support.app import make_settings, running_app
from tests.support.graphql import seed_tasks
from tests.support.tokens import hs256_token

BASE = datetime(2026, 3, 1, 12, tzinfo=UTC)
TASK_LEAVES = ("id", "title", "description", "completed", "dueDate", "createdAt", "version")
# Fields per type: None for a leaf, else the type of the sub-selection.
TYPES: dict[str, dict[str, str | None]] = {
    "Task": dict.fromkeys((*TASK_LEAVES, "updatedAt")),
    "TaskConnection": {
        "nodes": "Task",
        "edges": "TaskEdge",
        "pageInfo": "PageInfo",
        "totalCount": None,
    },
    "TaskEdge": {"cursor": None, "node": "Task"},
    "PageInfo": dict.fromkeys(("hasNextPage", "hasPreviousPage", "startCursor", "endCursor")),
    "Viewer": {"id": None},
    "TaskPayload": {"task": "MutatedTask", "userErrors": "UserError"},
    "DeleteTaskPayload": {"deletedTaskId": None, "task": "MutatedTask", "userErrors": "UserError"},
    # A mutation's timestamps are now(), different in each run: leave them out.
    "MutatedTask": {name: None for name in TASK_LEAVES if name != "createdAt"},
    "UserError": {"field": None, "message": None, "code": None},
}
GRAPHQL_TYPE = {"MutatedTask": "Task"}
# Now and then a root alias shared by different fields: a validation error for both paths.
ALIASES = ("", "a")


@dataclass
class Document:
    """What a drawn operation needs besides its text: variables, fragments."""

    variables: dict[str, str] = field(default_factory=dict)
    fragments: list[str] = field(default_factory=list)

    def use(self, name: str, graphql_type: str) -> str:
        self.variables[name] = graphql_type
        return f"${name}"


def directive(draw: st.DrawFn, doc: Document) -> str:
    kind = draw(st.sampled_from(["", "", "", "@skip", "@include"]))
    if not kind:
        return ""
    condition = draw(st.sampled_from(["true", "false", "$on", "$off"]))
    if condition == "$on":
        condition = doc.use("on", "Boolean!")
    elif condition == "$off":
        condition = doc.use("off", "Boolean = false")
    return f" {kind}(if: {condition})"


def selection_set(draw: st.DrawFn, doc: Document, type_name: str, depth: int = 0) -> str:
    fields = TYPES[type_name]
    graphql_type = GRAPHQL_TYPE.get(type_name, type_name)
    items = []
    for _ in range(draw(st.integers(1, 4))):
        form = draw(st.sampled_from(["field", "field", "field", "inline", "spread"]))
        if form != "field" and depth < 3:
            inner = selection_set(draw, doc, type_name, depth + 1)
            if form == "inline":
                condition = draw(st.sampled_from([f"on {graphql_type} ", ""]))
                items.append(f"... {condition}{directive(draw, doc)}{inner}")
            else:
                name = f"F{len(doc.fragments)}"
                doc.fragments.append(f"fragment {name} on {graphql_type} {inner}")
                items.append(f"...{name}{directive(draw, doc)}")
            continue
        name = draw(st.sampled_from([*fields, "__typename"]))
        # Aliases of their own field, which merge (conflicts are validation's business).
        alias = draw(st.sampled_from(["", "", f"{name}A", f"{name}B"]))
        sub = fields.get(name)
        inner = "" if sub is None else " " + selection_set(draw, doc, sub, depth + 1)
        items.append(f"{alias + ': ' if alias else ''}{name}{directive(draw, doc)}{inner}")
    return "{ " + " ".join(items) + " }"


@dataclass(frozen=True)
class Data:
    """The seeded tasks: ids of alice's and bob's, and cursors of alice's listings."""

    alice: list[int]
    bob: list[int]
    cursors: list[str]


def task_id(draw: st.DrawFn, doc: Document, data: Data) -> str:
    value = draw(st.sampled_from([*map(str, data.alice[:3]), str(data.bob[0]), "999999", "x"]))
    if draw(st.booleans()):
        return doc.use("taskId", "ID!")
    return orjson.dumps(value).decode()


def tasks_arguments(draw: st.DrawFn, doc: Document, data: Data) -> str:
    arguments = []
    size = draw(st.sampled_from([None, 0, 2, 5, 101, "$n"]))
    direction = draw(st.sampled_from(["first", "first", "last"]))
    if size == "$n":
        arguments.append(f"{direction}: {doc.use('n', 'Int')}")
    elif size is not None:
        arguments.append(f"{direction}: {size}")
    cursor = draw(st.sampled_from([None, None, "bogus", *data.cursors[:4]]))
    if cursor is not None:
        arguments.append(
            f"{draw(st.sampled_from(['after', 'before']))}: {orjson.dumps(cursor).decode()}"
        )
    arguments.append(
        draw(
            st.sampled_from(
                [
                    "",
                    "",
                    "filter: { completed: true }",
                    'filter: { search: "milk" }',
                    'filter: { overdue: false, dueAfter: "2026-01-01T00:00:00Z" }',
                ]
            )
        )
    )
    arguments.append(
        draw(
            st.sampled_from(
                [
                    "",
                    "",
                    "orderBy: { field: TITLE }",
                    "orderBy: { field: DUE_DATE, direction: DESC }",
                ]
            )
        )
    )
    text = ", ".join(a for a in arguments if a)
    return f"({text})" if text else ""


@st.composite
def queries(draw: st.DrawFn, data: Data) -> tuple[str, dict[str, Any]]:
    doc = Document()
    roots = []
    for index in range(draw(st.integers(1, 3))):
        root = draw(st.sampled_from(["tasks", "tasks", "task", "viewer", "__typename"]))
        alias = draw(st.sampled_from(["", f"r{index}", f"r{index}", f"r{index}", *ALIASES]))
        prefix = f"{alias}: " if alias else ""
        if root == "tasks":
            arguments = tasks_arguments(draw, doc, data)
            body = selection_set(draw, doc, "TaskConnection")
            roots.append(f"{prefix}tasks{arguments}{directive(draw, doc)} {body}")
        elif root == "task":
            body = selection_set(draw, doc, "Task")
            roots.append(f"{prefix}task(id: {task_id(draw, doc, data)}) {body}")
        elif root == "viewer":
            roots.append(f"{prefix}viewer {selection_set(draw, doc, 'Viewer')}")
        else:
            roots.append(f"{prefix}__typename")
    return document(doc, "query", roots), variables(draw, doc, data)


def document(doc: Document, kind: str, roots: list[str]) -> str:
    declared = ", ".join(f"${name}: {kind_}" for name, kind_ in sorted(doc.variables.items()))
    header = f"{kind} Generated({declared})" if declared else f"{kind} Generated"
    return " ".join([header + " { " + " ".join(roots) + " }", *doc.fragments])


def variables(draw: st.DrawFn, doc: Document, data: Data) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "on" in doc.variables:
        values["on"] = draw(st.sampled_from([True, False, True, "yes"]))
    if "off" in doc.variables and draw(st.booleans()):
        values["off"] = draw(st.sampled_from([True, False, None]))
    if "n" in doc.variables:
        values["n"] = draw(st.sampled_from([None, 1, 3, 101, "three"]))
    if "taskId" in doc.variables:
        values["taskId"] = draw(st.sampled_from([str(data.alice[1]), str(data.bob[0]), "0", 7]))
    return values


@st.composite
def mutations(draw: st.DrawFn, data: Data) -> tuple[str, dict[str, Any]]:
    doc = Document()
    roots = []
    for index in range(draw(st.integers(1, 3))):
        alias = draw(st.sampled_from(["", f"r{index}", f"r{index}", f"r{index}", *ALIASES]))
        prefix = f"{alias}: " if alias else ""
        target = draw(
            st.sampled_from([str(data.alice[0]), str(data.alice[1]), str(data.bob[0]), "x"])
        )
        version = draw(st.sampled_from(["", ", expectedVersion: 1", ", expectedVersion: 7"]))
        operation = draw(st.sampled_from(["create", "update", "toggle", "delete"]))
        if operation == "create":
            title = draw(st.sampled_from(['"Buy milk"', '"  "', "null"]))
            call = f'createTask(input: {{ title: {title}, dueDate: "2026-05-01T10:00:00Z" }})'
        elif operation == "update":
            call = f'updateTask(id: "{target}", input: {{ title: "Renamed" }}{version})'
        elif operation == "toggle":
            call = f'toggleTaskCompletion(id: "{target}"{version})'
        else:
            call = f'deleteTask(id: "{target}"{version})'
        payload = "DeleteTaskPayload" if operation == "delete" else "TaskPayload"
        roots.append(f"{prefix}{call} {selection_set(draw, doc, payload)}")
    return document(doc, "mutation", roots), variables(draw, doc, data)


USERS = st.sampled_from(["alice", "alice", "alice", "bob", None])


async def seed(url: str) -> Data:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("TRUNCATE tasks RESTART IDENTITY")
    finally:
        await conn.close()
    rows = [
        (
            f"{'Buy milk' if i % 4 == 0 else 'Task'} {i:02}",
            f"description {i}",
            i % 3 == 0,
            None if i % 5 == 0 else BASE + timedelta(days=i - 4),
            BASE + timedelta(minutes=i // 2),
            BASE + timedelta(hours=i),
        )
        for i in range(12)
    ]
    alice = await seed_tasks(url, "alice", rows)
    bob = await seed_tasks(url, "bob", rows[:2])
    created = [
        orjson.dumps(["created_at", (BASE + timedelta(minutes=i // 2)).isoformat(), i + 1])
        for i in range(0, 12, 3)
    ]
    cursors = [base64.urlsafe_b64encode(raw).decode() for raw in created]
    return Data(alice=alice, bob=bob, cursors=cursors)


@dataclass(frozen=True)
class Apps:
    compiled: httpx.AsyncClient
    standard: httpx.AsyncClient
    data: Data
    url: str


@pytest.fixture
async def apps(clean_database: str) -> AsyncIterator[Apps]:
    data = await seed(clean_database)
    compiled = make_settings(clean_database)
    standard = make_settings(clean_database, GRAPHQL_COMPILED="false")
    assert compiled.graphql.compiled
    assert not standard.graphql.compiled
    async with running_app(compiled) as (fast, _), running_app(standard) as (slow, _):
        yield Apps(fast, slow, data, clean_database)


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], user: str | None, accept: str
) -> tuple[int, str, bytes]:
    headers = {"X-Request-ID": "differential-test", "Accept": accept}
    if user is not None:
        headers["Authorization"] = f"Bearer {hs256_token(user)}"
    body = {"query": query, "variables": variables}
    response = await client.post("/graphql", json=body, headers=headers)
    return response.status_code, response.headers["content-type"], response.content


DIFFERENTIAL = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ACCEPT = st.sampled_from(["application/graphql-response+json", "application/json"])


@pytest.mark.slow
@DIFFERENTIAL
@given(data=st.data())
async def test_queries_match_the_standard_executor(apps: Apps, data: st.DataObject) -> None:
    query, values = data.draw(queries(apps.data), label="query")
    user, accept = data.draw(USERS, label="user"), data.draw(ACCEPT, label="accept")
    compiled = await post(apps.compiled, query, values, user, accept)
    standard = await post(apps.standard, query, values, user, accept)
    assert compiled == standard


@pytest.mark.slow
@settings(DIFFERENTIAL, max_examples=30)
@given(data=st.data())
async def test_mutations_match_the_standard_executor(apps: Apps, data: st.DataObject) -> None:
    query, values = data.draw(mutations(apps.data), label="mutation")
    user = data.draw(USERS, label="user")
    await seed(apps.url)
    compiled = await post(apps.compiled, query, values, user, "application/json")
    await seed(apps.url)
    standard = await post(apps.standard, query, values, user, "application/json")
    assert compiled == standard


# --- which requests the compiler takes, and which it leaves to the standard path ------------


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(DatabaseConfig(url=database_url))
    try:
        yield database
    finally:
        await database.close()


def operations() -> CompiledOperations:
    schema = build_schema()
    assert isinstance(schema, TaskSchema)
    assert schema.compiled is not None
    return schema.compiled


def selection(query: str, operation_name: str | None = None) -> Selection | None:
    """What the compiler makes of a document, run without variables."""
    plan = operations().plan(query, operation_name)
    if plan is None:
        return None
    definitions = plan.operation.definition.variable_definitions or ()
    values = get_variable_values(plan.operation.schema, definitions, {})
    assert not isinstance(values, list)
    return plan.selection(values)


@pytest.mark.parametrize(
    ("query", "operation_name"),
    [
        ("{ __schema { queryType { name } } }", None),
        ('{ tasks { totalCount } __type(name: "Task") { name } }', None),
        ("query A { viewer { id } } query B { viewer { id } }", None),
        ("query A { viewer { id } }", "B"),
        ("{ tasks { nodes { nope } } }", None),
    ],
)
def test_what_the_compiler_leaves_to_the_standard_path(
    query: str, operation_name: str | None
) -> None:
    assert selection(query, operation_name) is None


def test_unparseable_documents_raise_and_are_not_cached() -> None:
    compiled = operations()
    for _ in range(2):
        with pytest.raises(GraphQLError, match="Syntax Error"):
            compiled.plan("{ viewer { id } ", None)
    assert compiled.plan.cache_info().currsize == 0


def test_too_many_directive_variables_fall_back() -> None:
    def query(count: int) -> str:
        names = [f"v{i}" for i in range(count)]
        declared = ", ".join(f"${name}: Boolean!" for name in names)
        skips = " ".join(f"{name}: id @skip(if: ${name})" for name in names)
        return f"query Q({declared}) {{ viewer {{ {skips} }} }}"

    assert operations().plan(query(MAX_DIRECTIVE_VARIABLES), None) is not None
    assert operations().plan(query(MAX_DIRECTIVE_VARIABLES + 1), None) is None


def test_plans_are_compiled_once_per_document_and_operation() -> None:
    compiled = operations()
    query = "query A { viewer { id } } mutation B { deleteTask(id: 1) { deletedTaskId } }"
    first = compiled.plan(query, "A")
    assert first is not None
    assert first is compiled.plan(query, "A")
    mutation = compiled.plan(query, "B")
    assert mutation is not None
    assert mutation.operation_type is OperationType.MUTATION


@pytest.mark.parametrize(
    ("query", "variables", "allowed", "user"),
    [
        ("{ viewer { id } }", {}, {OperationType.QUERY}, None),
        ("mutation { deleteTask(id: 1) { deletedTaskId } }", {}, {OperationType.QUERY}, "alice"),
        ("query ($n: Int) { tasks(first: $n) { totalCount } }", {"n": "x"}, None, "alice"),
        ("query ($s: Boolean = true) { viewer { id @skip(if: $s) } }", {"s": None}, None, "alice"),
        ("{ __typename viewer { __typename } ", {}, None, "alice"),
    ],
)
async def test_requests_left_to_the_standard_path(
    database: Database,
    query: str,
    variables: dict[str, Any],
    allowed: set[OperationType] | None,
    user: str | None,
) -> None:
    context = Context(database=database, principal=None if user is None else Principal(user))
    result = await operations().execute(
        query=query,
        variables=variables,
        operation_name=None,
        context=context,
        allowed=allowed or {OperationType.QUERY, OperationType.MUTATION},
    )
    assert result is None


async def test_a_covered_request_runs_without_the_database_when_it_needs_none(
    database: Database,
) -> None:
    context = Context(database=database, principal=Principal("alice"))
    result = await operations().execute(
        query="query ($s: Boolean!) { v: viewer { ... on Viewer { id @include(if: $s) } } }",
        variables={"s": True},
        operation_name=None,
        context=context,
        allowed={OperationType.QUERY},
    )
    assert result is not None
    assert result.data == {"v": {"id": "alice"}}
    assert result.errors is None
