"""Reading Idempotency-Key values, and the fingerprints that tell a retry from another request."""

from __future__ import annotations

import jsonschema_rs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from resolvers.errors import MalformedIdempotencyKey
from resolvers.idempotency import (
    KEY_HEADER_PATTERN,
    MAX_KEY_LENGTH,
    checked_key,
    fingerprint,
    json_fingerprint_part,
    key_from_header,
)

UUID = "8e03978e-40d5-43e8-bc93-6894a57f9324"


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (f'"{UUID}"', UUID),
        # A bare value, as clients written for Stripe send it, is the same key.
        (UUID, UUID),
        ('"a b"', "a b"),
        (r'"say \"hi\" \\o/"', r'say "hi" \o/'),
        ('  \t"padded" \t', "padded"),
        ('"' + "k" * MAX_KEY_LENGTH + '"', "k" * MAX_KEY_LENGTH),
        ("k" * MAX_KEY_LENGTH, "k" * MAX_KEY_LENGTH),
        ("a:b/c+d=e~f", "a:b/c+d=e~f"),
    ],
)
def test_a_key_is_a_structured_field_string_or_a_bare_value(header: str, key: str) -> None:
    assert key_from_header([header]) == key


@pytest.mark.parametrize(
    "header",
    [
        '""',
        "",
        '"unterminated',
        '"' + "k" * (MAX_KEY_LENGTH + 1) + '"',
        "k" * (MAX_KEY_LENGTH + 1),
        # Parameters are not defined for this field, so none is accepted.
        '"key";version=1',
        # A list, as two header lines joined by a proxy look.
        '"one", "two"',
        "a b",
        "a;b",
        r'"bad \escape"',
        '"tab\tinside"',
        # Non-ASCII, as Starlette hands over the Latin-1 reading of UTF-8 bytes.
        '"cafÃ©"',
        "cafÃ©",
    ],
)
def test_malformed_keys_are_refused_with_400(header: str) -> None:
    with pytest.raises(MalformedIdempotencyKey) as refused:
        key_from_header([header])
    assert refused.value.status == 400
    assert "Idempotency-Key must be a quoted string" in refused.value.message


def test_no_header_is_no_key_and_two_header_lines_are_refused() -> None:
    assert key_from_header([]) is None
    with pytest.raises(MalformedIdempotencyKey, match="Send one Idempotency-Key header"):
        key_from_header(['"one"', '"two"'])


def test_the_argument_form_takes_any_printable_ascii_up_to_the_limit() -> None:
    assert checked_key('a "quoted", ;separated \\ key', "idempotencyKey")
    for bad in ("", "k" * (MAX_KEY_LENGTH + 1), "café", "line\nbreak"):
        with pytest.raises(MalformedIdempotencyKey, match="idempotencyKey must be"):
            checked_key(bad, "idempotencyKey")


# Header values as a client could send them: printable ASCII, quoted or not.
_header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300).map(
        lambda text: f'"{text}"'
    ),
)


# The OpenAPI document states KEY_HEADER_PATTERN to clients, read as ECMAScript.
_DOCUMENTED = jsonschema_rs.validator_for({"type": "string", "pattern": KEY_HEADER_PATTERN})


# No deadline: on a machine busy with other test runs one example can take a while.
@settings(deadline=None)
@given(_header_values)
def test_the_documented_pattern_accepts_exactly_what_the_server_accepts(header: str) -> None:
    try:
        key_from_header([header])
        accepted = True
    except MalformedIdempotencyKey:
        accepted = False
    # The server trims the spaces and tabs around a field value, as HTTP allows.
    assert _DOCUMENTED.is_valid(header.strip(" \t")) == accepted


def test_fingerprints_differ_for_different_parts_however_they_split() -> None:
    assert fingerprint("POST", "/a") == fingerprint("POST", "/a")
    assert fingerprint("POST", "/a") != fingerprint("POST", "/b")
    # Length prefixes: the same bytes cut differently are different requests.
    assert fingerprint("ab", "c") != fingerprint("a", "bc")
    assert fingerprint("a", "") != fingerprint("a")
    assert fingerprint("x", b"x") == fingerprint("x", "x")


def test_a_json_body_counts_by_its_content_not_its_spelling() -> None:
    spelled = [b'{"title": "a", "completed": true}', b'{"completed":true,"title":"\\u0061"}']
    parts = {json_fingerprint_part(orjson.loads(raw), raw) for raw in spelled}
    assert parts == {b'json:{"completed":true,"title":"a"}'}
    other = b'{"title": "a", "completed": false}'
    assert json_fingerprint_part(orjson.loads(other), other) not in parts


def test_a_body_too_deep_to_write_again_counts_by_its_bytes() -> None:
    raw = b'{"title": "a", "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    assert json_fingerprint_part(orjson.loads(raw), raw) == b"raw:" + raw
