"""sms_recipients: the index on delivery_id goes; the unique index on (delivery_id, phone) serves it.

Revision 0003, after 0002.

Approval writes one row per phone of an audience, a million for a large warning, and every index is
kept up to date row by row. The unique index on (delivery_id, phone) already answers every query by
delivery alone (its first column), so the second index only cost time: a fifth of writing a million
rows. Only an index changes: no table is copied, on any database.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_sms_recipients_delivery_id", table_name="sms_recipients")


def downgrade() -> None:
    op.create_index("ix_sms_recipients_delivery_id", "sms_recipients", ["delivery_id"])
