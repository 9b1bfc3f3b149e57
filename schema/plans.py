"""Compiled GraphQL operations: plans built once per validated document, run without the executor.

A plan covers what this schema's queries and mutations are made of (Strawberry object types,
scalars, lists, non-null, aliases, fragments, @skip/@include); for anything else, such as
introspection, the compiler returns None and the request takes Strawberry's standard path.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    ArgumentNode,
    DirectiveNode,
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    VariableNode,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_variable_values
from graphql.language import Visitor
from graphql.pyutils import Undefined
from strawberry.types import ExecutionResult
from strawberry.types.field import StrawberryField
from strawberry.types.graphql import OperationType

from resolvers.context import Context
from schema.documents import CACHE_SIZE, Parse, Validate
from schema.extensions import coded_error
from schema.plan_runtime import (
    AttributeField,
    Completer,
    Field,
    LeafAttributeField,
    LeafCompleter,
    ListCompleter,
    NonNullCompleter,
    ObjectCompleter,
    Operation,
    ResolverField,
    Run,
    TypenameField,
    execute_serially,
)

# Each combination of their values is a plan of its own: a few variables in @skip/@include
# are common, more would multiply the plans kept per document.
MAX_DIRECTIVE_VARIABLES = 4
STRAWBERRY_FIELD = "strawberry-definition"


@dataclass(frozen=True, slots=True)
class Selection:
    """The root fields of an operation, for one set of @skip/@include values."""

    root: ObjectCompleter
    serial: bool


@dataclass(slots=True)
class OperationPlan:
    """One operation of a validated document, compiled per set of @skip/@include values."""

    operation: Operation
    operation_type: OperationType
    fragments: dict[str, FragmentDetails]
    directive_variables: tuple[str, ...]
    selections: dict[tuple[Any, ...], Selection | None] = field(default_factory=dict)

    def selection(self, variables: VariableValues) -> Selection | None:
        coerced = variables.coerced
        key = tuple(coerced.get(name, Undefined) for name in self.directive_variables)
        if key not in self.selections:
            self.selections[key] = _Compiler(self, variables).selection()
        return self.selections[key]


class CompiledOperations:
    """Runs requests through plans when one covers them; None tells the caller to fall back."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        parse_document: Parse,
        validate_document: Validate,
        hide_suggestions: bool,
    ) -> None:
        self._schema = schema
        self._parse = parse_document
        self._validate = validate_document
        self._hide_suggestions = hide_suggestions
        # Exceptions (unparseable or oversized documents) are not cached, so every string kept
        # as a key passed the parser's size limit.
        self.plan = lru_cache(maxsize=CACHE_SIZE)(self._plan)

    def _plan(self, query: str, operation_name: str | None) -> OperationPlan | None:
        # The same cached parser and validator as the standard path: a plan exists only for
        # documents it accepts, with the same limits.
        document = self._parse(query)
        if self._validate(self._schema, document):
            return None
        return compile_operation(self._schema, document, operation_name, self._hide_suggestions)

    async def execute(
        self,
        *,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        allowed: Collection[OperationType],
    ) -> ExecutionResult | None:
        """The result of a request a plan covers; None for everything else."""
        # Anonymous requests are left to AuthenticationGate, which answers before execution.
        if context.principal is None:
            return None
        try:
            plan = self.plan(query, operation_name)
        # Whatever the parser refuses, the standard path reports in its own words.
        except Exception:
            return None
        if plan is None or plan.operation_type not in allowed:
            return None
        values = get_variable_values(
            self._schema,
            plan.operation.definition.variable_definitions or (),
            variables or {},
            hide_suggestions=self._hide_suggestions,
        )
        # The standard path reports variable errors, in its own words.
        if isinstance(values, list):
            return None
        selection = plan.selection(values)
        if selection is None:
            return None
        run = Run(plan.operation, context, values)
        try:
            if selection.serial:
                data: dict[str, Any] | None = await execute_serially(run, selection.root.fields)
            else:
                data = selection.root.execute(run, None, ())
                if selection.root.is_async:
                    data = await data  # type: ignore[misc]
        except GraphQLError as error:
            run.add(error, None)
            data = None
        errors = [coded_error(error, context.request_id) for error in run.errors]
        return ExecutionResult(data=data, errors=errors or None)


