"""Rate-limit buckets that have filled up again can be purged, like expired events and keys.

A bucket untouched for as long as it takes to refill from empty holds `burst` tokens, exactly
what a missing row starts with, so removing it changes nothing a user can notice; without
this, `rate_limits` kept one row for every user who ever made a request. As with
`task_events` and `idempotency_keys`, rows can be deleted across owners only by
`taskql_purge_rate_limits`, which names the cut-off; a lease racing the purge either renews
the row first (then the purge's check no longer matches it) or starts a full bucket after.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "taskql_app"
_PURGEABLE = "counted_at < nullif(current_setting('app.purge_before', true), '')::timestamptz"
_PURGE = "taskql_purge_rate_limits(full_before timestamptz)"
_PURGE_BODY = """
    RETURNS bigint LANGUAGE plpgsql AS $$
    DECLARE
        removed bigint;
    BEGIN
        IF full_before IS NULL THEN
            RETURN 0;
        END IF;
        PERFORM set_config('app.purge_before', full_before::text, true);
        DELETE FROM rate_limits WHERE counted_at < full_before;
        GET DIAGNOSTICS removed = ROW_COUNT;
        RETURN removed;
    END
    $$"""


def upgrade() -> None:
    op.execute(f"GRANT DELETE ON rate_limits TO {APP_ROLE}")
    # A DELETE reads the rows it matches, so they must be visible to it too.
    for command in ("SELECT", "DELETE"):
        op.execute(
            f"CREATE POLICY rate_limits_purge_{command.lower()} ON rate_limits "
            f"FOR {command} USING ({_PURGEABLE})"
        )
    op.execute(f"CREATE FUNCTION {_PURGE} {_PURGE_BODY}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_PURGE}")
    for command in ("select", "delete"):
        op.execute(f"DROP POLICY rate_limits_purge_{command} ON rate_limits")
    op.execute(f"REVOKE DELETE ON rate_limits FROM {APP_ROLE}")
