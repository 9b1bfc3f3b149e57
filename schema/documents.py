"""Parsing and validating GraphQL documents: cached, and refused when over a size limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    GraphQLSyntaxError,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.extensions.max_aliases import create_validator as max_aliases_rule
from strawberry.extensions.query_depth_limiter import create_validator as max_depth_rule
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
CACHE_SIZE = 1024

Parse = Callable[[str], DocumentNode]
Validate = Callable[[GraphQLSchema, str], list[GraphQLError]]


def cached_parser(*, max_bytes: int, max_tokens: int) -> Parse:
    """A parser that refuses oversized documents before doing any work on them."""

    @lru_cache(maxsize=CACHE_SIZE)
    def parse_document(query: str) -> DocumentNode:
        # Exceptions are not cached, and refusals are cheap: nothing big gets parsed.
        size = len(query.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise _too_big(f"The document is {size} bytes; at most {max_bytes} are allowed")
        try:
            return parse(query, max_lexical_tokens=max_tokens)
        except GraphQLSyntaxError as error:
            if error.message.startswith("Syntax Error: Document contains more than"):
                raise _too_big(f"The document has more than {max_tokens} tokens") from None
            raise

    return parse_document


def cached_validator(
    *, parse_document: Parse, max_depth: int, max_aliases: int, introspection: bool
) -> Validate:
    """The spec's rules plus the limits; without introspection, no "Did you mean" either.

    Results are kept by the document's text, whose hash Python computes once, rather than by
    its syntax tree, whose hash walks every node on each lookup.
    """
    rules: tuple[type[ASTValidationRule], ...] = (
        *specified_rules,
        MaybeNullValidationRule,
        OneOfInputValidationRule,
        max_depth_rule(max_depth, should_ignore=None),
        max_aliases_rule(max_aliases),
    )
    if not introspection:
        rules = (*rules, NoSchemaIntrospectionCustomRule)

    @lru_cache(maxsize=CACHE_SIZE)
    def validate_document(schema: GraphQLSchema, query: str) -> list[GraphQLError]:
        document = parse_document(query)
        return validate(schema, document, rules, hide_suggestions=not introspection)

    return validate_document


def _too_big(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": VALIDATION_FAILED})


class CachedDocuments(SchemaExtension):
    """Parses and validates through caches shared by every request to one schema.

    Both happen in the parsing step: one hook instead of two on every request, and Strawberry
    skips its own validation when the errors are already known.
    """

    def __init__(self, *, parse_document: Parse, validate_document: Validate) -> None:
        self._parse = parse_document
        self._validate = validate_document

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        # Strawberry refuses a missing query before parsing starts.
        query = execution.query or ""
        execution.graphql_document = self._parse(query)
        execution.pre_execution_errors = self._validate(execution.schema._schema, query)
        yield
