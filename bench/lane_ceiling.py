"""How much of a GraphQL list's CPU a faster executor could save at most: an upper bound.

Usage: python bench/lane_ceiling.py [--rounds 150] [--repeats 3]

Measures, in one process as bench/inprocess.py does (the real app over ASGI, its real
database), the app CPU of a GraphQL list `tasks(first: 20)` as a multiple of a REST list's,
four ways, alternated `--repeats` times:

- `as built`: the app as it is;
- `prepared root`: what an executor that keeps per-document work could get on the happy
  path. The first execution of a query document goes through graphql-core as built and keeps,
  per root field, its definition, argument values and how the shortcut reads its result; the
  next ones call each root field's resolver (Strawberry's wrapper, so argument conversion
  and permissions stay Strawberry's) with a resolve info made directly, and read the result
  in one call. It has no fallback (a resolver error or an unusual value would break it) and
  its resolve infos carry the first execution's async helpers, so it measures, it does not
  serve;
- `no executor`: graphql-core's execution, Strawberry's field wrapper and the reading of the
  result are replaced, inside Strawberry's `schema.execute`, by a direct call of the same
  operation (`resolvers.tasks.list_tasks`) and a dict made in one comprehension. Strawberry's
  pipeline and every extension hook still run. No executor run through `schema.execute` can
  cost less than this;
- `no GraphQL layers`: the endpoint's call of `schema.execute` itself is replaced the same
  way (the HTTP parsing, the context and the JSON response stay): what a lane that skipped
  Strawberry's pipeline and graphql-core, running nothing else, would cost.

The replacements serve this one document and ignore its text: they are measurements of an
ideal, patched into this process only, never a way to serve requests. bench/README.md ("One
GraphQL executor") says what the numbers mean for issue 12's target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from inspect import isawaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inprocess
import run as bench
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    OperationType,
)
from graphql.execution.collect_fields import collect_fields
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path as ResponsePath

from resolvers import tasks as operations
from resolvers.context import Context
from resolvers.domain import DEFAULT_ORDER, NO_FILTER
from resolvers.pagination import cursor_page
from schema import execution, http

VARIANTS = ("as built", "prepared root", "no executor", "no GraphQL layers")


async def _list_data(context: Context) -> dict[str, Any]:
    """The data of the benchmark's list document, read and written directly."""
    page = await operations.list_tasks(
        context,
        filters=NO_FILTER,
        order=DEFAULT_ORDER,
        page=cursor_page(order=DEFAULT_ORDER, first=20, after=None, last=None, before=None),
    )
    text = execution.utc_datetime_text
    nodes = [
        {
            "id": str(task.id),
            "title": task.title,
            "description": task.description,
            "completed": task.completed,
            "dueDate": None if task.due_date is None else text(task.due_date),
            "createdAt": text(task.created_at),
        }
        for task in page.tasks
    ]
    return {"tasks": {"nodes": nodes}}


class _DirectRun:
    """Stands where graphql-core's executor would: `execute()` calls `execute_operation`."""

    def __init__(self, context: Context) -> None:
        self._context = context

    async def execute_operation(self) -> ExecutionResult:
        return ExecutionResult(await _list_data(self._context), None)


def _no_executor(
    cls: type[execution.ShortcutExecutor],
    _schema: Any,
    _document: Any,
    _root: Any,
    context: Any,
    *_args: Any,
    **_kwargs: Any,
) -> _DirectRun:
    return _DirectRun(context)


# Per document: the document (so that its id is not reused) and what its root fields need.
_PREPARED: dict[int, tuple[DocumentNode, _Prepared]] = {}
_BUILD = execution.ShortcutExecutor.__dict__["build"].__func__


