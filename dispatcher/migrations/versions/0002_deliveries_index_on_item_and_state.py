"""deliveries: one index on (item_id, state) in place of the index on item_id alone.

Revision 0002, after 0001.

Whether an item still has deliveries on their way, asked each time one of them ends, becomes a lookup
in this index instead of counting every delivery of the item. The index serves every query by item
alone too, so the one on ``item_id`` goes. Only indexes change: no table is copied, on any database.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_item_id_state", "deliveries", ["item_id", "state"])
    op.drop_index("ix_deliveries_item_id", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_item_id", "deliveries", ["item_id"])
    op.drop_index("ix_deliveries_item_id_state", table_name="deliveries")
