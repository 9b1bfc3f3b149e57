"""A small schema run by the shortcut executor, whose root resolvers hand it any value a
test chooses: what the executor (schema/execution.py) reads itself and what it leaves to
graphql-core, and what prepared runs (schema/prepared.py) hand back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult

from schema.documents import CachedDocuments, cached_parser, cached_validator
from schema.execution import executor_for
from schema.prepared import PreparedRun


@strawberry.type
class Row:
    name: str
    count: int
    note: str | None
    when: datetime | None


@strawberry.type
class Rows:
    rows: list[Row]
    first: Row | None


@dataclass
class Source:
    name: object = "a"
    count: object = 1
    note: object = None
    when: object = None


def odd_schemas(rows: list[Source]) -> tuple[strawberry.Schema, strawberry.Schema]:
    def rows_of(info: strawberry.Info) -> Rows:
        # A test may put any value in the list or the object (its context's "rows" and
        # "first"), or make a root field fail (its response key in "fail").
        given = info.context if isinstance(info.context, dict) else {}
        if info.path.key in given.get("fail", ()):
            raise ValueError(f"{info.path.key} failed")
        first = given.get("first", rows[0] if rows else None)
        return Rows(rows=given.get("rows", rows), first=first)

    @strawberry.type
    class Query:
        @strawberry.field
        def data(self, info: strawberry.Info) -> Rows:
            return rows_of(info)

        @strawberry.field
        async def later(self, info: strawberry.Info, first: int | None = None) -> Rows | None:
            # The same as `data`, awaited, nullable (null for a response key in "none") and
            # with an argument: how many rows to give.
            given = info.context if isinstance(info.context, dict) else {}
            if info.path.key in given.get("none", ()):
                return None
            given_rows = rows_of(info)
            return Rows(rows=given_rows.rows[:first], first=given_rows.first)

    return with_shortcut(Query), strawberry.Schema(query=Query)


def with_shortcut(query: type, *extensions: Any) -> strawberry.Schema:
    """A schema run by the shortcut executor, with one document per query text as the app's
    cached parser gives: the first execution of a query prepares the next ones."""
    parse = cached_parser(max_bytes=100_000, max_tokens=2_000)
    validate = cached_validator(
        parse_document=parse, max_depth=10, max_aliases=10, introspection=True
    )
    schema = strawberry.Schema(
        query=query,
        extensions=[
            lambda: CachedDocuments(parse_document=parse, validate_document=validate),
            *extensions,
        ],
    )
    schema.execution_context_class = executor_for(schema, hide_suggestions=False)
    return schema


async def executed_twice(
    shortcut: strawberry.Schema, query: str, **options: Any
) -> ExecutionResult:
    """The second of two executions of `query`, checked to answer as the first did: the first
    is graphql-core's, the second a prepared run wherever the query can be one."""
    first = await shortcut.execute(query, **options)
    second = await shortcut.execute(query, **options)
    assert second.data == first.data
    assert [e.formatted for e in second.errors or ()] == [e.formatted for e in first.errors or ()]
    return second


def count_prepared_runs(monkeypatch: pytest.MonkeyPatch) -> list[PreparedRun]:
    """The prepared runs executed from now on (schema/prepared.py), in a list."""
    runs: list[PreparedRun] = []
    execute = PreparedRun.execute_operation

    def counting(self: PreparedRun) -> Any:
        runs.append(self)
        return execute(self)

    monkeypatch.setattr(PreparedRun, "execute_operation", counting)
    return runs
