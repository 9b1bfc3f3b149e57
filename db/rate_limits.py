"""The statement behind shared rate limits: leasing tokens from a user's bucket (migration 0006)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Integer, bindparam, func, select

from db.statements import Connection, compiled
from db.tables import rate_limits


class Lease(NamedTuple):
    """Tokens taken from a user's bucket; when none, how long until the next one."""

    granted: int
    wait_seconds: float


_TAKE = compiled(
    select(
        *func.taskql_take_tokens(
            bindparam("owner_id", type_=rate_limits.c.owner_id.type),
            bindparam("wanted", type_=Integer()),
            bindparam("per_second", type_=rate_limits.c.tokens.type),
            bindparam("burst", type_=rate_limits.c.tokens.type),
        )
        .table_valued("granted", "wait_seconds")
        .c
    )
)


async def take_tokens(
    conn: Connection, *, owner_id: str, wanted: int, per_second: float, burst: float
) -> Lease:
    """Refill the owner's bucket (a new owner's starts full) and take up to `wanted` tokens."""
    row = await _TAKE.fetchrow(
        conn, owner_id=owner_id, wanted=wanted, per_second=per_second, burst=burst
    )
    return Lease(int(row[0]), float(row[1]))
