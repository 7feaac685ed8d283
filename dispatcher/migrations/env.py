"""Alembic's environment for the ledger: runs the revisions on the connection the caller passes in.

It reads no setting and no environment variable: :mod:`dispatcher.migrate` opens the connection (with
the ledger's lock held) and puts it in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeDecorator

from dispatcher.ledger import Base


def render_item(kind: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    # A revision writes the type the database stores, never a model's own type (``UTCDateTime``):
    # revisions must not change when the models do.
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the ledger's migrations run on a connection passed in by dispatcher.migrate: use "
        "`dispatch ledger upgrade` or `python -m dispatcher.migrate`"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a column only by copying its table: autogenerate writes batch operations, which
    # are plain ALTERs on PostgreSQL.
    render_as_batch=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
