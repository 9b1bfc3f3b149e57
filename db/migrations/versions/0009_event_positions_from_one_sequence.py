"""Event positions come from one sequence, ordered per owner by a lock, not by a counter row.

0005 gave each owner a counter row (`task_streams`) that every write updated (an upsert, a
new row version and its WAL each time). Now:

- A write takes a transaction-scoped advisory lock on its owner's stream, then the next
  value of `task_event_positions`. The lock is held until commit, so one owner's events
  still commit in position order, and a reader that has seen position n can never later
  find a smaller one it missed. Positions grow but are no longer consecutive per owner.
- An owner's head is the sequence's last value, read under the same lock in shared mode
  (after that owner's writes in flight have committed): every later event of theirs is
  past it.
- With no counter to show a gap, the purge records, per owner, the last position it removed
  (`task_stream_purges`): a cursor before it is past retention and gets a resync.

Existing positions are kept (the sequence starts past them), so clients' cursors stay valid.

Measured with pg_stat_user_functions (pgbench `-M prepared -c 4 -t 2000`, toggles then
creates, as taskql_app, 1,000 owners with a task each, three rounds alternated with a
database at 0008): `taskql_record_event` took 53-72 us a call at 0008 and 42-51 us here
(the lock 4-5 us of it); WAL per create 1,242-1,451 -> 1,197-1,337 bytes. A toggle's whole
function takes 330-440 us either way, most of it its UPDATE of `tasks`, which the benchmark's
floor pays too (bench/README.md, "What events cost a write").

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

APP_ROLE = "taskql_app"
OWNER = "owner_id = current_setting('app.user_id', true)"
# The advisory locks of event streams: (this class, hashtext(owner)). Owners whose ids hash
# alike share a lock, which only makes their writes wait for each other.
STREAM_LOCK_CLASS = 7_500_009
_PURGING = "nullif(current_setting('app.purge_before', true), '') IS NOT NULL"

_TABLE = """
CREATE TABLE task_stream_purges (
    owner_id text PRIMARY KEY,
    -- The last position of the owner's that the purge removed.
    purged_through bigint NOT NULL
)"""

_FUNCTIONS = {
    # Held until commit by every write of the owner's, so their events commit in order.
    "taskql_lock_stream(owner text)": f"""
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({STREAM_LOCK_CLASS}, hashtext(owner));
    END
    $$""",
    "taskql_record_event(kind text, task tasks)": """
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM taskql_lock_stream(task.owner_id);
        IF kind = 'deleted' THEN
            -- A deletion carries the id and version alone.
            INSERT INTO task_events (owner_id, position, kind, task_id, version)
            VALUES (task.owner_id, nextval('task_event_positions'), kind, task.id,
                task.version);
        ELSE
            INSERT INTO task_events (owner_id, position, kind, task_id, title, description,
                completed, due_date, task_created_at, task_updated_at, version)
            VALUES (task.owner_id, nextval('task_event_positions'), kind, task.id,
                task.title, task.description, task.completed, task.due_date,
                task.created_at, task.updated_at, task.version);
        END IF;
    END
    $$""",
    # A position every later event of the owner's will be past: the sequence's last value,
    # once the owner's writes in flight (which may hold smaller ones) have committed.
    "taskql_stream_head(owner text)": f"""
    RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        head bigint;
    BEGIN
        PERFORM pg_advisory_xact_lock_shared({STREAM_LOCK_CLASS}, hashtext(owner));
        SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END INTO head
        FROM task_event_positions;
        RETURN head;
    END
    $$""",
    "taskql_purge(events_before timestamptz, keys_before timestamptz)": """
    RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        events bigint;
        keys bigint;
    BEGIN
        PERFORM set_config('app.purge_before', events_before::text, true);
        WITH purged AS (
            DELETE FROM task_events WHERE recorded_at < events_before
            RETURNING owner_id, position
        ), through AS (
            INSERT INTO task_stream_purges AS p (owner_id, purged_through)
            SELECT owner_id, max(position) FROM purged GROUP BY owner_id
            ON CONFLICT (owner_id) DO UPDATE
                SET purged_through = greatest(p.purged_through, excluded.purged_through)
        )
        SELECT count(*) INTO events FROM purged;
        PERFORM set_config('app.purge_before', keys_before::text, true);
        DELETE FROM idempotency_keys WHERE recorded_at < keys_before;
        GET DIAGNOSTICS keys = ROW_COUNT;
        RETURN events + keys;
    END
    $$""",
}


def _v0005() -> Any:
    return import_module("db.migrations.versions.0005_task_events_and_idempotency_keys")


def _previous() -> dict[str, str]:
    """0005's functions that this revision replaces, as 0005 created them."""
    v0005 = _v0005()
    bodies: dict[str, str] = {**v0005._HELPERS, **v0005._PURGE}
    return {signature: bodies[signature] for signature in _FUNCTIONS if signature in bodies}


