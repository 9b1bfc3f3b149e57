"""Bulk writes by filter, and the persisted GraphQL documents every instance shares.

- `taskql_set_tasks_completion` and `taskql_delete_tasks` change many of one owner's tasks in
  one statement. The caller passes the ids it selected (db/tasks.py selects them in the same
  statement, with the listing's own filter, locking them in id order, so two bulk writes never
  deadlock and a task changed while it waited is checked against the filter again). More ids
  than `max_tasks` change nothing and say so. Each changed task gets its version bumped and
  its own event, recorded by `taskql_record_event` like every single write's.
- `persisted_documents` maps the SHA-256 of a GraphQL document to its text (the automatic
  persisted queries protocol, and documents registered at deploy time). A CHECK keeps every
  row's hash true to its text. Documents are the application's, not a user's, so the table
  is not under row-level security; the app role may read and add them, never change one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "taskql_app"

# What both bulk functions return: one row per changed task (only id and version for a
# deletion), or a single row with too_many set and nothing else, when more than max_tasks
# were selected and nothing was changed.
_OUTCOME = (
    "too_many boolean, id bigint, title text, description text, completed boolean, "
    "due_date timestamptz, created_at timestamptz, updated_at timestamptz, version integer"
)
_TOO_MANY = """
        IF cardinality(task_ids) > max_tasks THEN
            RETURN QUERY SELECT true, NULL::bigint, NULL::text, NULL::text, NULL::boolean,
                NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, NULL::integer;
            RETURN;
        END IF;"""


def _bulk_function(body: str) -> str:
    return f"""
    RETURNS TABLE ({_OUTCOME}) LANGUAGE plpgsql AS $$
    #variable_conflict use_column
    DECLARE
        written tasks;
    BEGIN
        PERFORM set_config('app.user_id', owner, true);{_TOO_MANY}{body}
    END
    $$"""


_FUNCTIONS = {
    "taskql_set_tasks_completion(owner text, new_completed boolean, task_ids bigint[], "
    "max_tasks integer)": _bulk_function(
        """
        -- Only tasks whose completion changes are written, and get an event.
        FOR written IN
            UPDATE tasks t SET
                completed = new_completed, version = t.version + 1, updated_at = now()
            WHERE t.owner_id = owner AND t.id = ANY (task_ids)
                AND t.completed IS DISTINCT FROM new_completed
            RETURNING t.*
        LOOP
            PERFORM taskql_record_event('completion_toggled', written);
            RETURN QUERY SELECT false, written.id, written.title, written.description,
                written.completed, written.due_date, written.created_at, written.updated_at,
                written.version;
        END LOOP;"""
    ),
    "taskql_delete_tasks(owner text, task_ids bigint[], max_tasks integer)": _bulk_function(
        """
        FOR written IN
            DELETE FROM tasks t WHERE t.owner_id = owner AND t.id = ANY (task_ids)
            RETURNING t.*
        LOOP
            PERFORM taskql_record_event('deleted', written);
            RETURN QUERY SELECT false, written.id, NULL::text, NULL::text, NULL::boolean,
                NULL::timestamptz, NULL::timestamptz, NULL::timestamptz, written.version;
        END LOOP;"""
    ),
}

_DOCUMENTS = """
CREATE TABLE persisted_documents (
    -- Lower-case hexadecimal SHA-256 of the document's UTF-8 text, as clients send it.
    hash text PRIMARY KEY,
    document text NOT NULL,
    -- automatic: learnt from a client (APQ); deployed: registered from a frontend's manifest.
    kind text NOT NULL CHECK (kind IN ('automatic', 'deployed')),
    registered_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT persisted_documents_hash_matches
        CHECK (hash = encode(sha256(convert_to(document, 'UTF8')), 'hex'))
)
"""


def upgrade() -> None:
    for signature, body in _FUNCTIONS.items():
        op.execute(f"CREATE FUNCTION {signature} {body}")
    op.execute(_DOCUMENTS)
    # UPDATE only for a deployment's registration, which turns an automatic row into a
    # deployed one; the text of a hash never changes (the CHECK above).
    op.execute(f"GRANT SELECT, INSERT, UPDATE (kind) ON persisted_documents TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP TABLE persisted_documents")
    for signature in _FUNCTIONS:
        op.execute(f"DROP FUNCTION {signature}")
