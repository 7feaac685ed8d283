"""Keeping signs showing what was sent to them.

A sign controller that restarts forgets its messages, and one that was off the network missed
nothing but may come back blank. The watch (a periodic task, every ``DISPATCH_DISPLAY__WATCH_INTERVAL``
seconds) reads every sign that was sent a message still valid. The message a sign should show is the
highest-priority one, and among those the latest sent (a newer warning replaces an older one; the
older is not put back). When the sign shows neither that message nor one of higher priority, the
watch sends it again with the same id — the controller takes a known id as the same message. Each
re-send is an event in the ledger. A withdrawal is respected: a delivery withdrawn on the record, or a
sign that was blanked on purpose (its controller says an operator or another central system did it,
not a reset or a power loss), is never refilled; the latter is recorded as a withdrawal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from channels import build_channel
from channels.base import Payload
from channels.display import DisplayChannel
from dispatcher import signing
from dispatcher.errors import ChannelError, DispatchError
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger, RevisionRow, record, utcnow
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class WatchReport:
    checked: int = 0
    resent: list[int] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


def watch_signs(ledger: Ledger, settings: Settings, channel: DisplayChannel | None = None) -> WatchReport:
    """Check every sign holding a valid message of ours; re-send what a sign lost."""
    now = utcnow()
    with ledger.session() as session:
        rows = session.execute(
            select(DeliveryRow, RevisionRow.document)
            .join(RevisionRow, RevisionRow.id == DeliveryRow.revision_id)
            .where(DeliveryRow.channel == "display", DeliveryRow.state == DeliveryState.sent)
        ).all()
        withdrawn = set(
            session.scalars(select(EventRow.delivery_id).where(EventRow.name == "delivery.withdrawn"))
        )
        # The expiry as approved, read as it was written: a stored document is not validated again
        # against rules that may have grown stricter since (one old item must not stop the watch).
        live = [
            d
            for d, doc in rows
            if datetime.fromisoformat(str(doc["expires"])) > now and d.id not in withdrawn
        ]
    # Per sign, the one message that should be showing: the highest priority, then the latest sent.
    # An older message that a newer one of the same priority replaced is not put back.
    wanted: dict[str, DeliveryRow] = {}
    for delivery in live:
        best = wanted.get(delivery.target)
        rank = (delivery.payload["priority"], delivery.sent_at or delivery.created_at, delivery.id)
        if best is None or rank > (best.payload["priority"], best.sent_at or best.created_at, best.id):
            wanted[delivery.target] = delivery
    report = WatchReport()
    if not wanted:
        return report
    display = channel or build_channel("display", settings)
    assert isinstance(display, DisplayChannel)
    key = signing.payload_key(settings)
    for delivery in wanted.values():
        report.checked += 1
        if not signing.pinned(key, delivery.payload, delivery.idempotency_key, delivery.payload_digest):
            # Every path that sends checks the pin: a payload edited in the ledger never reaches a sign.
            report.refused.append(delivery.id)
            log.error(
                "sign %s: delivery %s does not match its approval pin; not re-sent",
                delivery.target,
                delivery.id,
            )
            with ledger.session() as session:
                record(
                    session,
                    "delivery.refused",
                    actor="sign-watch",
                    item_id=delivery.item_id,
                    delivery_id=delivery.id,
                    reason="payload does not match its approval pin",
                )
            continue
        payload = Payload("display", delivery.target, delivery.payload)
        try:
            shown = display.showing(payload.body["sign"])
            if shown and shown.get("blanked_by"):
                # Someone blanked the sign on purpose (an operator at the sign, another central
                # system): a withdrawal, recorded and respected — not a sign that forgot.
                with ledger.session() as session:
                    record(
                        session,
                        "delivery.withdrawn",
                        actor="sign-watch",
                        item_id=delivery.item_id,
                        delivery_id=delivery.id,
                        sign=delivery.target,
                        reason=f"blanked at the sign ({shown['blanked_by']})",
                    )
                continue
            if shown and (
                shown.get("id") == delivery.idempotency_key or shown["priority"] > payload.body["priority"]
            ):
                continue
            display.send(payload, delivery.idempotency_key)
        except (ChannelError, DispatchError) as exc:
            report.unreachable.append(delivery.target)
            log.warning("sign %s: %s", delivery.target, exc)
            continue
        report.resent.append(delivery.id)
        with ledger.session() as session:
            record(
                session,
                "delivery.resent",
                actor="sign-watch",
                item_id=delivery.item_id,
                delivery_id=delivery.id,
                sign=delivery.target,
                reason="blank" if not shown else f"showed {shown.get('id')}",
            )
    return report
