"""Row-level security on tasks: a row is visible only to the owner named by app.user_id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The role the application acts as (SET LOCAL ROLE): neither superuser nor BYPASSRLS, so the
# policy binds it even when the login role could bypass row-level security.
APP_ROLE = "taskql_app"
OWNER = "owner_id = current_setting('app.user_id', true)"


def upgrade() -> None:
    # Roles belong to the whole server, so another database's migration may have made it already.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS;
            END IF;
            -- The migrating login (also the app's, by default) may then SET ROLE to it.
            EXECUTE format('GRANT {APP_ROLE} TO %I', current_user);
        END
        $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA {_schema()} TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tasks TO {APP_ROLE}")
    op.execute("ALTER TABLE tasks ENABLE ROW LEVEL SECURITY")
    # FORCE: the table owner is bound too, in case the app logs in as the owner.
    op.execute("ALTER TABLE tasks FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tasks_owner ON tasks USING ({OWNER}) WITH CHECK ({OWNER})")


def downgrade() -> None:
    op.execute("DROP POLICY tasks_owner ON tasks")
    op.execute("ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE tasks DISABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE ALL ON tasks FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA {_schema()} FROM {APP_ROLE}")
    # The role stays: other databases on the same server may still use it.


def _schema() -> str:
    return str(op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar())
