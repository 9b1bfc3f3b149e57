"""Reading an owner's event stream (migrations 0005, 0009): its events after a position, its
head, and how far the purge has removed it.

The reads of rows go through `as_viewer`, like every read of tasks: row-level security sees
the owner set first, so a statement can only ever return that owner's rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, bindparam, func, select

from db.statements import Connection, compiled
from db.tables import task_events, task_stream_purges
from db.tasks import Row, as_viewer

# The owner, named as `as_viewer` names it: the statement sets it first.
OWNER = bindparam("owner_id", type_=task_events.c.owner_id.type)
# position, kind, the task as written (resolvers.domain.Task's order), recorded_at.
_EVENT_COLUMNS = (
    task_events.c.position,
    task_events.c.kind,
    task_events.c.task_id,
    task_events.c.title,
    task_events.c.description,
    task_events.c.completed,
    task_events.c.due_date,
    task_events.c.task_created_at,
    task_events.c.task_updated_at,
    task_events.c.version,
    task_events.c.recorded_at,
)
_AFTER = compiled(
    as_viewer(
        select(*_EVENT_COLUMNS)
        .where(
            task_events.c.owner_id == OWNER,
            task_events.c.position > bindparam("after", type_=BigInteger),
        )
        .order_by(task_events.c.position)
        .limit(bindparam("limit", type_=BigInteger))
    )
)
# A function of migration 0009: it waits for the owner's writes in flight, then reads the
# sequence (no table, so no row-level security to see through).
_HEAD = compiled(select(func.taskql_stream_head(OWNER)))
_PURGED = compiled(
    as_viewer(
        select(task_stream_purges.c.purged_through).where(task_stream_purges.c.owner_id == OWNER)
    )
)


async def select_events_after(
    conn: Connection, *, owner_id: str, after: int, limit: int
) -> list[Row]:
    """At most `limit` of the owner's retained events past position `after`, in order."""
    return await _AFTER.fetch(conn, owner_id=owner_id, after=after, limit=limit)


async def select_stream_head(conn: Connection, *, owner_id: str) -> int:
    """A position every event of the owner's still to commit will be past (0 before any
    event of anyone's); all of the owner's events up to it have committed."""
    return int(await _HEAD.fetchval(conn, owner_id=owner_id))


async def select_purged_through(conn: Connection, *, owner_id: str) -> int:
    """The last position of the owner's that the purge removed; 0 if it removed none."""
    position = await _PURGED.fetchval(conn, owner_id=owner_id)
    return 0 if position is None else int(position)
