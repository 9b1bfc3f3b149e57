"""How much of a GraphQL list's CPU a faster executor could save at most: an upper bound.

Usage: python bench/lane_ceiling.py [--rounds 150] [--repeats 3] [--pieces]

Measures, in one process as bench/inprocess.py does (the real app over ASGI, its real
database), the app CPU of a GraphQL list `tasks(first: 20)` as a multiple of a REST list's,
three ways (seven with `--pieces`), alternated `--repeats` times:

- `as built`: the app as it is (a query run again is a prepared run, schema/prepared.py);
- `no executor`: graphql-core's execution, Strawberry's field wrapper and the reading of the
  result are replaced, inside Strawberry's `schema.execute`, by a direct call of the same
  operation (`resolvers.tasks.list_tasks`) and a dict made in one comprehension. Strawberry's
  pipeline and every extension hook still run. No executor run through `schema.execute` can
  cost less than this;
- `no GraphQL layers`: the endpoint's call of `schema.execute` itself is replaced the same
  way (the HTTP parsing, the context and the JSON response stay): what a lane that skipped
  Strawberry's pipeline and graphql-core, running nothing else, would cost.

With `--pieces`, four more: three each take one piece out of the app as built, to bound what
work on that piece alone could ever save, and one takes all three:

- `no field wrapper`: a prepared run calls the `tasks` resolver's own function, with
  Strawberry's `Info`, instead of Strawberry's wrapper around it (argument conversion, field
  extensions, exception handlers);
- `ideal read`: the 20 tasks are read by one dict display per task for this selection, as
  code generated per selection would at best;
- `one extension`: the schema runs only its document cache, not its authentication gate,
  error codes and subscriptions-only checks, as if they cost nothing;
- `all three`: the three at once.

The replacements serve this one document and ignore its text: they are measurements of an
ideal, patched into this process only, never a way to serve requests. bench/README.md ("One
GraphQL executor") says what the numbers mean for issue 12's target.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import inprocess
import run as bench
from graphql import (
    ExecutionResult,
)
from strawberry.types import Info

from resolvers import tasks as operations
from resolvers.context import Context
from resolvers.domain import DEFAULT_ORDER, NO_FILTER
from resolvers.pagination import cursor_page
from schema import build, execution, http, prepared
from schema.documents import CachedDocuments
from schema.query import Query

VARIANTS = ("as built", "no executor", "no GraphQL layers")
PIECES = ("no field wrapper", "ideal read", "one extension", "all three")
_LIST_KEYS = ("id", "title", "description", "completed", "dueDate", "createdAt")


async def _list_data(context: Context) -> dict[str, Any]:
    """The data of the benchmark's list document, read and written directly."""
    page = await operations.list_tasks(
        context,
        filters=NO_FILTER,
        order=DEFAULT_ORDER,
        page=cursor_page(order=DEFAULT_ORDER, first=20, after=None, last=None, before=None),
    )
    return {"tasks": {"nodes": _nodes(page.tasks)}}


def _nodes(tasks: list[Any]) -> list[dict[str, Any]]:
    """The list document's selection of each task, in one dict display per task."""
    text = execution.utc_datetime_text
    return [
        {
            "id": str(task.id),
            "title": task.title,
            "description": task.description,
            "completed": task.completed,
            "dueDate": None if task.due_date is None else text(task.due_date),
            "createdAt": text(task.created_at),
        }
        for task in tasks
    ]


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


async def _no_graphql_layers(
    _endpoint: http.GraphQLEndpoint, _request: Any, _params: Any, context: Context, media: str
) -> Any:
    return http._response({"data": await _list_data(context)}, 200, media)


_TASKS_FIELD = Query.__strawberry_definition__.get_field("tasks")  # type: ignore[attr-defined]
_resolve_wrapped = prepared.PreparedRun._resolve


def _resolve_unwrapped(run: prepared.PreparedRun, field: prepared.PreparedField) -> Any:
    """The `tasks` root field's own function, called without Strawberry's wrapper."""
    if field.key != "tasks" or field.arguments is None:
        return _resolve_wrapped(run, field)
    info = run.resolve_info(field)
    function = _TASKS_FIELD.base_resolver.wrapped_func
    return function(None, Info(_raw_info=info, _field=_TASKS_FIELD), **field.arguments)


_read_items = execution._read_items


def _ideal_read(reads: list[Any], items: list[Any], resolve: Any) -> Any:
    """The benchmark's selection of tasks read by one dict display each; others as built."""
    if tuple(read[0] for read in reads) != _LIST_KEYS:
        return _read_items(reads, items, resolve)
    return _nodes(items)


_get_extensions = build.TaskSchema.get_extensions


def _document_cache_only(schema: build.TaskSchema, sync: bool = False) -> list[Any]:
    extensions = _get_extensions(schema, sync)
    return [extension for extension in extensions if isinstance(extension, CachedDocuments)]


_MISSING = object()


@contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    """`owner.name` is `value` meanwhile; an attribute it only inherited is inherited again."""
    original = owner.__dict__.get(name, _MISSING)
    setattr(owner, name, value)
    try:
        yield
    finally:
        if original is _MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


@contextmanager
def variant(name: str) -> Iterator[None]:
    if name == "no executor":
        with _patched(execution.ShortcutExecutor, "build", classmethod(_no_executor)):
            yield
    elif name == "no GraphQL layers":
        with _patched(http.GraphQLEndpoint, "_execute", _no_graphql_layers):
            yield
    elif name in PIECES:
        with ExitStack() as pieces:
            if name in ("no field wrapper", "all three"):
                pieces.enter_context(_patched(prepared.PreparedRun, "_resolve", _resolve_unwrapped))
            if name in ("ideal read", "all three"):
                pieces.enter_context(_patched(execution, "_read_items", _ideal_read))
            if name in ("one extension", "all three"):
                pieces.enter_context(
                    _patched(build.TaskSchema, "get_extensions", _document_cache_only)
                )
            yield
    else:
        yield


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--pieces", action="store_true", help="also take out one piece at a time (see above)"
    )
    args = parser.parse_args()
    names = VARIANTS + PIECES if args.pieces else VARIANTS
    ratios: dict[str, list[float]] = {name: [] for name in names}
    with bench.database(args) as url:
        for repeat in range(args.repeats):
            for name in names:
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
    for name in names:
        each = ", ".join(f"{ratio:.2f}" for ratio in ratios[name])
        print(f"| {name} | {each} | {statistics.median(ratios[name]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
