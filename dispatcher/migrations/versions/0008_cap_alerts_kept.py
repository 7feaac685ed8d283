"""cap_alerts.kept: what an alert carried that its item does not (other languages, other geocodes, its note).

Revision 0008, after 0007. One column, empty for alerts taken in before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cap_alerts", sa.Column("kept", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("cap_alerts") as batch:
        batch.drop_column("kept")
