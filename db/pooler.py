"""Telling, from a new connection, whether a transaction pooler sits between us and PostgreSQL.

A transaction pooler (PgBouncer's transaction mode, Supabase's Supavisor on its transaction
port, ...) lends a server session for one transaction at a time, so what a session keeps
(prepared statements, SET ROLE, statement_timeout) does not last. Neon names its pooled hosts
`-pooler`; elsewhere nothing in the URL says so, and a pool that assumes a session of its
own fails on about half its requests under load. Drivers have no way to ask: PgBouncer
answers no query of its own on a client connection. What it cannot hide is checked here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from db.statements import Connection

# Looks taken in turn on two connections before concluding that servers are not shared.
_LOOKS = 6


async def behind_transaction_pooler(
    conn: Connection, open_other: Callable[[], Awaitable[Connection]]
) -> bool:
    """Whether `conn` (a fresh connection) reaches PostgreSQL through a transaction pooler.

    A server announces its process id at connect (BackendKeyData, for cancel requests); any
    proxy announces one of its own instead, since it answers cancel requests itself. So an
    equal id proves a direct connection, at one round trip. A different one may still be a
    proxy that keeps one server per client (PgBouncer's session mode, Neon's proxy), which
    must keep its faster direct mode: a transaction pooler is told apart by lending the
    server one client just released to the next. Two of our connections, both open, seeing
    the same server process cannot happen otherwise. PgBouncer lends the server released
    last (its default, server_round_robin=0), so the first look of `open_other`'s connection
    usually shows it; further looks cover a pooler busy with other clients. A pooler that
    hides it still shows at the first prepared statement it loses (see db.errors).
    """
    server = await _server_process(conn)
    if server == conn.get_server_pid():
        return False
    other = await open_other()
    try:
        previous = server
        for turn in range(_LOOKS):
            seen = await _server_process(other if turn % 2 == 0 else conn)
            if seen == previous:
                return True
            previous = seen
    except (
        asyncpg.exceptions.DuplicatePreparedStatementError,
        asyncpg.exceptions.InvalidSQLStatementNameError,
    ):
        # A statement prepared by another client's session, or ours lost: servers are shared.
        return True
    finally:
        await other.close()
    return False


async def _server_process(conn: Connection) -> int:
    """The process id of the server session running this connection's next transaction."""
    async with conn.transaction():
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
    return pid
