"""Input types of plain scalars, built from their GraphQL value in one step.

Strawberry converts an input object field by field, and for each field, on every request,
resolves its type and works out its GraphQL name again: 17% of the CPU of the benchmark's
`createTask` (`bench/README.md`, "One GraphQL executor", sixth session). An input type may
build itself instead, through the `from_input` hook of its Strawberry definition (documented
on `StrawberryObjectDefinition`: it receives the whole input value, keyed by GraphQL field
names). For fields that are plain scalars, graphql-core has already coerced each value
(Strawberry's DateTime is parsed by then), and Strawberry's own conversion of a scalar
returns it unchanged, so building the value is taking the fields the client sent; those it
left out keep the class's defaults, as with Strawberry's conversion.

What would let us delete it: Strawberry caching its per-field work of converting inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar

from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import InputContext
from strawberry.types.base import StrawberryOptional, get_object_definition

T = TypeVar("T", bound=type)

# Scalars whose coerced GraphQL value is already their Python value.
PLAIN_SCALARS: tuple[type, ...] = (str, int, float, bool, datetime, date)


def built_in_one_step(cls: T) -> T:
    """Give the Strawberry input type `cls`, whose fields are all plain scalars (optional or
    not), a `from_input` that takes the fields sent; TypeError for any other field."""
    definition = get_object_definition(cls, strict=True)
    if not definition.is_input:
        raise TypeError(f"{cls.__name__} is not an input type")
    for field in definition.fields:
        field_type = field.type
        if isinstance(field_type, StrawberryOptional):
            field_type = field_type.of_type
        if field_type not in PLAIN_SCALARS:
            raise TypeError(
                f"{cls.__name__}.{field.python_name} is not a plain scalar: "
                "Strawberry's conversion is needed for it"
            )
    # (GraphQL name, Python name) of each field, per name converter (that is, per schema).
    names: dict[NameConverter, tuple[tuple[str, str], ...]] = {}

    def from_input(origin: type, value: Mapping[str, Any], context: InputContext) -> Any:
        converter = context.config.name_converter
        fields = names.get(converter)
        if fields is None:
            fields = names[converter] = tuple(
                (converter.from_field(field), field.python_name) for field in definition.fields
            )
        return origin(**{python: value[graphql] for graphql, python in fields if graphql in value})

    definition.from_input = from_input
    return cls
