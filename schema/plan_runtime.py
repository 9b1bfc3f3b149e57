"""Running compiled GraphQL plans: graphql-core's execution semantics, minus its per-field work."""

from __future__ import annotations

from asyncio import Future, ensure_future, gather
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, cast

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    located_error,
)
from graphql.execution.values import VariableValues, get_argument_values
from graphql.pyutils import Path, Undefined, gather_with_cancel, inspect, is_awaitable, is_iterable
from graphql.type.definition import GraphQLResolveInfo, GraphQLResolveInfoHelpers

ResponsePath = tuple[str | int, ...]
Resolve = Callable[..., Any]


class Run:
    """One execution of a plan: the request's context and variables, and the errors so far."""

    __slots__ = ("_nulled", "context", "errors", "operation", "variables")

    def __init__(self, operation: Operation, context: Any, variables: VariableValues) -> None:
        self.operation = operation
        self.context = context
        self.variables = variables
        self.errors: list[GraphQLError] = []
        self._nulled: set[ResponsePath | None] = set()

    def field_error(
        self, raw: Exception, nodes: list[FieldNode], path: ResponsePath, non_null: bool
    ) -> Any:
        """Locate an error at `path`: raised on when the position may not be null, else kept
        and the position's value is null."""
        error = located_error(raw, nodes, list(path))
        if non_null:
            raise error
        self.add(error, path)
        return None

    def add(self, error: GraphQLError, path: ResponsePath | None) -> None:
        # As graphql-core does: an error beneath a position already nulled by another is dropped,
        # since that position's siblings may still finish after the error propagated.
        nulled = self._nulled
        if None in nulled:
            return
        if path is not None and any(path[:n] in nulled for n in range(1, len(path) + 1)):
            return
        nulled.add(path)
        self.errors.append(error)

    def info(self, field: ResolverField, path: ResponsePath) -> GraphQLResolveInfo[Any]:
        """The info graphql-core would give the resolver, as Strawberry builds it."""
        graphql_path: Path | None = None
        for key in path[:-1]:
            graphql_path = Path(graphql_path, key, None)
        operation = self.operation
        return GraphQLResolveInfo(
            field.name,
            field.nodes,
            field.definition.type,
            field.parent_type,
            Path(graphql_path, path[-1], field.parent_type.name),
            operation.schema,
            operation.fragment_definitions,
            None,
            operation.definition,
            # Strawberry hands resolvers the coerced dict, not graphql-core's container.
            cast(VariableValues, self.variables.coerced),
            self.context,
            is_awaitable,
            None,
            _HELPERS,
        )


class Operation:
    """What every resolver's info names: the schema, the operation and its fragments."""

    __slots__ = ("definition", "fragment_definitions", "hide_suggestions", "schema")

    def __init__(
        self,
        schema: GraphQLSchema,
        definition: OperationDefinitionNode,
        fragment_definitions: dict[str, FragmentDefinitionNode],
        hide_suggestions: bool,
    ) -> None:
        self.schema = schema
        self.definition = definition
        self.fragment_definitions = fragment_definitions
        self.hide_suggestions = hide_suggestions


def _track(values: Sequence[Any]) -> None:
    """Settle a resolver's background work, as graphql-core's executor does."""
    awaitables = [value for value in values if is_awaitable(value)]
    if awaitables:
        task = ensure_future(gather(*awaitables, return_exceptions=True))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[Future[Any]] = set()
_HELPERS = GraphQLResolveInfoHelpers(
    gather=lambda values: gather_with_cancel(*values), track=_track
)


class Completer:
    """Turns a resolved value into response data for one output type."""

    __slots__ = ("is_async",)

    def __init__(self, is_async: bool) -> None:
        self.is_async = is_async

    def complete(self, run: Run, value: Any, path: ResponsePath) -> Any:
        raise NotImplementedError


class LeafCompleter(Completer):
    """A scalar or enum, serialised by the schema's own type."""

    __slots__ = ("coerce", "leaf_type")

    def __init__(self, leaf_type: GraphQLLeafType) -> None:
        super().__init__(is_async=False)
        self.leaf_type = leaf_type
        self.coerce = leaf_type.coerce_output_value

    def complete(self, run: Run, value: Any, path: ResponsePath) -> Any:
        if value is None or value is Undefined:
            return None
        coerced = self.coerce(value)
        if coerced is None or coerced is Undefined:
            raise TypeError(leaf_message(self.leaf_type, value, coerced))
        return coerced


def leaf_message(leaf_type: GraphQLLeafType, value: Any, coerced: Any) -> str:
    return (
        f"Expected `{inspect(leaf_type)}.coerce_output_value({inspect(value)})` to return"
        f" non-nullable value, returned: {inspect(coerced)}"
    )


