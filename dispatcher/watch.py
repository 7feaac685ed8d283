"""Keeping targets showing what was sent to them (signs that forget).

A sign controller that restarts forgets its messages, and one that was off the network may come back
blank. The watch (a periodic task, every ``DISPATCH_DISPLAY__WATCH_INTERVAL`` seconds) asks every
channel that declares ``forgets`` about each target holding a message still valid. The message a
target should show is the one of highest ``rank``, and among those the latest sent (a newer warning
replaces an older one; the older is not put back). When the target has lost it, the delivery goes back
to ``pending`` with a ``delivery.lost`` event and a fresh retry budget, and is sent again through the
delivery path like any other — claimed under a lease, its pin checked, its circuit and rate limit
honoured, each attempt on the record. The channel takes a known id as the same message. A withdrawal
is respected: a delivery withdrawn on the record, or a target cleared on purpose (an operator at the
sign, another central system), is never refilled; the latter is recorded as a withdrawal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from channels import REGISTRY, build_channel
from channels.base import Channel, Payload, Presence
from dispatcher import outbox
from dispatcher.errors import DispatchError
from dispatcher.ledger import (
    TERMINAL,
    Action,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RevisionRow,
    move,
    record_delivery,
)
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WatchReport:
    checked: int = 0
    #: deliveries whose target lost them, back to ``pending`` to be sent again
    lost: list[int] = field(default_factory=list)
    withdrawn: list[int] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


def wanted(ledger: Ledger, channel: Channel, now: datetime) -> list[DeliveryRow]:
    """Per target of ``channel``, the one sent delivery that should be showing now.

    A delivery being sent again (lost, and not yet back to ``sent``) still holds its target: while
    it is in flight no other delivery is put back there, or a warning a newer one replaced could be
    refilled in between and end up showing. Deliveries rank by the channel's rank, then by when they
    were first sent (a refill keeps the first time)."""
    with ledger.session() as session:
        # Only what the item's live revision put there: a sign a correction replaced, or an item that was
        # withdrawn, is never refilled with what it showed before.
        rows = session.execute(
            select(DeliveryRow, RevisionRow.document)
            .join(RevisionRow, RevisionRow.id == DeliveryRow.revision_id)
            .join(ItemRow, ItemRow.id == DeliveryRow.item_id)
            .where(
                DeliveryRow.channel == channel.name,
                DeliveryRow.sent_at.is_not(None),
                DeliveryRow.state.not_in(TERMINAL - {DeliveryState.sent}),
                DeliveryRow.action.in_([Action.publish, Action.update]),
                DeliveryRow.revision_id == ItemRow.live_revision_id,
                ItemRow.state != ItemState.withdrawn,
            )
        ).all()
        withdrawn = set(
            session.scalars(select(EventRow.delivery_id).where(EventRow.name == "delivery.withdrawn"))
        )
    # The expiry as approved, read as it was written: a stored document is not validated again
    # against rules that may have grown stricter since (one old item must not stop the watch).
    live = [
        d for d, doc in rows if datetime.fromisoformat(str(doc["expires"])) > now and d.id not in withdrawn
    ]
    best: dict[str, tuple[tuple[int, datetime, int], DeliveryRow]] = {}
    for delivery in live:
        payload = Payload(delivery.channel, delivery.target, delivery.payload)
        rank = (channel.rank(payload), delivery.sent_at, delivery.id)
        if delivery.target not in best or rank > best[delivery.target][0]:
            best[delivery.target] = (rank, delivery)
    # A target whose message is on its way back is left alone until it lands.
    return [delivery for _, delivery in best.values() if delivery.state is DeliveryState.sent]


def watch(
    ledger: Ledger,
    settings: Settings,
    channel_for: Callable[[str], Channel] | None = None,
    broker: outbox.Broker | None = None,
    actor: str = "watch",
) -> WatchReport:
    """Ask every target that can forget whether it still shows its message; put back what was lost."""
    adapter = channel_for or (lambda name: build_channel(name, settings))
    now = ledger.now()
    report = WatchReport()
    requeue: list[tuple[int, str]] = []
    for name, cls in REGISTRY.items():
        if not cls.forgets:
            continue
        channel = adapter(name)
        for delivery in wanted(ledger, channel, now):
            report.checked += 1
            payload = Payload(name, delivery.target, delivery.payload)
            try:
                presence = channel.presence(payload, delivery.idempotency_key, now)
            except DispatchError as exc:
                report.unreachable.append(delivery.target)
                log.warning("%s %s: %s", name, delivery.target, exc)
                continue
            if presence.state in (Presence.SHOWN, Presence.ENDED):
                continue
            with ledger.session() as session:
                row = session.get(DeliveryRow, delivery.id, with_for_update=True)
                if row is None or row.state is not DeliveryState.sent:
                    continue  # it moved on meanwhile (re-sent, withdrawn): nothing to do
                if presence.state == Presence.WITHDRAWN:
                    report.withdrawn.append(row.id)
                    record_delivery(
                        session,
                        row,
                        "delivery.withdrawn",
                        actor=actor,
                        target=row.target,
                        reason=presence.detail,
                    )
                    continue
                report.lost.append(row.id)
                # Sent again from a fresh budget, like a re-drive: the first attempts are history.
                row.attempts, row.next_attempt_at, row.enqueued_at = 0, None, None
                move(
                    session,
                    row,
                    DeliveryState.pending,
                    "delivery.lost",
                    actor=actor,
                    target=row.target,
                    reason=presence.detail,
                )
                requeue.append((row.id, row.queue))
    outbox.enqueue(ledger, broker, requeue)
    return report
