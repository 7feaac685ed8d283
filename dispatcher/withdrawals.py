"""Withdrawing an item from every channel it reached (``dispatch retract``).

Taking a wrong warning down must not wait for a second person: a withdrawal is executed at once, and
recorded with who did it and why. In one transaction:

- the item becomes ``withdrawn``; a revision awaiting review can no longer be approved;
- every delivery that has not left yet is ``cancelled``; one in a worker's hands or whose outcome is in
  doubt settles first (by lookup or delivery reports, never by sending again);
- everything that may have reached a target is taken down by a ``withdraw`` delivery of its own — the
  post to the trash or to draft (``DISPATCH_WEBSITE__RETRACT_TO``), microblog posts deleted, a sign's
  message cleared (it goes back to what it showed before) — each waiting until what it takes down has
  settled, with its own attempts, outcome and events;
- a text cannot be taken back: where ``DISPATCH_SMS__WITHDRAWAL_NOTICE`` is on, everyone who received
  one gets a ``notice`` that the item no longer stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from channels import REGISTRY, build_channel
from dispatcher import approval, corrections, outbox, signing, subscribers
from dispatcher.errors import NotFoundError, RefusedError
from dispatcher.items import Item
from dispatcher.ledger import (
    Action,
    DeliveryState,
    ItemRow,
    ItemState,
    Ledger,
    RevisionRow,
    record,
)
from dispatcher.rendering import TemplateRenderer, publication_for
from settings import Settings


@dataclass
class Withdrawal:
    """What a withdrawal set in motion."""

    item_id: int
    cancelled: int = 0
    #: deliveries that take something down, by channel
    taking_down: dict[str, int] = field(default_factory=dict)
    #: phones a withdrawal notice goes to
    notified: int = 0
    enqueued: int = 0

    def view(self) -> dict[str, Any]:
        """As the command line's ``--json`` and the API answer it."""
        return {
            "id": self.item_id,
            "state": "withdrawn",
            "cancelled": self.cancelled,
            "taking_down": self.taking_down,
            "notified": self.notified,
            "enqueued": self.enqueued,
        }


def retract(
    ledger: Ledger,
    settings: Settings,
    item_id: int,
    actor: str,
    reason: str,
    broker: outbox.Broker | None = None,
    *,
    also: Callable[[Session, int], None] | None = None,
) -> Withdrawal:
    """Withdraw an approved item from every channel it reached; see the module's docstring."""
    actor = approval.person(actor, "a withdrawal needs the name of who withdraws it")
    if not reason.strip():
        raise RefusedError("a withdrawal needs a reason (--reason TEXT), kept in the ledger")
    reason = reason.strip()
    key = signing.payload_key(settings)
    renderer = TemplateRenderer(settings.templates_dir)
    done = Withdrawal(item_id)
    with ledger.session() as session:
        row = session.get(ItemRow, item_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no item {item_id}")
        if row.state is ItemState.withdrawn:
            raise RefusedError(f"item {item_id} was withdrawn already; nothing more was done")
        if row.live_revision_id is None:
            raise RefusedError(
                f"item {item_id} was never approved, so nothing of it went out; reject it instead "
                f"(dispatch reject {item_id})"
            )
        live = session.get_one(RevisionRow, row.live_revision_id)
        row.state = ItemState.withdrawn
        record(session, "item.withdrawn", actor=actor, item_id=item_id, reason=reason, revision=live.number)
        if also is not None:
            also(session, item_id)  # recorded in the same transaction (the CAP Cancel it came from)
        done.cancelled = corrections.stop_earlier(
            session,
            item_id,
            None,
            DeliveryState.cancelled,
            "delivery.cancelled",
            actor,
            why=f"the item was withdrawn before it was sent: {reason}",
        )
        fixed = [name for name, cls in REGISTRY.items() if not cls.reaches_subscribers and cls.can_withdraw]
        seen: set[tuple[str, str, str]] = set()
        deliveries = []
        for before in reversed(corrections.reached(session, item_id, fixed)):
            # An edited post is one post, whatever the revisions that edited it: taken down once.
            provider = before.provider_id or f"#{before.id}"
            if (before.channel, before.target, provider) in seen:
                continue
            seen.add((before.channel, before.target, provider))
            queue = approval.queue_for(row.kind, before.channel)
            deliveries.append(corrections.withdrawal(key, live.id, item_id, queue, before))
            done.taking_down[before.channel] = done.taking_down.get(before.channel, 0) + 1
        work = corrections.write_pending(session, deliveries, actor)
        if settings.sms.withdrawal_notice:
            item = Item.model_validate(live.document)
            publication = publication_for(
                item,
                item_id=item_id,
                uid=row.uid,
                revision=live.number,
                public_url=settings.website.public_url,
                stage="withdrawal",
                reason=reason,
            )
            for name in approval.channels_of(item):
                if not REGISTRY[name].reaches_subscribers:
                    continue
                adapter = build_channel(name, settings)
                writer = approval.AudienceWriter(
                    session, key, adapter, live.id, item_id, row.kind, actor, Action.notice
                )
                for batch in subscribers.batches_of(
                    subscribers.received_earlier(session, item_id, name), adapter.recipients_per_target
                ):
                    writer.add(adapter.prepare(publication, writer.next_target(batch), renderer), batch)
                    done.notified += len(batch)
                notices = writer.flush()
                work += notices[: approval.PUBLISHED_AT_APPROVAL]
                if notices:
                    done.taking_down[name] = len(notices)
    done.enqueued = outbox.enqueue(ledger, broker, work)
    return done
