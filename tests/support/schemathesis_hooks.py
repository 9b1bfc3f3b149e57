"""schemathesis hooks for the fuzz runs (loaded through SCHEMATHESIS_HOOKS by `st run`).

A client makes a new Idempotency-Key for each new request; schemathesis draws keys from the
header's pattern and so sends the same short key (`"0"`) with different requests, which is
rightly a 422. Each well-formed key of a request it means to be valid is therefore made
unique. Requests it means to be invalid are left alone (changing one makes schemathesis
revalidate it, and it would then put back a header the case had left out on purpose), so
their malformed keys are refused with 400 and any reused key adds a 422 to their faults.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

from resolvers.errors import MalformedIdempotencyKey
from resolvers.idempotency import key_from_header

HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    value = (case.headers or {}).get(HEADER)
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if negative or not isinstance(value, str):
        return
    try:
        key_from_header([value])
    except MalformedIdempotencyKey:
        return
    case.headers[HEADER] = f'"{uuid.uuid4()}"'
