"""Assemble the Strawberry schema with its extensions and limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext
from strawberry.types.arguments import StrawberryArgument

from schema.documents import CachedDocuments, Parse, Validate, cached_parser, cached_validator
from schema.execution import executor_for
from schema.extensions import AuthenticationGate, ErrorCodes
from schema.hooks import CachedHooksRunner
from schema.mutation import Mutation
from schema.query import Query
from schema.subscription import Subscription, SubscriptionsOnly

Extension = type[SchemaExtension] | Callable[[], SchemaExtension]


@dataclass(frozen=True, slots=True)
class GraphQLConfig:
    """Limits on GraphQL documents and whether the schema can be explored; safe defaults."""

    max_depth: int = 10
    max_aliases: int = 100
    max_tokens: int = 2000
    max_bytes: int = 100_000
    # Off also hides "Did you mean ...?" suggestions, which would reveal the schema anyway.
    introspection: bool = True


DEFAULT_CONFIG = GraphQLConfig()


class ArgumentNames(NameConverter):
    """Strawberry's names, with each argument's GraphQL name worked out once: Strawberry
    converts the name of every argument a resolver declares on every call of it (six for
    `tasks`), about 2% of a GraphQL list's CPU (bench/README.md, "One GraphQL executor").

    What would let us delete it: Strawberry keeping each argument's GraphQL name.
    """

    def __init__(self) -> None:
        super().__init__()
        # By Python name and whether names are camel-cased: the schema's arguments bound it.
        self._argument_names: dict[tuple[str, bool], str] = {}

    def from_argument(self, argument: StrawberryArgument) -> str:
        if argument.graphql_name is not None:
            return argument.graphql_name
        key = (argument.python_name, self.auto_camel_case)
        name = self._argument_names.get(key)
        if name is None:
            name = self._argument_names[key] = super().from_argument(argument)
        return name


class TaskSchema(strawberry.Schema):
    def __init__(
        self,
        *,
        hide_suggestions: bool,
        parse_document: Parse,
        validate_document: Validate,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.execution_context_class = executor_for(self, hide_suggestions=hide_suggestions)
        self._parse_document = parse_document
        self._validate_document = validate_document

    def is_valid_document(self, query: str) -> bool:
        """Whether `query` parses and validates under this schema's limits, through the same
        caches as execution, so that running it next costs nothing more."""
        try:
            return not self._validate_document(self._schema, query)
        except GraphQLError:
            return False

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return CachedHooksRunner(execution_context=execution_context, extensions=extensions)

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Silence Strawberry's own logging: ErrorCodes logs the unexpected errors, and
        expected ones (not found, invalid input) are not worth a traceback."""


def build_schema(
    config: GraphQLConfig = DEFAULT_CONFIG, *, extra_extensions: Sequence[Extension] = ()
) -> TaskSchema:
    """The task schema; parsing and validation are cached for repeated documents.

    `extra_extensions` run after the schema's own, on every request.
    """
    parse_document = cached_parser(max_bytes=config.max_bytes, max_tokens=config.max_tokens)
    validate_document = cached_validator(
        parse_document=parse_document,
        max_depth=config.max_depth,
        max_aliases=config.max_aliases,
        introspection=config.introspection,
    )
    return TaskSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(name_converter=ArgumentNames()),
        hide_suggestions=not config.introspection,
        parse_document=parse_document,
        validate_document=validate_document,
        extensions=[
            # Factories: Strawberry builds extensions per request; the caches they use
            # belong to this schema and are shared by all its requests.
            lambda: CachedDocuments(
                parse_document=parse_document, validate_document=validate_document
            ),
            AuthenticationGate,
            ErrorCodes,
            SubscriptionsOnly,
            *extra_extensions,
        ],
    )


@lru_cache(maxsize=8)
def schema_for(config: GraphQLConfig) -> TaskSchema:
    """The schema of `config`, built once per process: a built schema is never changed, and
    building one takes about 12 ms, which tests that create hundreds of apps would pay each
    time."""
    return build_schema(config)
