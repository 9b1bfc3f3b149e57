"""Reading an owner's event stream (migration 0005): its events after a position, and its head.

Both statements go through `as_viewer`, like every read of tasks: row-level security sees
the owner set first, so a statement can only ever return that owner's events.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, bindparam, select

from db.statements import Connection, compiled
from db.tables import task_events, task_streams
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
_HEAD = compiled(as_viewer(select(task_streams.c.position).where(task_streams.c.owner_id == OWNER)))


async def select_events_after(
    conn: Connection, *, owner_id: str, after: int, limit: int
) -> list[Row]:
    """At most `limit` of the owner's retained events past position `after`, in order."""
    return await _AFTER.fetch(conn, owner_id=owner_id, after=after, limit=limit)


async def select_stream_head(conn: Connection, *, owner_id: str) -> int:
    """The position of the owner's latest event; 0 before their first."""
    position = await _HEAD.fetchval(conn, owner_id=owner_id)
    return 0 if position is None else int(position)
