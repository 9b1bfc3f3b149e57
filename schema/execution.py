"""The GraphQL executor: Strawberry's, with a shortcut for fields that only read an attribute.

graphql-core spends most of a list response on fields without a resolver of their own (a
task's id, title, ...): for each one it builds a resolve info and a path, calls Strawberry's
wrapper, which calls the default resolver, and checks each value for awaitables twice. Here a
selection made only of such fields, on scalars or enums, or on objects or lists of objects
whose own selection is made of them (a mutation payload's `task`, a connection's `nodes`),
is read and serialised in one loop.
In that loop a string for String or ID and a bool for Boolean are their own output (the
spec's result coercion leaves them unchanged), so no serialiser is called for them, and a
UTC datetime is written by orjson, about three times faster than `datetime.isoformat`, which
Strawberry's DateTime calls (the same text: tests/schema/test_execution.py checks both).
Anything unusual in it (a null for a non-null field, a value its scalar refuses, an error
object) sends the whole selection back through graphql-core's own code, so every error and
its message are graphql-core's. With a schema extension that wraps resolvers (a `resolve`
hook), nothing is shortcut, so that hook sees every field.

What a document's selections are (graphql-core collects them for each object it completes,
and the shortcut works out how to read them) is the same in every execution of a document
without directives, so both are kept across executions (`SharedSelections`), keyed by the
field nodes of the cached document. A document with @skip, @include or @defer anywhere is
collected in each execution, as its variables decide its selections.

A subscription event that several subscriptions of one viewer receive (one user's phone,
laptop and tabs all subscribed with the same document) is executed once: the result of the
first is given to the others, as the selection, the variables, the viewer and the event are
the same. Only results without errors, from selections with no `resolve` hook, are shared.

What would let us delete it: a graphql-core or Strawberry executor that skips this per-field
work for default resolvers by itself, and shares one event's execution among subscribers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
import strawberry
from graphql import (
    ExecutionResult,
    GraphQLBoolean,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    OperationDefinitionNode,
    is_leaf_type,
)
from graphql.execution.collect_fields import (
    CollectedFields,
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
)
from graphql.pyutils import AwaitableOrValue, Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.prepared import BUILD_PARAMETERS, PreparedQueries

# How a field of a selection is read: its response key, then either the attribute, the
# scalar's serialiser, whether null is refused and the Python type that is its own output
# (None: always serialise), or (for __typename) the type's name.
PlainField = tuple[str, Callable[[Any], Any], bool, type | None]
Read = tuple[str, str, Callable[[Any], Any], bool, type | None] | tuple[str, None, str, bool, None]
# A field without a resolver of its own: its attribute, its type without non-null, and
# whether it is non-null.
BasicField = tuple[str, GraphQLOutputType, bool]
TYPENAME = "__typename"
# Scalars whose result coercion returns a value of this exact type unchanged.
_OWN_OUTPUT: dict[GraphQLLeafType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
}
# Datetimes that tell a serialiser calling `isoformat` from one that does not.
_PROBES = (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime(999, 12, 31, tzinfo=UTC))


# The latest subscription event results, shared by the subscriptions that receive the same
# event object (resolvers/live.py gives one owner's streams the same objects); each entry
# keeps its event, so that the event's id cannot be reused while the entry lives.
_SHARED_EVENT_RESULTS = 256
_EVENT_RESULTS: dict[tuple[Any, ...], tuple[Any, ExecutionResult]] = {}


# Collected selections kept for all executions, per schema; past this, all are dropped.
_SHARED_SELECTIONS = 1024
SelectionKey = tuple[GraphQLObjectType, tuple[int, ...]]
# A shared selection whose reads are not worked out yet.
_NOT_READ: Any = object()


class SharedSelections:
    """Subfields that graphql-core collects the same way in every execution of a document,
    collected once, with how the shortcut reads them.

    Each entry keeps the objects whose ids make its key (the field nodes, the selection), so
    that no id in a key is reused while the entry lives. Past the bound every entry is
    dropped: a service sees a few distinct documents, and a client that sends endless new
    ones only loses the sharing.
    """

    def __init__(self, size: int = _SHARED_SELECTIONS) -> None:
        self._size = size
        self._collected: dict[SelectionKey, tuple[FieldDetailsList, CollectedFields]] = {}
        # By the id of a shared selection: the selection and its reads.
        self._reads: dict[int, tuple[GroupedFieldSet, Any]] = {}
        # By the id of an operation: the operation and whether its document has no directive.
        self._fixed: dict[int, tuple[OperationDefinitionNode, bool]] = {}

    def key(
        self,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDetails],
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
    ) -> SelectionKey | None:
        """The key of these subfields; None when this execution may collect them otherwise."""
        fixed = self._fixed.get(id(operation))
        if fixed is None or fixed[0] is not operation:
            if len(self._fixed) >= self._size:
                self._fixed.clear()
            fixed = (operation, _collects_the_same_each_time(operation, fragments))
            self._fixed[id(operation)] = fixed
        if not fixed[1]:
            return None
        return return_type, tuple([id(details.node) for details in field_details_list])

    def collected(self, key: SelectionKey) -> CollectedFields | None:
        entry = self._collected.get(key)
        return None if entry is None else entry[1]

    def keep(
        self, key: SelectionKey, field_details_list: FieldDetailsList, collected: CollectedFields
    ) -> None:
        if len(self._collected) >= self._size:
            self._collected.clear()
            self._reads.clear()
        self._collected[key] = (field_details_list, collected)
        selection = collected.grouped_field_set
        self._reads[id(selection)] = (selection, _NOT_READ)

    def reads(self, selection: GroupedFieldSet) -> tuple[GroupedFieldSet, list[Read] | None] | None:
        """The reads of a shared selection, once worked out."""
        entry = self._reads.get(id(selection))
        if entry is None or entry[0] is not selection or entry[1] is _NOT_READ:
            return None
        return entry

    def keep_reads(self, selection: GroupedFieldSet, reads: list[Read] | None) -> bool:
        """Keeps the reads of a shared selection; False for a selection of one execution."""
        entry = self._reads.get(id(selection))
        if entry is None or entry[0] is not selection:
            return False
        self._reads[id(selection)] = (selection, reads)
        return True


def _collects_the_same_each_time(
    operation: OperationDefinitionNode, fragments: dict[str, FragmentDetails]
) -> bool:
    """Whether collecting this operation's fields reads nothing but its document: no
    directive on any field, fragment or spread (@skip, @include and @defer read variables
    or make new groups), and no fragment arguments."""
    if any(details.variable_signatures for details in fragments.values()):
        return False
    pending = [operation.selection_set]
    pending += [details.definition.selection_set for details in fragments.values()]
    while pending:
        for selection in pending.pop().selections:
            if selection.directives:
                return False
            selection_set = getattr(selection, "selection_set", None)
            if selection_set is not None:
                pending.append(selection_set)
    return True


class ShortcutExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor as Strawberry configures it, reading plain fields directly."""

    # Set per schema by `executor_for`.
    strawberry_schema: ClassVar[strawberry.Schema]
    suggestions_hidden: ClassVar[bool]
    plain_fields: ClassVar[dict[tuple[str, str], PlainField | None]]
    # Strawberry finds a field by scanning its type's fields: each is looked up once.
    basic_fields: ClassVar[dict[tuple[str, str], BasicField | None]]
    # Selections collected once for every execution of a document (see collect_subfields).
    shared_selections: ClassVar[SharedSelections]
    # Queries whose next executions are prepared runs (schema/prepared.py).
    prepared_queries: ClassVar[PreparedQueries]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        manager = self.middleware_manager
        self._shortcut = manager is None or not manager.middlewares
        # Per execution, like graphql-core's own memo of collected subfields: the selection
        # of a list's items is one object, read for every item.
        self._reads: dict[int, tuple[GroupedFieldSet, list[Read] | None]] = {}
        # Subfields this execution has collected, by (type, id of the field list), each kept
        # with its list so that the id is not reused: the cheap lookup of graphql-core's own
        # memo, made before the shared one's key is built.
        self._collected: dict[
            tuple[GraphQLObjectType, int], tuple[FieldDetailsList, CollectedFields]
        ] = {}
        # Set on the copy made for each subscription event: what makes its result shareable.
        self._event_key: tuple[Any, ...] | None = None

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> Any:
        """A prepared run for a query executed before (schema/prepared.py), else graphql-core's
        executor; its first execution of a query keeps what the next ones need."""
        named = dict(zip(BUILD_PARAMETERS, args, strict=False))
        named.update(kwargs)
        # Without introspection, errors must not suggest field or argument names either.
        named["hide_suggestions"] = cls.suggestions_hidden
        known, prepared = cls.prepared_queries.lookup(named)
        if prepared is not None:
            run = prepared.run(cls, named)
            if run is not None:
                return run
        executor = cls.build_by_graphql_core(named)
        if not known and isinstance(executor, ShortcutExecutor):
            cls.prepared_queries.prepare(executor, named)
        return executor

    @classmethod
    def build_by_graphql_core(cls, named: dict[str, Any]) -> Any:
        """graphql-core's executor for these arguments of `build` (or its request errors)."""
        return super().build(**named)

    def collects_the_same_each_time(self) -> bool:
        """Whether every execution of this operation collects the same fields."""
        return _collects_the_same_each_time(self.operation, self.fragments)

    @classmethod
    def read_object(cls, reads: list[Read], source: Any) -> dict[str, Any] | None:
        """The object's data as the shortcut reads it; None when graphql-core must complete it."""
        return _read(reads, source, cls.strawberry_schema.config.default_resolver)

    def build_per_event_executor(self, payload: Any) -> ShortcutExecutor:
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, ShortcutExecutor)
        executor._event_key = self._event_key_for(payload) if self._shortcut else None
        return executor

    def execute_operation(self, serially: bool | None = None) -> Any:
        key = self._event_key
        if key is None:
            return super().execute_operation(serially)
        shared = _EVENT_RESULTS.get(key)
        if shared is not None and shared[0] is self.root_value:
            return shared[1]
        result = super().execute_operation(serially)
        if isinstance(result, ExecutionResult) and not result.errors:
            _EVENT_RESULTS[key] = (self.root_value, result)
            if len(_EVENT_RESULTS) > _SHARED_EVENT_RESULTS:
                del _EVENT_RESULTS[next(iter(_EVENT_RESULTS))]
        return result

    def _event_key_for(self, payload: Any) -> tuple[Any, ...] | None:
        """What decides an event's result: the operation (a cached document's node is the
        same object for every request with its text), its variables, the viewer and the
        event object; None when the variables cannot be a key."""
        variables = self.variable_values.coerced
        viewer = getattr(self.context_value, "viewer_id", None)
        try:
            frozen = tuple(sorted(variables.items()))
            hash(frozen)
        except TypeError:
            return None
        return (id(self.operation), frozen, viewer, id(payload))

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        # Without a source (the root value is None) there is nothing to read.
        if self._shortcut and source_value is not None:
            reads = self._selection_reads(parent_type, grouped_field_set)
            if reads is not None:
                data = _read(reads, source_value, self.strawberry_schema.config.default_resolver)
                if data is not None:
                    return data
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def complete_value(
        self,
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[Any]:
        # An object whose selection is all plain fields (a connection of tasks, a payload) is
        # read in one call, as execute_fields would read it at the end of graphql-core's
        # completion of an object: it skips that chain of calls (about 2% of a list).
        if self._shortcut and position_context is None and result is not None:
            object_type = (
                return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
            )
            if isinstance(object_type, GraphQLObjectType) and not isinstance(result, Exception):
                reads = self.object_reads(object_type, field_details_list)
                data = None if reads is None else self.read_object(reads, result)
                if data is not None:
                    return data
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[list[Any]]:
        # A list of objects whose selection is all plain fields (a page of tasks): each item
        # is read in one call instead of going through graphql-core's completion of it.
        items = self._read_list(return_type, field_details_list, result) if self._shortcut else None
        if items is not None:
            return items
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _read_list(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        result: Any,
    ) -> list[Any] | None:
        item_type = _object_item_type(return_type)
        # An empty list is graphql-core's: it collects no subfields, so it reports no errors
        # of theirs (such as @skip(if: $v) with $v null), which it would at the first item.
        if not (isinstance(result, list) and result and item_type is not None):
            return None
        reads = self.object_reads(item_type, field_details_list)
        if reads is None:
            return None
        return _read_items(reads, result, self.strawberry_schema.config.default_resolver)

    def object_reads(
        self, item_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> list[Read] | None:
        """How an object of this type (alone or a list's item) is read for these fields, when
        its selection is all plain fields; None otherwise."""
        if item_type.is_type_of is not None:
            return None
        try:
            collected = self.collect_subfields(item_type, field_details_list)
        except Exception:
            return None
        if collected.new_defer_usages:
            return None
        return self._selection_reads(item_type, collected.grouped_field_set)

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        """graphql-core's subfields, collected once for all executions of a document when
        nothing but the document decides them: no directive anywhere in it (@skip and
        @include read variables, @defer makes new groups each time). The fields of a cached
        document are the same objects in every execution, so they are the key."""
        here = (return_type, id(field_details_list))
        known = self._collected.get(here)
        if known is not None:  # a list's items after the first, through graphql-core
            return known[1]
        shared = self.shared_selections
        key = shared.key(self.operation, self.fragments, return_type, field_details_list)
        collected = None if key is None else shared.collected(key)
        if collected is None:
            collected = super().collect_subfields(return_type, field_details_list)
            if key is not None:
                shared.keep(key, field_details_list, collected)
        self._collected[here] = (field_details_list, collected)
        return collected

    def _selection_reads(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> list[Read] | None:
        cached = self._reads.get(id(grouped_field_set)) or self.shared_selections.reads(
            grouped_field_set
        )
        if cached is not None:
            return cached[1]
        reads: list[Read] | None = []
        for key, details in grouped_field_set.items():
            name = details[0].node.name.value
            if name == TYPENAME:
                reads.append((key, None, parent_type.name, True, None))  # type: ignore[union-attr]
                continue
            plain = self._plain_field(parent_type, name) or self._plain_object_field(
                parent_type, name, details
            )
            if plain is None:
                reads = None
                break
            reads.append((key, *plain))  # type: ignore[union-attr]
        # The selection is kept with its reads, so that its id is not reused meanwhile.
        if not self.shared_selections.keep_reads(grouped_field_set, reads):
            self._reads[id(grouped_field_set)] = (grouped_field_set, reads)
        return reads

    def _plain_object_field(
        self, parent_type: GraphQLObjectType, name: str, details: FieldDetailsList
    ) -> PlainField | None:
        """How an object, or a list of objects, without a resolver of its own is read (a
        payload's task, a connection's nodes), when the selection of each object is all plain
        fields: None otherwise. It depends on the selection, so it is worked out per
        selection, not kept per field."""
        key = (parent_type.name, name)
        if key not in self.basic_fields:
            self.basic_fields[key] = _basic_field(self.strawberry_schema, parent_type, name)
        basic = self.basic_fields[key]
        if basic is None:
            return None
        python_name, output_type, non_null = basic
        resolve = self.strawberry_schema.config.default_resolver
        if isinstance(output_type, GraphQLObjectType):
            reads = self.object_reads(output_type, details)
            if reads is None:
                return None

            def read_object(value: Any) -> dict[str, Any] | None:
                return _read(reads, value, resolve)

            return python_name, read_object, non_null, None
        item_type = _object_item_type(output_type) if isinstance(output_type, GraphQLList) else None
        if item_type is None:
            return None
        item_reads = self.object_reads(item_type, details)
        if item_reads is None:
            return None

        def read_list(value: Any) -> list[dict[str, Any]] | None:
            return _read_items(item_reads, value, resolve) if isinstance(value, list) else None

        return python_name, read_list, non_null, None

    @classmethod
    def _plain_field(cls, parent_type: GraphQLObjectType, name: str) -> PlainField | None:
        """How a scalar or enum field is read, when Strawberry gives it no resolver of its own
        (nor field extensions, such as permissions): None otherwise."""
        key = (parent_type.name, name)
        if key not in cls.plain_fields:
            cls.plain_fields[key] = _plain_field(cls.strawberry_schema, parent_type, name)
        return cls.plain_fields[key]


def _object_item_type(list_type: GraphQLList[GraphQLOutputType]) -> GraphQLObjectType | None:
    """The object type of a list's items, non-null or not; None for any other item type."""
    item_type = list_type.of_type
    if isinstance(item_type, GraphQLNonNull):
        item_type = item_type.of_type
    return item_type if isinstance(item_type, GraphQLObjectType) else None


def _plain_field(
    schema: strawberry.Schema, parent_type: GraphQLObjectType, name: str
) -> PlainField | None:
    basic = _basic_field(schema, parent_type, name)
    if basic is None:
        return None
    python_name, leaf_type, non_null = basic
    if not is_leaf_type(leaf_type):
        return None
    return python_name, _serialiser(leaf_type), non_null, _OWN_OUTPUT.get(leaf_type)


def _basic_field(
    schema: strawberry.Schema, parent_type: GraphQLObjectType, name: str
) -> BasicField | None:
    """A field Strawberry gives no resolver of its own (nor field extensions, such as
    permissions): its attribute, its type without non-null, and whether it is non-null."""
    field = schema.get_field_for_type(name, parent_type.name)
    definition = parent_type.fields.get(name)
    if field is None or definition is None or not field.is_basic_field:
        return None
    output_type = definition.type
    non_null = isinstance(output_type, GraphQLNonNull)
    return field.python_name, output_type.of_type if non_null else output_type, non_null


def _read(
    reads: list[Read], source: Any, resolve: Callable[[Any, str], Any]
) -> dict[str, Any] | None:
    """The selection's data, or None when any field needs graphql-core's handling."""
    data: dict[str, Any] = {}
    try:
        for key, attribute, serialise, non_null, own in reads:
            if attribute is None:
                data[key] = serialise
                continue
            value = resolve(source, attribute)
            if type(value) is own:
                data[key] = value
                continue
            if value is None or value is Undefined:
                if non_null:
                    return None
                data[key] = None
                continue
            if isinstance(value, Exception):
                return None
            serialised = serialise(value)  # type: ignore[operator]
            if serialised is None or serialised is Undefined:
                return None
            data[key] = serialised
    except Exception:
        return None
    return data


def _read_items(
    reads: list[Read], items: list[Any], resolve: Callable[[Any, str], Any]
) -> list[dict[str, Any]] | None:
    """Each object's data, or None when any of them needs graphql-core's handling (a null
    item included: only graphql-core knows whether this list allows it)."""
    data = []
    for item in items:
        read = None if item is None else _read(reads, item, resolve)
        if read is None:
            return None
        data.append(read)
    return data


def _serialiser(leaf_type: GraphQLLeafType) -> Callable[[Any], Any]:
    """The scalar's serialiser; for one that writes datetimes with `isoformat` (Strawberry's
    DateTime), the same text for UTC datetimes through orjson; for ID, an int's decimal
    text without graphql-core's checks of other types (the same text: it writes `str(int)`)."""
    serialise = leaf_type.coerce_output_value
    if leaf_type is GraphQLID:

        def serialise_id(value: Any) -> Any:
            return str(value) if type(value) is int else serialise(value)

        return serialise_id
    try:
        writes_isoformat = all(serialise(probe) == probe.isoformat() for probe in _PROBES)
    except Exception:
        writes_isoformat = False
    if not writes_isoformat:
        return serialise

    def serialise_datetime(value: Any) -> Any:
        if type(value) is datetime and value.tzinfo is UTC:
            return utc_datetime_text(value)
        return serialise(value)

    return serialise_datetime


def utc_datetime_text(value: datetime) -> str:
    """`value.isoformat()` for a datetime in UTC (orjson writes RFC 3339 with the offset)."""
    return orjson.dumps(value)[1:-1].decode()


def executor_for(schema: strawberry.Schema, *, hide_suggestions: bool) -> type[ShortcutExecutor]:
    """The executor class of one schema."""
    return type(
        "TaskSchemaExecutor",
        (ShortcutExecutor,),
        {
            "strawberry_schema": schema,
            "suggestions_hidden": hide_suggestions,
            "plain_fields": {},
            "basic_fields": {},
            "shared_selections": SharedSelections(),
            "prepared_queries": PreparedQueries(),
        },
    )
