"""Indexes that keep every supported order of one owner's task list an index scan.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# created_at already has tasks_owner_created_idx (0001). The due-date keys must be written
# exactly as db/tables.py writes them, or the planner will not match them to the query.
_INDEXES = {
    "tasks_owner_updated_idx": ["owner_id", "updated_at", "id"],
    "tasks_owner_title_idx": ["owner_id", "title", "id"],
    "tasks_owner_due_asc_idx": [
        "owner_id",
        sa.text("coalesce(due_date, 'infinity'::timestamptz)"),
        "id",
    ],
    "tasks_owner_due_desc_idx": [
        "owner_id",
        sa.text("coalesce(due_date, '-infinity'::timestamptz)"),
        "id",
    ],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "tasks", columns)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name="tasks")
