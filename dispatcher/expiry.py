"""An item's end: at its ``expires``, what it shows is ended by itself, on the record.

The sweeper asks every sweep for approved items whose live revision has expired and were not ended yet
(``items.expires_at`` / ``ended_at``). For each, in one transaction, every target the item may still
show is asked of its channel (``on_expiry``): a sign's message is cleared (not left to the
controller's whole-minute duration), the post gets a notice at the top or goes to draft
(``DISPATCH_WEBSITE__ON_EXPIRY``), microblog posts stay or are deleted
(``DISPATCH_MICROBLOG__ON_EXPIRY``). Each is a delivery of its own (``withdraw`` or ``expire``), with
its attempts and outcome. Sends of the item that have not left by then end as ``expired`` when a worker
claims them (``delivery.claim``).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy import select

from channels import REGISTRY, build_channel
from dispatcher import approval, corrections, outbox, signing
from dispatcher.items import Item
from dispatcher.ledger import Action, ItemRow, ItemState, Ledger, RevisionRow, record
from dispatcher.rendering import TemplateRenderer
from settings import Settings

log = logging.getLogger(__name__)

#: items ended per sweep at most
END_LIMIT = 100


def end_expired(
    ledger: Ledger, settings: Settings, broker: outbox.Broker | None = None, actor: str = "expiry"
) -> list[int]:
    """End every item whose live revision has expired; return their ids."""
    now = ledger.now()
    with ledger.session() as session:
        due = list(
            session.scalars(
                select(ItemRow.id)
                .where(
                    ItemRow.expires_at <= now,
                    ItemRow.ended_at.is_(None),
                    ItemRow.live_revision_id.is_not(None),
                    ItemRow.state != ItemState.withdrawn,
                )
                .order_by(ItemRow.expires_at)
                .limit(END_LIMIT)
            )
        )
    ended = []
    for item_id in due:
        work = end(ledger, settings, item_id, actor)
        if work is not None:
            ended.append(item_id)
            outbox.enqueue(ledger, broker, work)
    return ended


def end(ledger: Ledger, settings: Settings, item_id: int, actor: str) -> list[tuple[int, str]] | None:
    """End one expired item: the deliveries that take down or mark what it shows, written; their work."""
    key = signing.payload_key(settings)
    renderer = TemplateRenderer(settings.templates_dir)
    with ledger.session() as session:
        row = session.get(ItemRow, item_id, with_for_update=True)
        if row is None or row.ended_at is not None or row.state is ItemState.withdrawn:
            return None  # another sweep ended it, or it was withdrawn meanwhile
        row.ended_at = ledger.now()
        live = session.get_one(RevisionRow, row.live_revision_id)
        publication = replace(approval.stored_publication(session, settings, row, live), stage="expired")
        adapters = {
            name: build_channel(name, settings)
            for name, cls in REGISTRY.items()
            if not cls.reaches_subscribers
        }
        deliveries = []
        for before in corrections.reached(session, item_id, list(adapters)):
            adapter = adapters[before.channel]
            queue = approval.queue_for(row.kind, before.channel)
            if adapter.on_expiry == "withdraw":
                ending = replace(before, payload={**before.payload, "ending": "expired"})
                deliveries.append(corrections.withdrawal(key, live.id, item_id, queue, ending))
            elif adapter.on_expiry == "mark":
                target = next((t for t in adapter.targets(publication) if t.name == before.target), None)
                if target is None:
                    continue
                payload = adapter.prepare(publication, target, renderer)
                marked = corrections.pending(key, live.id, item_id, queue, payload, f"#expired-{before.id}")
                marked.action, marked.replaces_id = Action.expire, before.id
                deliveries.append(marked)
        work = corrections.write_pending(session, deliveries, actor)
        record(
            session,
            "item.ended",
            actor=actor,
            item_id=item_id,
            revision=live.number,
            expires=Item.model_validate(live.document).expires.isoformat(),
            deliveries=[delivery_id for delivery_id, _ in work],
        )
        return work
