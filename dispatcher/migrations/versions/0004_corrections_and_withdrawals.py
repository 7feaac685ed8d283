"""Corrections and withdrawals: what a delivery does at its target, and which revision is live.

Revision 0004, after 0003.

- ``deliveries.action``: ``publish`` (every delivery so far), ``update``, ``follow_up``, ``withdraw`` or
  ``notice``; ``deliveries.replaces_id``: the earlier delivery on the same target it acts on.
- ``items.live_revision_id``: the latest approved revision, filled in for items approved before.

Columns are added with their defaults (no table is copied, on any database); the new delivery and item
states (``superseded``, ``cancelled``, ``withdrawn``) fit the existing columns.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("action", sa.String(12), nullable=False, server_default="publish"))
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a column with its reference in place when its default is NULL (no table is
        # copied), but Alembic does not write that statement.
        op.execute("ALTER TABLE deliveries ADD COLUMN replaces_id INTEGER REFERENCES deliveries (id)")
    else:
        op.add_column("deliveries", sa.Column("replaces_id", sa.Integer(), nullable=True))
        op.create_foreign_key(None, "deliveries", "deliveries", ["replaces_id"], ["id"])
    op.add_column("items", sa.Column("live_revision_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE items SET live_revision_id = (SELECT max(revisions.id) FROM revisions JOIN approvals "
        "ON approvals.revision_id = revisions.id WHERE revisions.item_id = items.id "
        "AND approvals.decision = 'approved')"
    )


def downgrade() -> None:
    op.drop_column("items", "live_revision_id")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("replaces_id")
        batch.drop_column("action")