class NonNullCompleter(Completer):
    """The inner type's completion, which may not be null."""

    __slots__ = ("inner", "message")

    def __init__(self, inner: Completer, message: str) -> None:
        super().__init__(is_async=inner.is_async)
        self.inner = inner
        self.message = message

    def complete(self, run: Run, value: Any, path: ResponsePath) -> Any:
        completed = self.inner.complete(run, value, path)
        if self.is_async:
            return self._checked(completed)
        if completed is None:
            raise TypeError(self.message)
        return completed

    async def _checked(self, completed: Awaitable[Any]) -> Any:
        value = await completed
        if value is None:
            raise TypeError(self.message)
        return value


class ListCompleter(Completer):
    """Each item completed with the item type; an item's error nulls it or the whole list."""

    __slots__ = ("item", "item_non_null", "message", "nodes")

    def __init__(self, item: Completer, nodes: list[FieldNode], message: str) -> None:
        super().__init__(is_async=item.is_async)
        self.item = item
        self.item_non_null = isinstance(item, NonNullCompleter)
        self.nodes = nodes
        self.message = message

    def complete(self, run: Run, value: Any, path: ResponsePath) -> Any:
        if self.is_async:
            return self._complete_async(run, value, path)
        if value is None or value is Undefined:
            return None
        if not is_iterable(value):
            raise GraphQLError(self.message)
        item, items = self.item, []
        for index, entry in enumerate(value):
            try:
                items.append(item.complete(run, entry, (*path, index)))
            except Exception as raw:
                items.append(run.field_error(raw, self.nodes, (*path, index), self.item_non_null))
        return items

    async def _complete_async(self, run: Run, value: Any, path: ResponsePath) -> Any:
        if value is None or value is Undefined:
            return None
        if not is_iterable(value):
            raise GraphQLError(self.message)
        items: list[Any] = []
        indexes: list[int] = []
        pending: list[Coroutine[Any, Any, Any]] = []
        for index, entry in enumerate(value):
            item_path = (*path, index)
            try:
                completed = self.item.complete(run, entry, item_path)
            except Exception as raw:
                try:
                    items.append(run.field_error(raw, self.nodes, item_path, self.item_non_null))
                except GraphQLError:
                    _close(pending)
                    raise
                continue
            items.append(None)
            indexes.append(index)
            pending.append(self._guarded(run, completed, item_path))
        for index, item in zip(indexes, await _gather(pending), strict=True):
            items[index] = item
        return items

    async def _guarded(self, run: Run, completed: Awaitable[Any], path: ResponsePath) -> Any:
        try:
            return await completed
        except Exception as raw:
            return run.field_error(raw, self.nodes, path, self.item_non_null)


class ObjectCompleter(Completer):
    """An object type's selected fields, in response order."""

    __slots__ = ("fields",)

    def __init__(self, fields: list[Field]) -> None:
        super().__init__(is_async=any(field.is_async for field in fields))
        self.fields = fields

    def complete(self, run: Run, value: Any, path: ResponsePath) -> Any:
        if self.is_async:
            return self._execute_async(run, value, path, allow_none=False)
        if value is None or value is Undefined:
            return None
        return self.execute_sync(run, value, path)

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        """The fields on `source` even when it is None, as for the root value."""
        if self.is_async:
            return self._execute_async(run, source, path, allow_none=True)
        return self.execute_sync(run, source, path)

    def execute_sync(self, run: Run, source: Any, path: ResponsePath) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for field in self.fields:
            try:
                data[field.key] = field.execute(run, source, path)
            except Exception as raw:
                data[field.key] = run.field_error(
                    raw, field.nodes, (*path, field.key), field.non_null
                )
        return data

    async def _execute_async(
        self, run: Run, source: Any, path: ResponsePath, *, allow_none: bool
    ) -> dict[str, Any] | None:
        if not allow_none and (source is None or source is Undefined):
            return None
        # Like graphql-core: synchronous fields complete in order, then the others concurrently.
        data: dict[str, Any] = {}
        keys: list[str] = []
        pending: list[Coroutine[Any, Any, Any]] = []
        for field in self.fields:
            try:
                value = field.execute(run, source, path)
            except Exception as raw:
                try:
                    value = run.field_error(raw, field.nodes, (*path, field.key), field.non_null)
                except GraphQLError:
                    _close(pending)
                    raise
            else:
                if field.is_async:
                    keys.append(field.key)
                    pending.append(_guarded_field(run, field, value, path))
            data[field.key] = None if field.is_async else value
        data.update(zip(keys, await _gather(pending), strict=True))
        return data


