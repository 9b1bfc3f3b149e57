"""Statements on persisted GraphQL documents: the application's, shared by all its users.

Not under row-level security (nothing in them belongs to a user): plain statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import Integer, Text, bindparam, exists, func, literal, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from db.statements import Connection, compiled
from db.tables import persisted_documents as documents

_HASH = bindparam("hash", type_=documents.c.hash.type)
_TEXT = bindparam("document", type_=documents.c.document.type)

_SELECT = compiled(select(documents.c.document, documents.c.kind).where(documents.c.hash == _HASH))

_AUTOMATIC = documents.c.kind == "automatic"
# Stored only while fewer than max_automatic automatic documents are; a document already
# there is left as it is. Two registrations at once may each see room for one: the limit
# can be passed by as many as register at the same instant, which is harmless.
_room = select(func.count()).select_from(documents).where(_AUTOMATIC).scalar_subquery() < bindparam(
    "max_automatic", type_=Integer
)
_INSERT_AUTOMATIC = compiled(
    insert(documents)
    .from_select(
        ["hash", "document", "kind"],
        select(_HASH, _TEXT, literal("automatic")).where(_room),
    )
    .on_conflict_do_nothing(index_elements=[documents.c.hash])
    .returning(documents.c.hash)
)
_IS_STORED = compiled(select(exists().where(documents.c.hash == _HASH)))

_DEPLOYED = (
    func.unnest(bindparam("hashes", type_=ARRAY(Text)), bindparam("documents", type_=ARRAY(Text)))
    .table_valued("hash", "document")
    .render_derived()
)
# One statement, so that a deployment's documents are registered all together or not at all.
# A document learnt automatically before becomes a deployed one; its text is the same (the
# hash says so), only its standing changes.
_REGISTER_DEPLOYED = compiled(
    insert(documents)
    .from_select(
        ["hash", "document", "kind"],
        select(_DEPLOYED.c.hash, _DEPLOYED.c.document, literal("deployed")),
    )
    .on_conflict_do_update(
        index_elements=[documents.c.hash], set_={"kind": "deployed"}, where=_AUTOMATIC
    )
    .returning(documents.c.hash)
)


class StoredDocument(NamedTuple):
    text: str
    deployed: bool


async def select_document(conn: Connection, *, hash: str) -> StoredDocument | None:
    row = await _SELECT.fetchrow(conn, hash=hash)
    return None if row is None else StoredDocument(row[0], row[1] == "deployed")


async def insert_automatic(
    conn: Connection, *, hash: str, document: str, max_automatic: int
) -> bool:
    """Store a document learnt from a client; False when the store holds `max_automatic`
    automatic documents already and this one is not among them."""
    inserted = await _INSERT_AUTOMATIC.fetchval(
        conn, hash=hash, document=document, max_automatic=max_automatic
    )
    return inserted is not None or bool(await _IS_STORED.fetchval(conn, hash=hash))


async def insert_deployed(conn: Connection, *, documents_by_hash: Mapping[str, str]) -> int:
    """Register a deployment's documents; how many were not deployed ones yet."""
    rows = await _REGISTER_DEPLOYED.fetch(
        conn, hashes=list(documents_by_hash), documents=list(documents_by_hash.values())
    )
    return len(rows)
