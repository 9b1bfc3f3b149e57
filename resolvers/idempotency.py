"""Idempotency keys: what a key may be, how it is read from a header, how a request is known.

A write sent with a key is done once: a retry with the same key and the same request gets
the stored outcome (see migration 0005). Both doors read the key here, so one rule decides
what a key is, and each door says what "the same request" means by the parts it hashes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import orjson

from resolvers.errors import MalformedIdempotencyKey

# As long as Stripe's keys may be: room for any UUID, hash or client-made random string.
MAX_KEY_LENGTH = 255
# The header's value, here and in the OpenAPI document. The IETF draft makes it a
# structured-field string (RFC 8941, 3.3.3): 1 to MAX_KEY_LENGTH printable ASCII characters
# between quotes, `"` and `\` escaped by a backslash. No parameters are defined for it, so none
# is accepted. A bare value is accepted too, as clients written for Stripe send UUIDs, and is
# the same key as its quoted form: visible ASCII but for quotes, backslashes, and the `,` and
# `;` that would separate list members and parameters. One regular expression rather than a
# structured-field library: the document states this very pattern, so the two cannot differ.
KEY_HEADER_PATTERN = (
    rf'^(?:"((?:[ !#-\[\]-~]|\\["\\]){{1,{MAX_KEY_LENGTH}}})"'
    rf"|([!#-+\--:<-\[\]-~]{{1,{MAX_KEY_LENGTH}}}))$"
)
_KEY_HEADER = re.compile(KEY_HEADER_PATTERN)
_ESCAPED = re.compile(r'\\(["\\])')
# What a key is, however it was sent: the characters a structured-field string can carry.
_KEY = re.compile(rf"[ -~]{{1,{MAX_KEY_LENGTH}}}")
_FORMAT = (
    f"a quoted string of 1 to {MAX_KEY_LENGTH} printable ASCII characters, such as "
    '"8e03978e-40d5-43e8-bc93-6894a57f9324"'
)


def key_from_header(lines: Sequence[str]) -> str | None:
    """The key an `Idempotency-Key` header carries (its field lines), None when absent; a
    malformed value, or more than one line, is refused."""
    if not lines:
        return None
    if len(lines) > 1:
        raise MalformedIdempotencyKey(f"Send one Idempotency-Key header: {_FORMAT}")
    match = _KEY_HEADER.fullmatch(lines[0].strip(" \t"))
    if match is None:
        raise MalformedIdempotencyKey(f"Idempotency-Key must be {_FORMAT}")
    quoted, bare = match.groups()
    return bare if quoted is None else _ESCAPED.sub(r"\1", quoted)


def checked_key(key: str, name: str) -> str:
    """`key` if a key may be this text (the GraphQL argument is checked by the same rule)."""
    if not _KEY.fullmatch(key):
        raise MalformedIdempotencyKey(f"{name} must be {_FORMAT}")
    return key


def fingerprint(*parts: str | bytes) -> str:
    """A hash of the request's parts, which tells a retry from another request with the key.

    Each part is length-prefixed, so that no two different lists of parts hash alike.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def canonical_json(value: Any) -> bytes:
    """`value` as JSON with sorted keys and no spaces: the same bytes for the same document,
    however a client spelled it (key order, whitespace, escapes). Raises TypeError for what
    orjson cannot write, such as more than 254 levels of nesting."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def json_fingerprint_part(value: Any, raw: bytes) -> bytes:
    """A JSON body as a fingerprint part: `value`, the parsed body, as canonical JSON, or for
    a body nested too deeply for that, its `raw` bytes, which every retry of it repeats. The
    prefixes keep the two forms apart."""
    try:
        return b"json:" + canonical_json(value)
    except TypeError:
        return b"raw:" + raw
