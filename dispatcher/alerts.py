"""CAP 1.2 alerts in and out of the flow: what an alert becomes, and the alert an item is.

Taken in (``dispatch submit alert.xml``, by the user who submits it, an author; a Cancel needs an
approver too): an ``Alert`` becomes a new item for review; an ``Update`` a new revision of the item the
alert it references became (reviewed like any correction); a ``Cancel`` the withdrawal of that item, at
once (a withdrawal waits for no second person). The
reference may name an alert taken in before, or one this dispatcher exported. Every alert taken in is
kept (``cap_alerts``) with the item and revision it became; the same alert twice is refused.

Written (``dispatch export ID --cap``): each approved revision of a warning is one message — the first
an ``Alert``, each later one an ``Update`` — and a withdrawal a ``Cancel``; every message references
all the earlier ones (and the alerts the item came from), and carries its times with the office's
offset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher import approval, cap, outbox
from dispatcher.errors import InvalidItemError, NotFoundError, RefusedError
from dispatcher.items import Item, Kind, parse_item
from dispatcher.ledger import ApprovalRow, CapAlertRow, EventRow, ItemRow, Ledger
from dispatcher.rendering import publication_for
from dispatcher.withdrawals import Withdrawal, retract
from settings import Settings


@dataclass
class Received:
    """What an alert taken in became."""

    item_id: int
    msg_type: str
    identifier: str
    #: the revision an Alert or Update became (submitted for review)
    revision: int | None = None
    #: what a Cancel set in motion
    withdrawal: Withdrawal | None = None

    def view(self) -> dict[str, Any]:
        """As the command line's ``--json`` and the API answer it."""
        return {
            "id": self.item_id,
            "cap": self.msg_type,
            "identifier": self.identifier,
            "revision": self.revision,
            "state": "withdrawn" if self.withdrawal else "submitted",
        }


def receive(
    ledger: Ledger,
    settings: Settings,
    data: bytes,
    author: str,
    *,
    source: str = "alert",
    broker: outbox.Broker | None = None,
    allowed: Callable[[str], object] | None = None,
) -> Received:
    """Take in one CAP alert submitted by ``author``; see the module's docstring. ``allowed`` is asked,
    before anything is written, whether the author may do what the alert does (``submit``, ``update`` or
    ``retract``): it raises if not."""
    alert = cap.read_alert(
        data,
        language=settings.cap.language,
        source=source,
        geocode_names=settings.cap.geocode_names,
        statuses=settings.cap.statuses,
    )
    if alert.scope != "Public":
        raise InvalidItemError(
            source,
            [
                (
                    "alert/scope",
                    f"{alert.scope}: the dispatcher publishes to the public, and this alert is not for it",
                )
            ],
        )
    with ledger.session() as session:
        known = session.scalars(
            select(CapAlertRow).where(
                CapAlertRow.sender == alert.sender, CapAlertRow.identifier == alert.identifier
            )
        ).first()
        if known is not None:
            raise RefusedError(
                f"{source}: alert {alert.identifier} from {alert.sender} was taken in already "
                f"(item {known.item_id}); nothing was done"
            )
        item_id = None if alert.msg_type == "Alert" else referenced(session, settings, alert, source)
        newest = (
            session.scalar(select(func.max(CapAlertRow.sent)).where(CapAlertRow.item_id == item_id))
            if item_id is not None
            else None
        )
        if newest is not None and alert.sent <= newest:
            raise RefusedError(
                f"{source}: alert {alert.identifier} was sent at {alert.sent.isoformat()}, before an alert "
                f"already taken in for item {item_id} ({newest.isoformat()}): an older message does not "
                "replace a newer one; nothing was done"
            )
    if allowed is not None:
        allowed({"Alert": "submit", "Update": "update", "Cancel": "retract"}[alert.msg_type])
    done = Received(item_id or 0, alert.msg_type, alert.identifier)

    def kept(session: Session, stored_item: int, revision: int | None = None) -> None:
        """The alert's row, in the transaction that makes its item, revision or withdrawal: taken in
        once, and never an item without the alert it came from (the unique row refuses a second)."""
        done.item_id, done.revision = stored_item, revision
        session.add(
            CapAlertRow(
                item_id=stored_item,
                revision=revision,
                sender=alert.sender,
                identifier=alert.identifier,
                sent=alert.sent,
                msg_type=alert.msg_type,
                # As JSON's values (the blocks' times as written, with their offsets)
                kept=json.loads(
                    json.dumps(
                        {
                            "language": alert.language,
                            "other_infos": alert.other_infos,
                            "other_geocodes": alert.other_geocodes,
                            "note": alert.note,
                        },
                        default=lambda value: value.isoformat(),
                        ensure_ascii=False,
                    )
                ),
            )
        )
        session.flush()

    try:
        if alert.msg_type == "Cancel":
            assert item_id is not None
            reason = alert.note or f"CAP Cancel {alert.identifier} from {alert.sender}"
            done.withdrawal = retract(
                ledger,
                settings,
                item_id,
                author,
                reason,
                broker,
                also=lambda session, stored: kept(session, stored),
            )
        else:
            item = _item(alert, author, source)
            if item_id is None:
                approval.submit(ledger, item, also=kept)
            else:
                approval.revise(ledger, item_id, item, also=kept)
    except IntegrityError:
        # The same alert taken in at the same moment by another submission: its transaction won.
        raise RefusedError(
            f"{source}: alert {alert.identifier} from {alert.sender} was taken in already; nothing was done"
        ) from None
    return done