def upgrade() -> None:
    # The data moved below belongs to every owner: the migration reads it past row-level
    # security (which FORCE would apply even to the tables' owner), and restores it after.
    for table in ("task_events", "task_streams"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute("CREATE SEQUENCE task_event_positions AS bigint")
    op.execute(
        "SELECT setval('task_event_positions', last) FROM ("
        "SELECT greatest((SELECT max(position) FROM task_events),"
        " (SELECT max(position) FROM task_streams)) AS last) l WHERE last > 0"
    )
    op.execute(f"GRANT USAGE, SELECT ON SEQUENCE task_event_positions TO {APP_ROLE}")
    op.execute(_TABLE)
    # An owner whose first kept event is not their first, or who has none left, had some
    # purged: everything before the first kept one, or everything.
    op.execute(
        "INSERT INTO task_stream_purges (owner_id, purged_through) "
        "SELECT s.owner_id, coalesce(min(e.position) - 1, s.position) FROM task_streams s "
        "LEFT JOIN task_events e ON e.owner_id = s.owner_id GROUP BY s.owner_id, s.position "
        "HAVING coalesce(min(e.position) - 1, s.position) > 0"
    )
    op.execute("ALTER TABLE task_events FORCE ROW LEVEL SECURITY")
    op.execute("DROP TABLE task_streams")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON task_stream_purges TO {APP_ROLE}")
    op.execute("ALTER TABLE task_stream_purges ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE task_stream_purges FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY task_stream_purges_owner ON task_stream_purges FOR SELECT USING ({OWNER})"
    )
    # Only a purge (which names its cut-off first) writes, for any owner.
    op.execute(
        "CREATE POLICY task_stream_purges_purge ON task_stream_purges "
        f"USING ({_PURGING}) WITH CHECK ({_PURGING})"
    )
    for signature, body in _FUNCTIONS.items():
        op.execute(f"CREATE OR REPLACE FUNCTION {signature} {body}")


def downgrade() -> None:
    v0005 = _v0005()
    # As in upgrade: every owner's rows, past row-level security.
    for table in ("task_events", "task_stream_purges"):
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
    op.execute(v0005._TABLES.split(";")[0])  # CREATE TABLE task_streams
    # Each owner's counter continues from their last position, or from the last one purged.
    op.execute(
        "INSERT INTO task_streams (owner_id, position) SELECT owner_id, max(last) FROM ("
        "SELECT owner_id, max(position) AS last FROM task_events GROUP BY owner_id "
        "UNION ALL SELECT owner_id, purged_through FROM task_stream_purges) o GROUP BY owner_id"
    )
    op.execute("ALTER TABLE task_events FORCE ROW LEVEL SECURITY")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON task_streams TO {APP_ROLE}")
    op.execute("ALTER TABLE task_streams ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE task_streams FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY task_streams_owner ON task_streams USING ({OWNER}) WITH CHECK ({OWNER})"
    )
    previous = _previous()
    for signature, body in previous.items():
        op.execute(f"CREATE OR REPLACE FUNCTION {signature} {body}")
    for signature in _FUNCTIONS.keys() - previous.keys():
        op.execute(f"DROP FUNCTION {signature}")
    op.execute("DROP TABLE task_stream_purges")
    op.execute("DROP SEQUENCE task_event_positions")
