"""Removing what is kept only for a while: task events and idempotency keys past their
retention, and rate-limit buckets that have filled up again."""

from __future__ import annotations

from db.statements import Connection

# Any constant works, as long as every process that purges takes the same one (migrations
# hold 0x7A5C_0001).
PURGE_LOCK_KEY = 0x7A5C_0002
# One statement, so one transaction, which holds the lock until the purge commits. CASE runs
# its condition first: a process that finds the lock taken returns NULL and deletes nothing.
# The cut-offs are reckoned on the server's clock, which stamped `recorded_at`.
# A NULL $4 leaves the buckets alone.
_PURGE = (
    "SELECT CASE WHEN pg_try_advisory_xact_lock($1) THEN taskql_purge("
    "now() - make_interval(secs => $2), now() - make_interval(secs => $3))"
    " + taskql_purge_rate_limits(now() - make_interval(secs => $4)) END"
)


async def purge_expired(
    conn: Connection,
    *,
    event_seconds: float,
    key_seconds: float,
    bucket_seconds: float | None,
    timeout_seconds: float,
) -> int | None:
    """Delete every owner's events older than `event_seconds`, idempotency keys older than
    `key_seconds` and rate-limit buckets untouched for `bucket_seconds` (None: keep them);
    the number of rows deleted, or None when another process is purging now.

    A purge may have far more to delete than an operation ever touches (say, after every
    process was down for a while), so it runs in a transaction of its own with a statement
    timeout of `timeout_seconds` instead of the one requests have.
    """
    if conn.is_in_transaction():
        # Behind a transaction pooler, the connection's block is a transaction already.
        return await _purge(conn, event_seconds, key_seconds, bucket_seconds, timeout_seconds)
    async with conn.transaction():
        return await _purge(conn, event_seconds, key_seconds, bucket_seconds, timeout_seconds)


async def _purge(
    conn: Connection,
    event_seconds: float,
    key_seconds: float,
    bucket_seconds: float | None,
    timeout_seconds: float,
) -> int | None:
    await conn.execute(
        "SELECT set_config('statement_timeout', $1, true)", f"{int(timeout_seconds * 1000)}ms"
    )
    removed = await conn.fetchval(
        _PURGE,
        PURGE_LOCK_KEY,
        event_seconds,
        key_seconds,
        bucket_seconds,
        timeout=timeout_seconds,
    )
    return None if removed is None else int(removed)
