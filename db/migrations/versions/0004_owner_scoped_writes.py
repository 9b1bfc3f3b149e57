"""Task writes as functions that name their owner before they touch a row.

Row-level security (0003) reads the owner from app.user_id, which must be set in the same
transaction before the table is scanned. A read can do that in one statement (db/tasks.py
reads tasks in a LATERAL subquery that waits for the owner), but PostgreSQL gives no such
order between parts of one UPDATE or DELETE: the planner may scan the table first. A
function runs its statements in order, so each write is still one statement, one round
trip, in its own transaction.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Each sets the owner first, then changes the owner's task with this id, at the expected
# version when one is given, moving its version and timestamp in the same statement.
_FUNCTIONS = {
    "taskql_update_task(owner text, task_id bigint, expected_version integer, "
    "changed text[], new_title text, new_description text, "
    "new_due_date timestamptz, new_completed boolean)": """
    RETURNS SETOF tasks LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('app.user_id', owner, true);
        -- Only the columns named in `changed` take their new value.
        RETURN QUERY UPDATE tasks SET
            title = CASE WHEN 'title' = ANY (changed) THEN new_title ELSE tasks.title END,
            description = CASE WHEN 'description' = ANY (changed)
                THEN new_description ELSE tasks.description END,
            due_date = CASE WHEN 'due_date' = ANY (changed)
                THEN new_due_date ELSE tasks.due_date END,
            completed = CASE WHEN 'completed' = ANY (changed)
                THEN new_completed ELSE tasks.completed END,
            version = tasks.version + 1, updated_at = now()
        WHERE tasks.owner_id = owner AND tasks.id = task_id
            AND (expected_version IS NULL OR tasks.version = expected_version)
        RETURNING tasks.*;
    END
    $$""",
    "taskql_toggle_task(owner text, task_id bigint, expected_version integer)": """
    RETURNS SETOF tasks LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('app.user_id', owner, true);
        -- One statement flips it, so concurrent toggles never lose one another.
        RETURN QUERY UPDATE tasks SET
            completed = NOT tasks.completed,
            version = tasks.version + 1, updated_at = now()
        WHERE tasks.owner_id = owner AND tasks.id = task_id
            AND (expected_version IS NULL OR tasks.version = expected_version)
        RETURNING tasks.*;
    END
    $$""",
    "taskql_delete_task(owner text, task_id bigint, expected_version integer)": """
    RETURNS SETOF bigint LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM set_config('app.user_id', owner, true);
        RETURN QUERY DELETE FROM tasks
        WHERE tasks.owner_id = owner AND tasks.id = task_id
            AND (expected_version IS NULL OR tasks.version = expected_version)
        RETURNING tasks.id;
    END
    $$""",
}


def upgrade() -> None:
    for signature, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")


def downgrade() -> None:
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
