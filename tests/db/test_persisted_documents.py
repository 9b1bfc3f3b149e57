"""The persisted_documents table keeps every hash true to its text, and the application's role
may add documents and promote them to deployed ones, never rewrite one."""

from __future__ import annotations

import hashlib

import asyncpg
import pytest

QUERY = "query Integrity { viewer { id } }"
HASH = hashlib.sha256(QUERY.encode()).hexdigest()


async def test_a_hash_that_is_not_the_texts_cannot_be_stored(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO persisted_documents (hash, document, kind) "
                "VALUES ($1, 'query Other { viewer { id } }', 'automatic')",
                HASH,
            )
    finally:
        await conn.close()


async def test_the_app_role_cannot_rewrite_a_document(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO persisted_documents (hash, document, kind) VALUES ($1, $2, 'automatic') "
            "ON CONFLICT DO NOTHING",
            HASH,
            QUERY,
        )
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE taskql_app")
            await conn.execute(
                "UPDATE persisted_documents SET kind = 'deployed' WHERE hash = $1", HASH
            )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "UPDATE persisted_documents SET document = 'x' WHERE hash = $1", HASH
                )
    finally:
        await conn.close()
