"""The executor (schema/execution.py): its shortcut gives graphql-core's own responses, and every
schema extension sees every request.

Differential tests: one schema with the shortcut, one with Strawberry's stock executor, on one
database. Hypothesis writes documents out of this schema's pieces (aliases, inline fragments,
named fragments, @skip/@include with literals and variables, __typename, arguments as literals
and variables, missing tasks, bad cursors, out-of-range pages, bad variables, anonymous
callers), and every response must be the same bytes with the same status and media type from
both. Values the shortcut hands back to graphql-core (nulls in non-null fields, values a scalar
refuses, error objects) are checked on a small schema of their own.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import strawberry
from graphql import (
    DocumentNode,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLString,
    parse,
)
from graphql.execution import executor as graphql_executor
from graphql.execution.collect_fields import collect_subfields
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

import main
from resolvers.events import TaskEvent as DomainTaskEvent
from schema.build import build_schema
from schema.execution import (
    SharedSelections,
    ShortcutExecutor,
    utc_datetime_text,
)
from schema.http import GraphQLEndpoint
from schema.prepared import PreparedRun
from schema.subscription import as_graphql_event
from tests.support.app import make_settings, running_app
from tests.support.graphql import seed_tasks
from tests.support.shortcut import Source, executed_twice, odd_schemas
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


@asynccontextmanager
async def endpoint(
    settings: main.Settings, schema: strawberry.Schema
) -> AsyncIterator[httpx.AsyncClient]:
    """A client for the /graphql endpoint of `schema`, with the app's lifespan state."""
    async with running_app(settings) as (_, state):
        graphql = GraphQLEndpoint(schema=schema)

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = {**state, "request_id": "differential-test"}
            await graphql(scope, receive, send)

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def stock_schema() -> strawberry.Schema:
    """The task schema run by Strawberry's own executor, without the shortcut."""
    schema = build_schema()
    schema.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return schema


@dataclass(frozen=True)
class Apps:
    shortcut: httpx.AsyncClient
    stock: httpx.AsyncClient
    data: Data
    url: str


@pytest.fixture
async def apps(clean_database: str) -> AsyncIterator[Apps]:
    data = await seed(clean_database)
    config = make_settings(clean_database)
    async with (
        endpoint(config, build_schema()) as shortcut,
        endpoint(config, stock_schema()) as stock,
    ):
        yield Apps(shortcut, stock, data, clean_database)


async def post(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], user: str | None, accept: str
) -> tuple[int, str, bytes]:
    headers = {"Accept": accept}
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


@DIFFERENTIAL
@pytest.mark.slow
@given(data=st.data())
async def test_queries_match_the_stock_executor(apps: Apps, data: st.DataObject) -> None:
    query, values = data.draw(queries(apps.data), label="query")
    user, accept = data.draw(USERS, label="user"), data.draw(ACCEPT, label="accept")
    shortcut = await post(apps.shortcut, query, values, user, accept)
    # The first execution of a query prepares the next ones (schema/prepared.py).
    again = await post(apps.shortcut, query, values, user, accept)
    stock = await post(apps.stock, query, values, user, accept)
    assert shortcut == stock
    assert again == stock


@settings(DIFFERENTIAL, max_examples=30)
@pytest.mark.slow
@given(data=st.data())
async def test_mutations_match_the_stock_executor(apps: Apps, data: st.DataObject) -> None:
    query, values = data.draw(mutations(apps.data), label="mutation")
    user = data.draw(USERS, label="user")
    await seed(apps.url)
    shortcut = await post(apps.shortcut, query, values, user, "application/json")
    await seed(apps.url)
    stock = await post(apps.stock, query, values, user, "application/json")
    assert shortcut == stock


# --- what the shortcut hands back to graphql-core -------------------------------------------


class LaterDatetime(datetime):
    def isoformat(self, sep: str = "T", timespec: str = "auto") -> str:
        return "later"


