"""taskql_keep_outcome in PL/pgSQL, so that its UPDATE is planned once per connection.

PostgreSQL before 18 parses and plans the body of a SQL-language function that it cannot
inline (one that writes, like this one) at every call. Every write that carries an
idempotency key calls it once: measured on the benchmark machine (pg_stat_user_functions,
2,000 keyed creates), 97-210 us a call as SQL, 24-59 us in PL/pgSQL, whose statements keep
their plans. Same signature, same effect.

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from importlib import import_module

from alembic import op

revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

SIGNATURE = "taskql_keep_outcome(key text, task tasks, deleted boolean)"

_KEEP_OUTCOME = """
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE idempotency_keys k SET
            task_id = task.id, version = task.version,
            title = CASE WHEN deleted THEN NULL ELSE task.title END,
            description = CASE WHEN deleted THEN NULL ELSE task.description END,
            completed = CASE WHEN deleted THEN NULL ELSE task.completed END,
            due_date = CASE WHEN deleted THEN NULL ELSE task.due_date END,
            task_created_at = CASE WHEN deleted THEN NULL ELSE task.created_at END,
            task_updated_at = CASE WHEN deleted THEN NULL ELSE task.updated_at END
        WHERE k.owner_id = task.owner_id AND k.key = taskql_keep_outcome.key;
    END
    $$"""


def upgrade() -> None:
    op.execute(f"CREATE OR REPLACE FUNCTION {SIGNATURE} {_KEEP_OUTCOME}")


def downgrade() -> None:
    # 0005's function, exactly as 0005 created it.
    previous = import_module("db.migrations.versions.0005_task_events_and_idempotency_keys")
    op.execute(f"CREATE OR REPLACE FUNCTION {SIGNATURE} {previous._HELPERS[SIGNATURE]}")
