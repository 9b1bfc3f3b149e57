"""Schema extensions: the authentication gate, error codes, and masking of unexpected errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import ExecutionResult, GraphQLError, OperationDefinitionNode
from strawberry.extensions import SchemaExtension

from resolvers.context import Context
from resolvers.errors import AppError

log = logging.getLogger(__name__)

UNAUTHENTICATED_MESSAGE = "Authentication required: send Authorization: Bearer <token>"
MASKED_MESSAGE = "Internal server error"


class AuthenticationGate(SchemaExtension):
    """Refuse, before execution, any operation without a viewer that reads more than the schema.

    Checking up front means an anonymous request never produces partial data, so the HTTP
    status can be a plain 401; introspection stays open so GraphiQL can load its docs.
    """

    def on_execute(self) -> Iterator[None]:
        execution = self.execution_context
        context = execution.context
        if isinstance(context, Context) and context.principal is None and _reads_data(execution):
            error = GraphQLError(UNAUTHENTICATED_MESSAGE, extensions={"code": "UNAUTHENTICATED"})
            execution.result = ExecutionResult(data=None, errors=[error])
        yield


def _reads_data(execution: object) -> bool:
    document = getattr(execution, "graphql_document", None)
    name = getattr(execution, "operation_name", None)
    if document is None:
        return True
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if name is not None and (definition.name is None or definition.name.value != name):
            continue
        for selection in definition.selection_set.selections:
            field_name = getattr(getattr(selection, "name", None), "value", None)
            # Fragments at the root could select anything: treat them as reading data.
            if field_name is None or not field_name.startswith("__"):
                return True
    return False


class ErrorCodes(SchemaExtension):
    """Resolver errors get `extensions.code`; unexpected ones are logged and masked.

    Strawberry does not resume this hook after a syntax error, which is one more reason
    request errors are classified by the HTTP layer rather than here.
    """

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        context = self.execution_context.context
        request_id = context.request_id if isinstance(context, Context) else "-"
        result.errors = [coded_error(error, request_id) for error in result.errors]


def coded_error(error: GraphQLError, request_id: str) -> GraphQLError:
    """The error as clients see it: with its code, or masked and logged when unexpected."""
    original = error.original_error
    if isinstance(original, AppError):
        extensions = {**(error.extensions or {}), "code": original.code}
        return _copy(error, error.message, extensions)
    if error.path is None:
        # Raised before any resolver ran (validation, variables): caused by the request
        # itself and safe to show; the HTTP layer names its code.
        return error
    log.error(
        "unexpected error in GraphQL resolver (request %s) at %s",
        request_id,
        ".".join(map(str, error.path)),
        exc_info=original or error,
    )
    return _copy(error, MASKED_MESSAGE, {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id})


def _copy(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=extensions,
    )