class _Prepared:
    """What every execution of one query document repeats: kept from its first execution."""

    def __init__(self, executor: execution.ShortcutExecutor) -> None:
        schema = executor.schema
        root_type = schema.query_type
        assert root_type is not None
        self.executor = executor  # its fragments, variables and helpers, unchanged per run
        self.root_type = root_type
        self.resolve = executor.strawberry_schema.config.default_resolver
        self.fields: list[tuple[str, GraphQLField, list[Any], dict[str, Any], Any, Any]] = []
        grouped = collect_fields(
            schema,
            executor.fragments,
            executor.variable_values,
            root_type,
            executor.operation,
            False,
        ).grouped_field_set
        for key, details in grouped.items():
            nodes = [detail.node for detail in details]
            definition = root_type.fields[nodes[0].name.value]
            output = definition.type
            object_type = output.of_type if isinstance(output, GraphQLNonNull) else output
            assert isinstance(object_type, GraphQLObjectType)
            selection = executor.collect_subfields(object_type, details).grouped_field_set
            reads = executor._selection_reads(object_type, selection)
            assert reads is not None, "a root field the shortcut cannot read"
            arguments = get_argument_values(definition, nodes[0], executor.variable_values)
            path = ResponsePath(None, key, root_type.name)
            self.fields.append((key, definition, nodes, arguments, path, reads))


class _PreparedRun:
    def __init__(self, prepared: _Prepared, root_value: Any, context: Any) -> None:
        self._prepared = prepared
        self._root_value = root_value
        self._context = context

    async def execute_operation(self) -> ExecutionResult:
        prepared = self._prepared
        executor = prepared.executor
        data: dict[str, Any] = {}
        for key, definition, nodes, arguments, path, reads in prepared.fields:
            info = GraphQLResolveInfo(
                key,
                nodes,
                definition.type,
                prepared.root_type,
                path,
                executor.schema,
                executor.fragment_definitions,
                self._root_value,
                executor.operation,
                executor.variable_values,
                self._context,
                isawaitable,
                None,
                executor.async_helpers,
            )
            assert definition.resolve is not None
            result = definition.resolve(self._root_value, info, **arguments)
            if isawaitable(result):
                result = await result
            data[key] = execution._read(reads, result, prepared.resolve)
        return ExecutionResult(data, None)


def _prepared_root(
    cls: type[execution.ShortcutExecutor],
    schema: Any,
    document: DocumentNode,
    root_value: Any,
    context: Any,
    *args: Any,
    **kwargs: Any,
) -> Any:
    known = _PREPARED.get(id(document))
    if known is not None and known[0] is document:
        return _PreparedRun(known[1], root_value, context)
    executor = _BUILD(cls, schema, document, root_value, context, *args, **kwargs)
    query = isinstance(executor, execution.ShortcutExecutor) and (
        executor.operation.operation is OperationType.QUERY
    )
    if query:
        _PREPARED[id(document)] = (document, _Prepared(executor))
    return executor


async def _no_graphql_layers(
    _endpoint: http.GraphQLEndpoint, _request: Any, _params: Any, context: Context, media: str
) -> Any:
    return http._response({"data": await _list_data(context)}, 200, media)


@contextmanager
def _patched(owner: type, name: str, value: Callable[..., Any]) -> Iterator[None]:
    original = owner.__dict__[name]
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextmanager
def variant(name: str) -> Iterator[None]:
    if name == "prepared root":
        _PREPARED.clear()
        with _patched(execution.ShortcutExecutor, "build", classmethod(_prepared_root)):
            yield
    elif name == "no executor":
        with _patched(execution.ShortcutExecutor, "build", classmethod(_no_executor)):
            yield
    elif name == "no GraphQL layers":
        with _patched(http.GraphQLEndpoint, "_execute", _no_graphql_layers):
            yield
    else:
        yield


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with bench.database(args) as url:
        for repeat in range(args.repeats):
            for name in VARIANTS:
                with variant(name):
                    cpu = asyncio.run(
                        inprocess.measure(url, ["rest_list", "graphql_list"], args.rounds)
                    )
                ratio = cpu["graphql_list"] / cpu["rest_list"]
                ratios[name].append(ratio)
                print(
                    f"repeat {repeat + 1}, {name}: GraphQL list {cpu['graphql_list'] * 1e6:.0f} µs,"
                    f" REST list {cpu['rest_list'] * 1e6:.0f} µs, {ratio:.3f}x",
                    flush=True,
                )
    print("\n| GraphQL list / REST list, app CPU | each repeat | median |\n|---|---|---|")
    for name in VARIANTS:
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios[name])
        print(f"| {name} | {each} | {statistics.median(ratios[name]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