def _item(alert: cap.CapAlert, author: str, source: str) -> Item:
    if alert.document is None:
        raise InvalidItemError(
            source, [("alert/info", f"no info block in the published language ({alert.language})")]
        )
    document = {**alert.document, "author": author}
    if alert.polygons:
        document["polygons"] = alert.polygons
    if alert.circles:
        document["circles"] = alert.circles
    return parse_item(document, source)


# Identifiers this dispatcher writes: ``<sender>.<item uid>.<revision>`` (``identifier_for``)
_OURS = re.compile(r".*\.([0-9a-f]{32})\.[0-9]+(?:\.cancel)?")


def referenced(session: Session, settings: Settings, alert: cap.CapAlert, source: str) -> int:
    """The item the alerts an Update or Cancel references became (or were exported from)."""
    for reference in alert.references:
        row = session.scalars(
            select(CapAlertRow).where(
                CapAlertRow.sender == reference.sender, CapAlertRow.identifier == reference.identifier
            )
        ).first()
        if row is not None:
            return row.item_id
        ours = _OURS.fullmatch(reference.identifier)
        if reference.sender == settings.cap.sender and ours:
            item = session.scalars(select(ItemRow).where(ItemRow.uid == ours[1])).first()
            if item is not None:
                return item.id
    names = ", ".join(f"{r.sender},{r.identifier}" for r in alert.references)
    raise InvalidItemError(
        source,
        [("alert/references", f"names no alert this dispatcher took in or sent ({names}); nothing was done")],
    )


def export(ledger: Ledger, settings: Settings, item_id: int, revision: int | None = None) -> bytes:
    """The CAP alert of a warning as it stands (its latest message), or of one approved ``revision``."""
    zone = ZoneInfo(settings.time_zone)
    with ledger.session() as session:
        row = session.get(ItemRow, item_id)
        if row is None:
            raise NotFoundError(f"no item {item_id}")
        if row.kind != Kind.warning.value:
            raise RefusedError(f"item {item_id} is a {row.kind}; CAP carries warnings")
        approvals = {
            a.revision_id: a.at
            for a in session.scalars(
                select(ApprovalRow).where(
                    ApprovalRow.revision_id.in_([r.id for r in row.revisions]),
                    ApprovalRow.decision == "approved",
                )
            )
        }
        approved = [r for r in row.revisions if r.id in approvals]
        if not approved:
            raise RefusedError(f"item {item_id} was never approved: it has no CAP alert yet")
        withdrawn = session.scalars(
            select(EventRow).where(EventRow.item_id == item_id, EventRow.name == "item.withdrawn")
        ).first()
        taken_in = [
            cap.CapReference(a.sender, a.identifier, a.sent.astimezone(zone))
            for a in session.scalars(
                select(CapAlertRow).where(CapAlertRow.item_id == item_id).order_by(CapAlertRow.id)
            )
        ]
        uid = row.uid
        revisions = [(r.number, Item.model_validate(r.document), approvals[r.id]) for r in approved]
    messages: list[cap.CapMessage] = []
    references = list(taken_in)
    for number, item, at in revisions:
        identifier = cap.identifier_for(settings.cap.sender, uid, number)
        messages.append(
            _message(
                settings,
                item,
                uid,
                identifier,
                at.astimezone(zone),
                "Alert" if not messages else "Update",
                references,
            )
        )
        references = [*references, cap.CapReference(settings.cap.sender, identifier, at.astimezone(zone))]
    if withdrawn is not None:
        number, item, _ = revisions[-1]
        identifier = cap.identifier_for(settings.cap.sender, uid, number) + ".cancel"
        messages.append(
            _message(
                settings,
                item,
                uid,
                identifier,
                withdrawn.at.astimezone(zone),
                "Cancel",
                references,
                note=str(withdrawn.detail.get("reason") or ""),
            )
        )
    if revision is None:
        return cap.write_alert(messages[-1])
    numbers = [number for number, _, _ in revisions]
    if revision not in numbers:
        raise NotFoundError(f"item {item_id} has no approved revision {revision} (approved: {numbers})")
    return cap.write_alert(messages[numbers.index(revision)])


def _message(
    settings: Settings,
    item: Item,
    uid: str,
    identifier: str,
    sent: datetime,
    msg_type: str,
    references: list[cap.CapReference],
    note: str | None = None,
) -> cap.CapMessage:
    zone = ZoneInfo(settings.time_zone)
    link = publication_for(item, item_id=0, uid=uid, revision=1, public_url=settings.website.public_url).link
    return cap.CapMessage(
        identifier=identifier,
        sender=settings.cap.sender,
        sent=sent,
        msg_type=msg_type,
        references=tuple(references),
        note=note or None,
        language=settings.cap.language,
        event=item.event or item.title,
        urgency=item.urgency.value if item.urgency else "Unknown",
        severity=item.severity.value if item.severity else "Unknown",
        certainty=item.certainty.value if item.certainty else "Unknown",
        headline=item.title,
        description=item.body,
        instruction=item.instruction,
        expires=item.expires.astimezone(zone),
        sender_name=item.department,
        web=link,
        areas=((item.title if not item.areas else "、".join(item.areas), tuple(item.areas)),),
        geocode_name=settings.cap.geocode_names[0],
        polygons=tuple(tuple(point for point in polygon) for polygon in item.polygons),
        circles=tuple(item.circles),
    )