ROW = "name count note when __typename alias: name"
ODD_VALUES = {
    "plain": Source(),
    "null in a non-null field": Source(name=None),
    "a value Int refuses": Source(count=2**40),
    "a string Int refuses": Source(count="many"),
    "an error object": Source(note=ValueError("no note")),
    "a value String refuses": Source(note=object()),
    "a value String converts": Source(name=7, note=True),
    # DateTime: orjson writes UTC datetimes, Strawberry's isoformat all the others.
    "a UTC datetime": Source(when=datetime(2026, 12, 2, 8, 30, 1, 250, tzinfo=UTC)),
    "a UTC datetime on the second": Source(when=datetime(2026, 12, 2, 8, 30, tzinfo=UTC)),
    "a datetime elsewhere": Source(
        when=datetime(2026, 12, 2, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    ),
    "a naive datetime": Source(when=datetime(2026, 12, 2, 8, 30, 1)),
    "a datetime subclass": Source(when=LaterDatetime(2026, 12, 2, tzinfo=UTC)),
    "a date where a datetime belongs": Source(when=date(2026, 12, 2)),
}
DATETIME_CASES = {name for name in ODD_VALUES if "date" in name}


@pytest.mark.parametrize("odd", ODD_VALUES, ids=list(ODD_VALUES))
async def test_values_the_shortcut_cannot_serialise_get_graphql_cores_errors(odd: str) -> None:
    shortcut, stock = odd_schemas([Source(), ODD_VALUES[odd], Source(name="z")])
    query = f"{{ data {{ rows {{ {ROW} }} first {{ {ROW} }} }} }}"
    fast, reference = await executed_twice(shortcut, query), await stock.execute(query)
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in reference.errors or ()]
    assert (fast.errors is None) == (odd in ("plain", "a value String converts", *DATETIME_CASES))


# A list field without a resolver (`rows`) is read with its items' selection in one loop;
# these lists are graphql-core's to complete.
ODD_LISTS: dict[str, object] = {
    "a null item in a list of non-null items": [Source(), None],
    "a tuple": (Source(), Source(name="z")),
    "an error object": ValueError("no rows"),
    "a null list": None,
    "an empty list": [],
}


@pytest.mark.parametrize("odd", ODD_LISTS, ids=list(ODD_LISTS))
async def test_lists_the_shortcut_cannot_read_get_graphql_cores_answer(odd: str) -> None:
    shortcut, stock = odd_schemas([Source()])
    query = f"{{ data {{ rows {{ {ROW} }} }} }}"
    value = ODD_LISTS[odd]
    fast = await executed_twice(shortcut, query, root_value=None, context_value={"rows": value})
    reference = await stock.execute(query, root_value=None, context_value={"rows": value})
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in reference.errors or ()]
    assert (fast.errors is None) == (odd in ("a tuple", "an empty list"))


# An object field without a resolver (`first`) is read with its fields; these objects are
# graphql-core's to complete.
ODD_OBJECTS: dict[str, object] = {
    "null": None,
    "an error object": ValueError("no first row"),
    "a string": "not a row",
    "null in a non-null field": Source(name=None),
    "a value Int refuses": Source(count=2**40),
    "a plain row": Source(name="b"),
}


@pytest.mark.parametrize("odd", ODD_OBJECTS, ids=list(ODD_OBJECTS))
async def test_objects_the_shortcut_cannot_read_get_graphql_cores_answer(odd: str) -> None:
    shortcut, stock = odd_schemas([Source()])
    query = f"{{ data {{ first {{ {ROW} }} }} }}"
    context = {"first": ODD_OBJECTS[odd]}
    fast = await executed_twice(shortcut, query, context_value=context)
    reference = await stock.execute(query, context_value=context)
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in reference.errors or ()]
    assert (fast.errors is None) == (odd in ("null", "a plain row"))


@given(when=st.datetimes(timezones=st.just(UTC)))
def test_a_utc_datetime_is_written_as_isoformat_writes_it(when: datetime) -> None:
    assert utc_datetime_text(when) == when.isoformat()


@pytest.mark.parametrize("count", [0, 1, 3])
async def test_a_selection_graphql_core_refuses_is_refused_where_it_says(count: int) -> None:
    # A null for @skip's non-null `if`: an error at the first item, none for an empty list.
    shortcut, stock = odd_schemas([Source() for _ in range(count)])
    query = "query ($off: Boolean = false) { data { rows { name count @skip(if: $off) } } }"
    fast = await executed_twice(shortcut, query, variable_values={"off": None})
    reference = await stock.execute(query, variable_values={"off": None})
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors or ()] == [e.formatted for e in reference.errors or ()]
    assert (fast.errors is None) == (count == 0)


def test_the_shortcut_reads_only_fields_without_a_resolver() -> None:
    schema = build_schema()
    executor = schema.execution_context_class
    assert issubclass(executor, ShortcutExecutor)
    types = schema._schema.type_map
    task, connection = types["Task"], types["TaskConnection"]
    assert isinstance(task, GraphQLObjectType)
    assert isinstance(connection, GraphQLObjectType)
    assert executor._plain_field(task, "title") == (
        "title",
        GraphQLString.coerce_output_value,
        True,
        str,
    )
    assert executor._plain_field(task, "dueDate") is not None
    assert executor._plain_field(task, "createdAt") is not None
    assert executor._plain_field(connection, "totalCount") is None
    assert executor._plain_field(connection, "nodes") is None