class Field:
    """One response key of an object: how its value is found and completed."""

    __slots__ = ("is_async", "key", "name", "nodes", "non_null")

    def __init__(
        self, key: str, name: str, nodes: list[FieldNode], *, non_null: bool, is_async: bool
    ) -> None:
        self.key = key
        self.name = name
        self.nodes = nodes
        self.non_null = non_null
        self.is_async = is_async

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        """The completed value, or a coroutine of it when `is_async`; `path` is the parent's."""
        raise NotImplementedError


class TypenameField(Field):
    __slots__ = ("type_name",)

    def __init__(self, key: str, nodes: list[FieldNode], type_name: str) -> None:
        super().__init__(key, "__typename", nodes, non_null=True, is_async=False)
        self.type_name = type_name

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        return self.type_name


class AttributeField(Field):
    """A field without a resolver: Strawberry reads the attribute of the same Python name."""

    __slots__ = ("attribute", "completer")

    def __init__(
        self, key: str, name: str, nodes: list[FieldNode], attribute: str, completer: Completer
    ) -> None:
        non_null = isinstance(completer, NonNullCompleter)
        super().__init__(key, name, nodes, non_null=non_null, is_async=completer.is_async)
        self.attribute = attribute
        self.completer = completer

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        return self.completer.complete(run, getattr(source, self.attribute), (*path, self.key))


class LeafAttributeField(Field):
    """The hot case of AttributeField, a scalar attribute, completed inline."""

    __slots__ = ("attribute", "coerce", "leaf_type", "null_message")

    def __init__(
        self,
        key: str,
        name: str,
        nodes: list[FieldNode],
        attribute: str,
        leaf_type: GraphQLLeafType,
        null_message: str | None,
    ) -> None:
        super().__init__(key, name, nodes, non_null=null_message is not None, is_async=False)
        self.attribute = attribute
        self.leaf_type = leaf_type
        self.coerce = leaf_type.coerce_output_value
        self.null_message = null_message

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        value = getattr(source, self.attribute)
        if value is None or value is Undefined:
            if self.null_message is not None:
                raise TypeError(self.null_message)
            return None
        coerced = self.coerce(value)
        if coerced is None or coerced is Undefined:
            raise TypeError(leaf_message(self.leaf_type, value, coerced))
        return coerced


class ResolverField(Field):
    """A field with a resolver, called exactly as graphql-core calls Strawberry's wrapper."""

    __slots__ = ("completer", "definition", "has_args", "parent_type", "resolve", "resolves_later")

    def __init__(
        self,
        key: str,
        nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
        definition: GraphQLField,
        completer: Completer,
        *,
        resolves_later: bool,
    ) -> None:
        non_null = isinstance(completer, NonNullCompleter)
        is_async = resolves_later or completer.is_async
        super().__init__(key, nodes[0].name.value, nodes, non_null=non_null, is_async=is_async)
        assert definition.resolve is not None
        self.parent_type = parent_type
        self.definition = definition
        self.resolve: Resolve = definition.resolve
        self.has_args = bool(definition.args or nodes[0].arguments)
        self.completer = completer
        self.resolves_later = resolves_later

    def execute(self, run: Run, source: Any, path: ResponsePath) -> Any:
        field_path = (*path, self.key)
        args = (
            get_argument_values(
                self.definition,
                self.nodes[0],
                run.variables,
                None,
                run.operation.hide_suggestions,
            )
            if self.has_args
            else {}
        )
        result = self.resolve(source, run.info(self, field_path), **args)
        if self.resolves_later:
            return self._complete_later(run, result, field_path)
        return self.completer.complete(run, result, field_path)

    async def _complete_later(self, run: Run, result: Awaitable[Any], path: ResponsePath) -> Any:
        completed = self.completer.complete(run, await result, path)
        if self.completer.is_async:
            completed = await completed
        return completed


async def _guarded_field(run: Run, field: Field, value: Awaitable[Any], path: ResponsePath) -> Any:
    try:
        return await value
    except Exception as raw:
        return run.field_error(raw, field.nodes, (*path, field.key), field.non_null)


async def _gather(pending: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    # graphql-core's shortcut for one awaitable, and its cancel-on-first-error otherwise.
    if len(pending) == 1:
        return [await pending[0]]
    if not pending:
        return []
    return await gather_with_cancel(*pending)


def _close(pending: list[Coroutine[Any, Any, Any]]) -> None:
    """Drop work that never started: its position was nulled before it ran."""
    for coroutine in pending:
        coroutine.close()


async def execute_serially(run: Run, fields: list[Field]) -> dict[str, Any]:
    """Root fields of a mutation, each finished before the next starts."""
    data: dict[str, Any] = {}
    for field in fields:
        try:
            value = field.execute(run, None, ())
            if field.is_async:
                value = await value
        except Exception as raw:
            value = run.field_error(raw, field.nodes, (field.key,), field.non_null)
        data[field.key] = value
    return data
