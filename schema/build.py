"""Assemble the Strawberry schema with its extensions and limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.types import ExecutionContext

from schema.documents import CachedDocuments, cached_parser, cached_validator
from schema.extensions import AuthenticationGate, ErrorCodes
from schema.mutation import Mutation
from schema.plans import CompiledOperations
from schema.query import Query
from schema.subscription import Subscription, SubscriptionsOnly


@dataclass(frozen=True, slots=True)
class GraphQLConfig:
    """Limits on GraphQL documents and whether the schema can be explored; safe defaults."""

    max_depth: int = 10
    max_aliases: int = 100
    max_tokens: int = 2000
    max_bytes: int = 100_000
    # Off also hides "Did you mean ...?" suggestions, which would reveal the schema anyway.
    introspection: bool = True
    # Run covered operations through compiled plans (schema/plans.py) instead of the executor.
    compiled: bool = True


DEFAULT_CONFIG = GraphQLConfig()


class TaskSchema(strawberry.Schema):
    # Set by build_schema when compiled plans are on; the endpoint tries them first.
    compiled: CompiledOperations | None = None

    def __init__(self, *, hide_suggestions: bool, **options: Any) -> None:
        super().__init__(**options)
        self.hide_suggestions = hide_suggestions

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Silence Strawberry's own logging: ErrorCodes logs the unexpected errors, and
        expected ones (not found, invalid input) are not worth a traceback."""

    def _get_custom_context_kwargs(
        self, operation_extensions: dict[str, Any] | None = None, *, sync: bool = False
    ) -> dict[str, Any]:
        # These reach graphql-core's execute(), whose variable errors also make suggestions.
        kwargs = super()._get_custom_context_kwargs(operation_extensions, sync=sync)
        return {**kwargs, "hide_suggestions": self.hide_suggestions}


def build_schema(config: GraphQLConfig = DEFAULT_CONFIG) -> strawberry.Schema:
    """The task schema; parsing and validation are cached for repeated documents."""
    parse_document = cached_parser(max_bytes=config.max_bytes, max_tokens=config.max_tokens)
    validate_document = cached_validator(
        max_depth=config.max_depth,
        max_aliases=config.max_aliases,
        introspection=config.introspection,
    )
    schema = TaskSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        hide_suggestions=not config.introspection,
        extensions=[
            # Factories: Strawberry builds extensions per request; the caches they use
            # belong to this schema and are shared by all its requests.
            lambda: CachedDocuments(
                parse_document=parse_document, validate_document=validate_document
            ),
            AuthenticationGate,
            ErrorCodes,
            SubscriptionsOnly,
        ],
    )
    if config.compiled:
        schema.compiled = CompiledOperations(
            schema._schema,
            parse_document=parse_document,
            validate_document=validate_document,
            hide_suggestions=schema.hide_suggestions,
        )
    return schema