def compile_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    hide_suggestions: bool,
) -> OperationPlan | None:
    """The plan of the operation graphql-core would run, or None when none can be chosen."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        chosen = operations if len(operations) == 1 else []
    else:
        chosen = [op for op in operations if op.name and op.name.value == operation_name]
    if len(chosen) != 1 or chosen[0].operation.value not in ("query", "mutation"):
        return None
    definitions = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    if any(d.variable_definitions for d in definitions.values()):
        return None
    variables = _directive_variables(document)
    if len(variables) > MAX_DIRECTIVE_VARIABLES:
        return None
    return OperationPlan(
        operation=Operation(schema, chosen[0], definitions, hide_suggestions),
        operation_type=OperationType(chosen[0].operation.value),
        fragments={name: FragmentDetails(d) for name, d in definitions.items()},
        directive_variables=variables,
    )


def _directive_variables(document: DocumentNode) -> tuple[str, ...]:
    """Variables that @skip or @include read anywhere in the document, in a fixed order."""
    names: set[str] = set()

    class Directives(Visitor):
        def enter_directive(self, node: DirectiveNode, *_: object) -> None:
            if node.name.value in ("skip", "include"):
                for argument in node.arguments or ():
                    names.update(_variables_in(argument))

    visit(document, Directives())
    return tuple(sorted(names))


def _variables_in(argument: ArgumentNode) -> set[str]:
    value = argument.value
    return {value.name.value} if isinstance(value, VariableNode) else set()


class _Compiler:
    """Builds a Selection with graphql-core's own field collection, so merging is the spec's."""

    def __init__(self, plan: OperationPlan, variables: VariableValues) -> None:
        self.plan = plan
        self.schema = plan.operation.schema
        self.variables = variables

    def selection(self) -> Selection | None:
        operation = self.plan.operation
        definition = operation.definition
        root_type = self.schema.get_root_type(definition.operation)
        if root_type is None:
            return None
        try:
            grouped = collect_fields(
                self.schema,
                self.plan.fragments,
                self.variables,
                root_type,
                definition,
                operation.hide_suggestions,
            ).grouped_field_set
            root = self._object(root_type, grouped)
        # A directive whose variable is null: the standard path reports it.
        except (GraphQLError, RecursionError):
            return None
        if root is None:
            return None
        return Selection(root=root, serial=self.plan.operation_type is OperationType.MUTATION)

    def _object(
        self, object_type: GraphQLObjectType, grouped: GroupedFieldSet
    ) -> ObjectCompleter | None:
        fields = [self._field(object_type, key, details) for key, details in grouped.items()]
        if any(f is None for f in fields):
            return None
        return ObjectCompleter([f for f in fields if f is not None])

    def _field(
        self, parent_type: GraphQLObjectType, key: str, details: FieldDetailsList
    ) -> Field | None:
        nodes = [detail.node for detail in details]
        name = nodes[0].name.value
        if name == "__typename":
            return TypenameField(key, nodes, parent_type.name)
        definition = parent_type.fields.get(name)
        # Introspection (__schema, __type) and fields Strawberry did not build fall back.
        if definition is None:
            return None
        strawberry_field = definition.extensions.get(STRAWBERRY_FIELD)
        if not isinstance(strawberry_field, StrawberryField):
            return None
        completer = self._completer(definition.type, parent_type, name, details)
        if completer is None:
            return None
        basic = getattr(definition.resolve, "_is_default", False)
        if not (strawberry_field.is_basic_field and basic):
            return ResolverField(
                key,
                nodes,
                parent_type,
                definition,
                completer,
                resolves_later=strawberry_field.is_async,
            )
        attribute = strawberry_field.python_name
        inner = completer.inner if isinstance(completer, NonNullCompleter) else completer
        if isinstance(inner, LeafCompleter):
            message = completer.message if isinstance(completer, NonNullCompleter) else None
            return LeafAttributeField(key, name, nodes, attribute, inner.leaf_type, message)
        return AttributeField(key, name, nodes, attribute, completer)

    def _completer(
        self,
        output_type: GraphQLOutputType,
        parent_type: GraphQLObjectType,
        name: str,
        details: FieldDetailsList,
    ) -> Completer | None:
        if isinstance(output_type, GraphQLNonNull):
            inner = self._completer(output_type.of_type, parent_type, name, details)
            message = f"Cannot return null for non-nullable field {parent_type.name}.{name}."
            return None if inner is None else NonNullCompleter(inner, message)
        if isinstance(output_type, GraphQLList):
            item = self._completer(output_type.of_type, parent_type, name, details)
            message = (
                f"Expected Iterable, but did not find one for field '{parent_type.name}.{name}'."
            )
            nodes = [detail.node for detail in details]
            return None if item is None else ListCompleter(item, nodes, message)
        if isinstance(output_type, GraphQLScalarType | GraphQLEnumType):
            return LeafCompleter(output_type)
        if isinstance(output_type, GraphQLObjectType) and output_type.is_type_of is None:
            operation = self.plan.operation
            grouped = collect_subfields(
                self.schema,
                self.plan.fragments,
                self.variables,
                operation.definition,
                output_type,
                details,
                operation.hide_suggestions,
            ).grouped_field_set
            return self._object(output_type, grouped)
        # Interfaces and unions: none in this schema outside introspection.
        return None
