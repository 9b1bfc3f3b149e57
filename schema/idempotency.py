"""Which idempotency key a mutation carries: its idempotencyKey argument, or the request's header.

The argument is the GraphQL form: each mutation field of a document can have its own key, it
is declared in the schema, and it travels over any transport. The `Idempotency-Key` header
(the REST door's) is honoured too, for HTTP clients that add it by themselves, but only on a
request whose operation is one mutation field: a header names one request, and a document
with several mutations would make it name several writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import strawberry
from graphql import FieldNode

from resolvers.domain import IdempotencyKey
from resolvers.errors import MalformedIdempotencyKey
from resolvers.idempotency import canonical_json, checked_key, fingerprint
from schema.query import Info

KeyArgument = Annotated[
    str | None,
    strawberry.argument(
        description="Do this mutation once: a retry with the same key and arguments returns "
        "the first outcome (with replayed: true) instead of writing again; the same key with "
        "other arguments is an IDEMPOTENCY_KEY_REUSED user error. 1-255 printable ASCII "
        "characters, e.g. a UUID; kept for IDEMPOTENCY_KEY_SECONDS (default 24 h)."
    ),
]
# The user error's field for a key given as the argument; a header's has none.
KEY_FIELD = ["idempotencyKey"]


def mutation_key(
    info: Info, argument: str | None, arguments: Mapping[str, Any]
) -> IdempotencyKey | None:
    """The key this mutation field writes under, with the fingerprint of what it asks.

    That is the field's name and its `arguments` (the key left out) as canonical JSON; what
    the client selects from the payload is not part of it, since it does not change the write.
    """
    header = info.context.idempotency_key
    if argument is not None:
        key = checked_key(argument, "idempotencyKey")
        if header is not None and header != key:
            raise MalformedIdempotencyKey(
                "The Idempotency-Key header and the idempotencyKey argument differ; send one"
            )
    elif header is not None:
        if not _one_field(info):
            raise MalformedIdempotencyKey(
                "The Idempotency-Key header covers a request with exactly one mutation field; "
                "give each mutation its own idempotencyKey argument instead"
            )
        key = header
    else:
        return None
    return IdempotencyKey(key, fingerprint("graphql", info.field_name, canonical_json(arguments)))


def _one_field(info: Info) -> bool:
    """Whether the operation's selection is exactly one field, written out (not in a fragment)."""
    selections = info.operation.selection_set.selections
    return len(selections) == 1 and isinstance(selections[0], FieldNode)