async def test_objects_and_lists_without_a_resolver_are_read_with_their_fields_in_one_loop() -> (
    None
):
    shortcut, _ = odd_schemas([Source(), Source(name="z")])
    executed: list[str] = []

    class Recording(shortcut.execution_context_class):  # type: ignore[name-defined,misc]
        def execute_field(self, parent_type: Any, source: Any, details: Any, *args: Any) -> Any:
            executed.append(f"{parent_type.name}.{details[0].node.name.value}")
            return super().execute_field(parent_type, source, details, *args)

    shortcut.execution_context_class = Recording
    result = await shortcut.execute("{ data { rows { name count __typename } first { name } } }")
    assert result.errors is None
    assert result.data == {
        "data": {
            "rows": [
                {"name": "a", "count": 1, "__typename": "Row"},
                {"name": "z", "count": 1, "__typename": "Row"},
            ],
            "first": {"name": "a"},
        }
    }
    # Only the field with a resolver went through graphql-core's per-field execution.
    assert executed == ["Query.data"]


def _executed(
    schema: strawberry.Schema, query: str, variables: dict[str, Any] | None = None
) -> Any:
    """One execution of `query` as the schema's cached parser gives it: one document per text."""
    executor = schema.execution_context_class.build(
        schema._schema, _parsed(query), raw_variable_values=variables or {}
    )
    # The first execution of a query prepares the next ones (schema/prepared.py).
    assert isinstance(executor, StrawberryGraphQLCoreExecutionContext | PreparedRun)
    return executor.execute_operation()


def test_a_document_without_directives_has_its_selections_collected_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shortcut, _ = odd_schemas([Source(), Source(name="z")])
    collected: list[str] = []

    def counting(*args: Any) -> Any:
        collected.append(args[4].name)
        return collect_subfields(*args)

    monkeypatch.setattr(graphql_executor, "collect_subfields", counting)
    query = "{ data { rows { name count } first { ...named } } } fragment named on Row { name }"
    first, second = _executed(shortcut, query), _executed(shortcut, query)
    assert first.errors is None
    assert (
        first.data
        == second.data
        == {
            "data": {
                "rows": [{"name": "a", "count": 1}, {"name": "z", "count": 1}],
                "first": {"name": "a"},
            }
        }
    )
    # The first execution collected the selections of Rows and of each Row field; the second
    # reused them.
    assert sorted(collected) == ["Row", "Row", "Rows"]


def test_a_list_graphql_core_completes_looks_its_selection_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The odd row sends the list to graphql-core, which collects the selection of each item.
    shortcut, stock = odd_schemas([Source(), Source(note=ValueError("no note")), Source(name="z")])
    looked_up: list[str] = []
    shared_key = SharedSelections.key

    def counting(self: SharedSelections, *args: Any) -> Any:
        looked_up.append(args[2].name)
        return shared_key(self, *args)

    monkeypatch.setattr(SharedSelections, "key", counting)
    query = "{ data { rows { name note } } }"
    fast, reference = _executed(shortcut, query), _executed(stock, query)
    assert fast.data == reference.data
    assert [e.formatted for e in fast.errors] == [e.formatted for e in reference.errors]
    assert fast.data["data"]["rows"][2] == {"name": "z", "note": None}
    # Once for Rows, once for the items' Row: later items use this execution's own memo. The
    # first execution of a query also prepares its root (schema/prepared.py), which looks
    # Rows up once more, with the root fields it collects itself.
    assert sorted(looked_up) == ["Row", "Rows", "Rows"]


def test_a_document_with_directives_has_its_selections_collected_in_each_execution() -> None:
    shortcut, stock = odd_schemas([Source()])
    query = "query ($hide: Boolean!) { data { rows { name @skip(if: $hide) count } } }"
    for hide in (True, False, True):
        fast = _executed(shortcut, query, {"hide": hide})
        assert fast.data == _executed(stock, query, {"hide": hide}).data
        assert ("name" in fast.data["data"]["rows"][0]) is not hide


# --- every extension sees every request -----------------------------------------------------


