"""Queries run again from what their first execution worked out, graphql-core taking over at
anything unusual.

Every execution of a query document repeats work that only the document decides: finding
its operation, building graphql-core's executor, collecting the root fields, looking up each
field's definition and its literal arguments, and walking graphql-core's completion of each
root object down to the shortcut's read of it (schema/execution.py). For a list of tasks
that is about 11% of its app CPU (bench/README.md, "One GraphQL executor"). So the first
execution of a query whose root fields are all objects the shortcut reads is kept
(`PreparedQueries`), and the next ones are a `PreparedRun`: each root field's resolver is
called (Strawberry's wrapper, so argument conversion and permissions stay Strawberry's) with
the resolve info Strawberry's executor would build, and its result is read in one call.

graphql-core keeps everything that can go wrong: variables are coerced by its own
`get_variable_values` (its errors are the response, as its `build` returns them); and when a
root resolver raises or returns a value the read refuses, graphql-core's executor is built
for the request with a middleware that hands each root field the outcome already obtained,
so no resolver runs twice and every message, path and null is graphql-core's.

Only queries are prepared: a mutation's fields run one after another, and a subscription's
events go through their own executor copy. A request with middleware (an extension with a
`resolve` hook), an abort signal or execution hooks is never run this way.

What would let us delete it: a graphql-core executor that keeps its per-document work (as
graphql-jit does for GraphQL.js).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    OperationDefinitionNode,
    OperationType,
    get_argument_values,
    get_variable_values,
)
from graphql.execution import Executor, MiddlewareManager
from graphql.execution.collect_fields import collect_fields
from graphql.pyutils import AwaitableOrValue, Path, gather_with_cancel
from graphql.type.definition import GraphQLResolveInfoHelpers

if TYPE_CHECKING:
    from schema.execution import Read, ShortcutExecutor

# graphql-core's `build` is called with its first parameters by position; their names, read
# from its signature, let a prepared run read them and pass them on by name.
_PARAMETERS = inspect.signature(Executor.build).parameters
BUILD_PARAMETERS = [name for name, p in _PARAMETERS.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
_BUILD_NAMES = {name for name, p in _PARAMETERS.items() if p.kind is not p.VAR_KEYWORD}
_MAX_COERCION_ERRORS = _PARAMETERS["max_coercion_errors"].default
# Arguments a prepared run leaves to graphql-core's executor whenever they are given.
_UNPREPARED_WHEN_GIVEN = (
    "field_resolver",
    "type_resolver",
    "subscribe_field_resolver",
    "abort_signal",
    "hooks",
)
# The one argument Strawberry adds for its executor: the request's `extensions`.
_STRAWBERRY_NAMES = {"operation_extensions"}
_PREPARED_QUERIES = 1024


class PreparedField(NamedTuple):
    """A root field: its response key, definition, nodes, path, argument values (None when
    they name a variable) and how the shortcut reads its object."""

    key: str
    definition: GraphQLField
    nodes: list[FieldNode]
    path: Path
    arguments: dict[str, Any] | None
    reads: list[Read]
    non_null: bool


class PreparedQuery(NamedTuple):
    document: DocumentNode  # kept so that its id, the key, is not reused
    executor_class: type[ShortcutExecutor]
    operation: OperationDefinitionNode
    root_type: GraphQLObjectType
    fragment_definitions: dict[str, Any]
    fields: list[PreparedField]

    def run(self, executor_class: type[ShortcutExecutor], named: dict[str, Any]) -> Any:
        """A prepared run for this request, graphql-core's variable errors, or None when the
        request is graphql-core's to build (an unusual request, or another executor class)."""
        if self.executor_class is not executor_class or not _plain_request(named):
            return None
        variable_values = get_variable_values(
            named["schema"],
            self.operation.variable_definitions or (),
            named.get("raw_variable_values") or {},
            max_errors=named.get("max_coercion_errors", _MAX_COERCION_ERRORS),
            hide_suggestions=executor_class.suggestions_hidden,
        )
        if isinstance(variable_values, list):
            return variable_values
        return PreparedRun(self, named, variable_values)


