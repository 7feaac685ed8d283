"""endorsements: the first approvals of revisions that need two (severe warnings), append-only.

Revision 0006, after 0005. A new table, with the same triggers as ``events`` and ``approvals``: rows are
inserted, never updated or deleted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "endorsements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("revision_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["revision_id"], ["revisions.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("revision_id", "approver"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER IF NOT EXISTS endorsements_no_{action.lower()} BEFORE {action} "
                "ON endorsements BEGIN SELECT RAISE(ABORT, 'endorsements is append-only'); END"
            )
    elif dialect == "postgresql":
        # dispatch_append_only() is the first revision's
        op.execute(
            "CREATE TRIGGER endorsements_append_only BEFORE UPDATE OR DELETE ON endorsements "
            "FOR EACH ROW EXECUTE FUNCTION dispatch_append_only()"
        )


def downgrade() -> None:
    op.drop_table("endorsements")
