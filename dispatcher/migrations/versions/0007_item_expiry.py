"""items.expires_at and items.ended_at: when an item's live revision expires, and when what it showed
was ended (signs cleared, the post marked).

Revision 0007, after 0006. Two columns and an index; ``expires_at`` is filled in from the live revision
of every item approved before.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("items", sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_items_expires_at", "items", ["expires_at"])
    bind = op.get_bind()
    live = bind.execute(
        sa.text(
            "SELECT items.id, revisions.document FROM items JOIN revisions "
            "ON revisions.id = items.live_revision_id"
        )
    ).all()
    items = sa.table(
        "items", sa.column("id", sa.Integer), sa.column("expires_at", sa.DateTime(timezone=True))
    )
    for item_id, document in live:
        data = json.loads(document) if isinstance(document, str) else document
        expires = datetime.fromisoformat(str(data["expires"])).astimezone(UTC)
        if bind.dialect.name == "sqlite":
            expires = expires.replace(tzinfo=None)  # as the ledger's own type stores it there
        bind.execute(sa.update(items).where(items.c.id == item_id).values(expires_at=expires))


def downgrade() -> None:
    op.drop_index("ix_items_expires_at", table_name="items")
    op.drop_column("items", "ended_at")
    op.drop_column("items", "expires_at")