class PreparedQueries:
    """The prepared queries of one schema, by document and operation name. A document that
    cannot be prepared is kept as None, so that it is looked at once. Past the bound every
    entry is dropped: a service sees a few distinct documents."""

    def __init__(self, size: int = _PREPARED_QUERIES) -> None:
        self._size = size
        self._queries: dict[tuple[int, str | None], tuple[DocumentNode, PreparedQuery | None]] = {}

    def lookup(self, named: dict[str, Any]) -> tuple[bool, PreparedQuery | None]:
        """Whether this request's query has been looked at, and its preparation if it has one."""
        document = named["document"]
        entry = self._queries.get((id(document), named.get("operation_name")))
        if entry is None or entry[0] is not document:
            return False, None
        return True, entry[1]

    def prepare(self, executor: ShortcutExecutor, named: dict[str, Any]) -> None:
        """Keeps what every execution of this request's query repeats, or that it has none;
        nothing for a request a prepared run would not serve."""
        if not _plain_request(named):
            return
        if len(self._queries) >= self._size:
            self._queries.clear()
        document = named["document"]
        prepared = _prepared(executor, document)
        self._queries[(id(document), named.get("operation_name"))] = (document, prepared)


def _plain_request(named: dict[str, Any]) -> bool:
    """Whether graphql-core would run this request with nothing a prepared run leaves out."""
    middleware = named.get("middleware")
    if middleware is not None and not (
        isinstance(middleware, MiddlewareManager) and not middleware.middlewares
    ):
        return False
    for name in _UNPREPARED_WHEN_GIVEN:
        if named.get(name) is not None:
            return False
    return named.keys() <= _BUILD_NAMES | _STRAWBERRY_NAMES


def _prepared(executor: ShortcutExecutor, document: DocumentNode) -> PreparedQuery | None:
    """The root fields of the executor's query, when each is an object the shortcut reads;
    None for anything else."""
    operation = executor.operation
    schema = executor.schema
    root_type = schema.query_type
    if (
        operation.operation is not OperationType.QUERY
        or root_type is None
        or operation.directives
        or not executor.collects_the_same_each_time()
    ):
        return None
    try:
        collected = collect_fields(
            schema,
            executor.fragments,
            executor.variable_values,
            root_type,
            operation,
            executor.hide_suggestions,
        )
    except (GraphQLError, RecursionError):
        return None
    fields = []
    for key, details in collected.grouped_field_set.items():
        node = details[0].node
        definition = schema.get_field(root_type, node.name.value)
        if definition is None or definition.resolve is None:
            return None
        output = definition.type
        non_null = isinstance(output, GraphQLNonNull)
        object_type = output.of_type if isinstance(output, GraphQLNonNull) else output
        if not isinstance(object_type, GraphQLObjectType):
            return None
        reads = executor.object_reads(object_type, details)
        if reads is None:
            return None
        arguments = None
        if not operation.variable_definitions:
            try:
                arguments = get_argument_values(
                    definition, node, None, None, executor.hide_suggestions
                )
            except GraphQLError:
                return None
        path = Path(None, key, root_type.name)
        nodes = [detail.node for detail in details]
        fields.append(PreparedField(key, definition, nodes, path, arguments, reads, non_null))
    return PreparedQuery(
        document, type(executor), operation, root_type, executor.fragment_definitions, fields
    )


