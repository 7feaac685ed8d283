"""events.prev_hash and events.hash: the event log as a chain, each event carrying the hash of the one
before (``dispatch ledger verify`` walks it).

Revision 0010, after 0009. Two columns; the events already there are chained in their order. The log is
append-only by trigger, so the triggers are dropped for the fill and made again, as the first revision
makes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from dispatcher.ledger import GENESIS, event_hash

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def _triggers(make: bool) -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            if make:
                op.execute(
                    f"CREATE TRIGGER IF NOT EXISTS events_no_{action.lower()} BEFORE {action} ON events "
                    "BEGIN SELECT RAISE(ABORT, 'events is append-only'); END"
                )
            else:
                op.execute(f"DROP TRIGGER IF EXISTS events_no_{action.lower()}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS events_append_only ON events")
        if make:
            op.execute(
                "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
                "FOR EACH ROW EXECUTE FUNCTION dispatch_append_only()"
            )


def upgrade() -> None:
    op.add_column("events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("events", sa.Column("hash", sa.String(64), nullable=True))
    bind = op.get_bind()
    events = sa.table(
        "events",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("item_id", sa.Integer),
        sa.column("delivery_id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("actor", sa.String),
        sa.column("detail", sa.JSON),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    rows = bind.execute(sa.select(events).order_by(events.c.id)).all()
    if not rows:
        return
    _triggers(make=False)
    prev = GENESIS
    for row in rows:
        at = row.at
        if isinstance(at, str):
            at = datetime.fromisoformat(at)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        detail = json.loads(row.detail) if isinstance(row.detail, str) else row.detail
        own = event_hash(prev, at, row.name, row.actor, row.item_id, row.delivery_id, detail)
        bind.execute(sa.update(events).where(events.c.id == row.id).values(prev_hash=prev, hash=own))
        prev = own
    _triggers(make=True)


def downgrade() -> None:
    _triggers(make=False)
    with op.batch_alter_table("events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    _triggers(make=True)
