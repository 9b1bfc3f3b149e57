"""Assemble the Strawberry schema with its extensions."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    MaxAliasesLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.types import ExecutionContext

from schema.extensions import AuthenticationGate, ErrorCodes
from schema.mutation import Mutation
from schema.query import Query

# The deepest honest query is tasks.edges.node.field; every alias of a root field may open a
# database connection, so an alias bomb would drain the pool for everyone else.
MAX_QUERY_DEPTH = 10
MAX_ALIASES = 20


class TaskSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Silence Strawberry's own logging: ErrorCodes logs the unexpected errors, and
        expected ones (not found, invalid input) are not worth a traceback."""


def build_schema() -> strawberry.Schema:
    """The task schema, with parsing and validation cached for repeated documents."""
    return TaskSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            # Factories: Strawberry builds extensions per request; these caches live at
            # module level, so every request shares them.
            lambda: ParserCache(maxsize=1024),
            lambda: ValidationCache(maxsize=1024),
            lambda: QueryDepthLimiter(max_depth=MAX_QUERY_DEPTH),
            lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
            AuthenticationGate,
            ErrorCodes,
        ],
    )