class PreparedRun:
    """One execution of a prepared query. graphql-core's `execute` calls `execute_operation`
    on what `build` returns; Strawberry's `build_resolve_info` reads the attributes below."""

    abort_signal = None

    def __init__(self, prepared: PreparedQuery, named: dict[str, Any], variable_values: Any):
        self._prepared = prepared
        self._named = named
        self.schema = named["schema"]
        self.fragment_definitions = prepared.fragment_definitions
        self.operation = prepared.operation
        self.root_value = named.get("root_value")
        self.context_value = named.get("context_value")
        self.variable_values = variable_values
        self.is_awaitable = named.get("is_awaitable") or inspect.isawaitable
        self.operation_extensions = named.get("operation_extensions")
        # What graphql-core's executor offers resolvers: awaiting together, cancelling the
        # rest on a failure; and settling work a resolver leaves behind.
        self.async_helpers = GraphQLResolveInfoHelpers(gather=_gather, track=self._track)
        self._background: set[asyncio.Future[Any]] | None = None

    def execute_operation(self) -> AwaitableOrValue[ExecutionResult]:
        """The response: at once when no resolver returned an awaitable, as graphql-core's."""
        outcomes = [self._resolve(field) for field in self._prepared.fields]
        pending = [index for index, outcome in enumerate(outcomes) if self.is_awaitable(outcome)]
        if not pending:
            return self._response(outcomes)
        return self._settled_response(outcomes, pending)

    async def _settled_response(self, outcomes: list[Any], pending: list[int]) -> ExecutionResult:
        if len(pending) == 1:
            index = pending[0]
            try:
                outcomes[index] = await outcomes[index]
            except Exception as error:
                outcomes[index] = error
        else:
            settled = await asyncio.gather(
                *(outcomes[index] for index in pending), return_exceptions=True
            )
            for index, outcome in zip(pending, settled, strict=True):
                outcomes[index] = outcome
        response = self._response(outcomes)
        if isinstance(response, ExecutionResult):
            return response
        return await response

    def _response(self, outcomes: list[Any]) -> AwaitableOrValue[ExecutionResult]:
        data: dict[str, Any] = {}
        read_object = self._prepared.executor_class.read_object
        for field, outcome in zip(self._prepared.fields, outcomes, strict=True):
            if outcome is None and not field.non_null:
                data[field.key] = None
                continue
            read = None if isinstance(outcome, BaseException) else read_object(field.reads, outcome)
            if read is None:
                return self._by_graphql_core(outcomes)
            data[field.key] = read
        return ExecutionResult(data, None)

    def _resolve(self, field: PreparedField) -> Any:
        """The resolver's result (maybe awaitable), or the exception it raised."""
        executor_class = self._prepared.executor_class
        try:
            arguments = field.arguments
            if arguments is None:
                arguments = get_argument_values(
                    field.definition,
                    field.nodes[0],
                    self.variable_values,
                    None,
                    executor_class.suggestions_hidden,
                )
            info = self.resolve_info(field)
            return field.definition.resolve(self.root_value, info, **arguments)  # type: ignore[misc]
        except Exception as error:
            return error

    def resolve_info(self, field: PreparedField) -> GraphQLResolveInfo[Any]:
        """Strawberry's own resolve info for a root field, made from this run's attributes."""
        return self._prepared.executor_class.build_resolve_info(
            self,  # type: ignore[arg-type]
            field.definition,
            field.nodes,
            self._prepared.root_type,
            field.path,
        )

    def _by_graphql_core(self, outcomes: list[Any]) -> AwaitableOrValue[ExecutionResult]:
        """The response graphql-core makes of these outcomes: its executor, built for this
        request, with a middleware that hands each root field its outcome."""
        replayed = {
            field.key: outcome
            for field, outcome in zip(self._prepared.fields, outcomes, strict=True)
        }

        def replay(
            next_: Callable[..., Any], root: Any, info: GraphQLResolveInfo[Any], **args: Any
        ) -> Any:
            if info.path.prev is None and info.path.key in replayed:
                outcome = replayed.pop(str(info.path.key))
                if isinstance(outcome, BaseException):
                    raise outcome
                return outcome
            return next_(root, info, **args)

        named = {**self._named, "middleware": [replay]}
        executor_class = self._prepared.executor_class
        executor = executor_class.build_by_graphql_core(named)
        if isinstance(executor, list):  # its variables were coerced above: never, in practice
            return ExecutionResult(None, executor)
        return executor.execute_operation()  # type: ignore[no-any-return]

    def _track(self, values: Sequence[Any]) -> None:
        awaitables: list[Awaitable[Any]] = [value for value in values if self.is_awaitable(value)]
        if not awaitables:
            return
        if self._background is None:
            self._background = set()
        future = asyncio.gather(*awaitables, return_exceptions=True)
        self._background.add(future)
        future.add_done_callback(self._background.discard)


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    return gather_with_cancel(*values)
