"""Create the tasks table.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("completed", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        # Defence in depth: the application validates these too, with friendlier messages.
        sa.CheckConstraint("char_length(title) BETWEEN 1 AND 255", name="tasks_title_length"),
        sa.CheckConstraint("char_length(description) <= 10000", name="tasks_description_length"),
    )
    op.create_index("tasks_owner_created_idx", "tasks", ["owner_id", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("tasks_owner_created_idx", table_name="tasks")
    op.drop_table("tasks")