class Probe(SchemaExtension):
    """Notes each lifecycle hook it is called for."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_operation(self) -> Iterator[None]:
        self.log.append("operation")
        yield

    def on_parse(self) -> Iterator[None]:
        self.log.append("parse")
        yield

    def on_validate(self) -> Iterator[None]:
        self.log.append("validate")
        yield

    def on_execute(self) -> Iterator[None]:
        self.log.append("execute")
        yield


class FieldProbe(Probe):
    """Also notes each field it resolves: an extension with a `resolve` hook."""

    def resolve(
        self,
        _next: Callable[..., Any],
        root: Any,
        info: GraphQLResolveInfo,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        self.log.append(f"{info.parent_type.name}.{info.field_name}")
        return _next(root, info, *args, **kwargs)


LIFECYCLE = ["operation", "parse", "validate", "execute"]
TASK_FIELDS = "id title completed version __typename"
PROBED: list[tuple[str, str, dict[str, Any]]] = [
    ("list", f"{{ tasks(first: 20) {{ nodes {{ {TASK_FIELDS} }} }} }}", {}),
    ("task", f"query ($id: ID!) {{ task(id: $id) {{ {TASK_FIELDS} }} }}", {"id": "FIRST"}),
    (
        "create",
        f'mutation {{ createTask(input: {{title: "New"}}) {{ task {{ {TASK_FIELDS} }} }} }}',
        {},
    ),
    (
        "update",
        f'mutation ($id: ID!) {{ updateTask(id: $id, input: {{title: "Renamed"}}) '
        f"{{ task {{ {TASK_FIELDS} }} userErrors {{ code }} }} }}",
        {"id": "FIRST"},
    ),
    (
        "toggle",
        f"mutation ($id: ID!) {{ toggleTaskCompletion(id: $id) {{ task {{ {TASK_FIELDS} }} }} }}",
        {"id": "FIRST"},
    ),
    ("delete", "mutation ($id: ID!) { deleteTask(id: $id) { deletedTaskId } }", {"id": "FIRST"}),
]


@pytest.fixture
async def seeded(clean_database: str) -> Data:
    return await seed(clean_database)


@pytest.mark.parametrize("probe", [Probe, FieldProbe], ids=["lifecycle", "fields"])
@pytest.mark.parametrize(("name", "query", "variables"), PROBED, ids=[p[0] for p in PROBED])
async def test_an_added_extension_runs_on_every_request(
    clean_database: str,
    seeded: Data,
    probe: type[Probe],
    name: str,
    query: str,
    variables: dict[str, Any],
) -> None:
    log: list[str] = []
    schema = build_schema(extra_extensions=[lambda: probe(log)])
    values = {
        key: str(seeded.alice[0]) if value == "FIRST" else value for key, value in variables.items()
    }
    # A query runs twice: its first execution prepares the second (schema/prepared.py).
    runs = 2 if name in ("list", "task") else 1
    async with endpoint(make_settings(clean_database), schema) as http:
        for _ in range(runs):
            log.clear()
            status, _, body = await post(http, query, values, "alice", "application/json")
            assert status == 200
            _assert_probed(probe, name, log, orjson.loads(body))


def _assert_probed(probe: type[Probe], name: str, log: list[str], response: Any) -> None:
    assert "errors" not in response, response
    assert log[:3] == LIFECYCLE[:3]
    assert "execute" in log
    fields = [entry for entry in log if "." in entry]
    if probe is Probe:
        assert fields == []
        return
    # Every field of the response was resolved under the probe, leaves included.
    leaves = [entry for entry in fields if entry.startswith("Task.")]
    tasks = len(response["data"]["tasks"]["nodes"]) if name == "list" else (name != "delete")
    assert len(leaves) == 5 * tasks, fields
    assert {entry.split(".")[1] for entry in leaves} == (
        {"id", "title", "completed", "version", "__typename"} if tasks else set()
    )


@dataclass
class Viewer:
    viewer_id: str


@functools.cache
def _parsed(query: str) -> DocumentNode:
    # As the schema's cached parser gives one document per text.
    return parse(query)


def _event_executor(schema: strawberry.Schema, viewer: str, query: str, payload: object) -> Any:
    executor_class = schema.execution_context_class
    executor = executor_class.build(
        schema._schema, _parsed(query), context_value=Viewer(viewer), raw_variable_values={}
    )
    assert isinstance(executor, ShortcutExecutor)
    return executor.build_per_event_executor(payload).execute_operation(False)


def test_one_event_is_executed_once_for_the_subscriptions_of_one_viewer() -> None:
    schema = build_schema()
    query = "subscription { taskEvents { kind cursor taskId version } }"
    event = as_graphql_event(
        DomainTaskEvent(
            kind="deleted", position=7, task_id=3, task=None, version=2, recorded_at=None
        )
    )
    first = _event_executor(schema, "alice", query, event)
    assert first.errors is None
    assert first.data == {
        "taskEvents": {"kind": "DELETED", "cursor": "7", "taskId": "3", "version": 2}
    }
    # The same viewer, document and event object: the result is shared, not computed again.
    payload = event
    shared = _event_executor(schema, "alice", query, payload)
    again = _event_executor(schema, "alice", query, payload)
    assert again is shared
    # Another viewer, or another document, gets a result of its own.
    assert _event_executor(schema, "bob", query, payload) is not shared
    other = "subscription { taskEvents { kind cursor } }"
    assert _event_executor(schema, "alice", other, payload) is not shared
