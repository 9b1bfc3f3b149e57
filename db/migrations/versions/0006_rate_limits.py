"""Each user's rate-limit bucket, shared by every worker of every instance.

`rate_limits` holds one token bucket per user: the tokens it had at `counted_at`. Workers do
not spend a token per request here: `taskql_take_tokens` refills the bucket for the time
elapsed, takes up to the number of tokens asked for (a lease the worker then spends in its
own memory), and says how long until the next token when there is none.

The table is UNLOGGED: a bucket is worth less than the write-ahead log it would cost on
every lease. A crash or a failover empties it, which only refills every user's bucket.
Row-level security binds it like the other tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

APP_ROLE = "taskql_app"
OWNER = "owner_id = current_setting('app.user_id', true)"

_TABLE = """
CREATE UNLOGGED TABLE rate_limits (
    owner_id text PRIMARY KEY,
    tokens double precision NOT NULL,
    counted_at timestamptz NOT NULL
)
"""

_TAKE = "taskql_take_tokens(owner text, wanted integer, per_second double precision, burst double precision)"
_TAKE_BODY = """
    RETURNS TABLE (granted integer, wait_seconds double precision) LANGUAGE plpgsql AS $$
    DECLARE
        available double precision;
        taken integer;
    BEGIN
        PERFORM set_config('app.user_id', owner, true);
        -- A new user starts with a full bucket. The row stays locked until commit, so two
        -- workers leasing for the same user take turns.
        INSERT INTO rate_limits AS r (owner_id, tokens, counted_at)
        VALUES (owner, burst, now())
        ON CONFLICT (owner_id) DO UPDATE SET
            tokens = least(burst, r.tokens + per_second * extract(epoch FROM now() - r.counted_at)),
            counted_at = now()
        RETURNING r.tokens INTO available;
        taken := least(wanted, floor(available))::integer;
        IF taken > 0 THEN
            UPDATE rate_limits r SET tokens = r.tokens - taken WHERE r.owner_id = owner;
            RETURN QUERY SELECT taken, 0::double precision;
        ELSE
            RETURN QUERY SELECT 0, (1 - available) / per_second;
        END IF;
    END
    $$"""


def upgrade() -> None:
    op.execute(_TABLE)
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON rate_limits TO {APP_ROLE}")
    op.execute("ALTER TABLE rate_limits ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE rate_limits FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY rate_limits_owner ON rate_limits USING ({OWNER}) WITH CHECK ({OWNER})"
    )
    op.execute(f"CREATE FUNCTION {_TAKE} {_TAKE_BODY}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {_TAKE}")
    op.execute("DROP TABLE rate_limits")
