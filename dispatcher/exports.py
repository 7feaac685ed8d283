"""The disclosure ledger (台帐): one row per item × channel × target, for the reports an office files.

Items approved between two local dates (``DISPATCH_TIME_ZONE``), each with every target it went to:
when it was approved and by whom, the revision that stands, what became of it on that target (sent,
failed, dead, expired, superseded, cancelled — or withdrawn), when it first and last went out there, and
when it was withdrawn. Written as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the
Chinese right) or as an Excel workbook, streamed either way.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Subquery, func, select

from dispatcher.ledger import (
    SHOWING,
    ApprovalRow,
    DeliveryRow,
    EndorsementRow,
    EventRow,
    ItemRow,
    Ledger,
    RevisionRow,
)
from settings import Settings

#: the columns, in order (the header row names them as they are)
COLUMNS = (
    "item",
    "kind",
    "title",
    "department",
    "author",
    "approvers",
    "approved_at",
    "revision",
    "channel",
    "target",
    "outcome",
    "attempts",
    "first_sent_at",
    "last_sent_at",
    "withdrawn_at",
    "expires",
)


def first_approvals() -> Subquery:
    """Each item's first approval (``item_id``, ``at``): the disclosure ledger and the report count an
    item in the period it was first approved in."""
    return (
        select(RevisionRow.item_id, func.min(ApprovalRow.at).label("at"))
        .join(ApprovalRow, ApprovalRow.revision_id == RevisionRow.id)
        .where(ApprovalRow.decision == "approved")
        .group_by(RevisionRow.item_id)
        .subquery()
    )


def rows(ledger: Ledger, settings: Settings, start: date, end: date) -> Iterator[dict[str, Any]]:
    """The ledger's rows for items first approved from ``start`` to ``end`` (local dates, inclusive)."""
    zone = ZoneInfo(settings.time_zone)
    since = datetime.combine(start, time.min, zone)
    until = datetime.combine(end + timedelta(days=1), time.min, zone)

    def local(moment: datetime | None) -> str:
        return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""

    with ledger.session() as session:
        first_approval = first_approvals()
        items = session.execute(
            select(ItemRow, first_approval.c.at)
            .join(first_approval, first_approval.c.item_id == ItemRow.id)
            .where(first_approval.c.at >= since, first_approval.c.at < until)
            .order_by(ItemRow.id)
        ).all()
        for item, approved_at in items:
            live = session.get(RevisionRow, item.live_revision_id) if item.live_revision_id else None
            approvers = []
            if live is not None:
                approvers = list(
                    session.scalars(
                        select(EndorsementRow.approver)
                        .where(EndorsementRow.revision_id == live.id)
                        .order_by(EndorsementRow.id)
                    )
                )
                approvers += list(
                    session.scalars(
                        select(ApprovalRow.approver).where(
                            ApprovalRow.revision_id == live.id, ApprovalRow.decision == "approved"
                        )
                    )
                )
            withdrawn = session.scalars(
                select(EventRow.at).where(EventRow.item_id == item.id, EventRow.name == "item.withdrawn")
            ).first()
            numbers = {r.id: r.number for r in item.revisions}
            targets: dict[tuple[str, str], list[DeliveryRow]] = {}
            for delivery in session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.item_id == item.id, DeliveryRow.action.in_(list(SHOWING)))
                .order_by(DeliveryRow.id)
            ):
                targets.setdefault((delivery.channel, delivery.target), []).append(delivery)
            for (channel, target), deliveries in targets.items():
                latest = deliveries[-1]
                sent = [d.sent_at for d in deliveries if d.sent_at is not None]
                yield {
                    "item": item.id,
                    "kind": item.kind,
                    "title": item.title if live is None else str(live.document.get("title", item.title)),
                    "department": item.department,
                    "author": item.author,
                    "approvers": ", ".join(approvers),
                    "approved_at": local(approved_at),
                    "revision": numbers.get(latest.revision_id, ""),
                    "channel": channel,
                    "target": target,
                    "outcome": "withdrawn"
                    if withdrawn and latest.state.value == "sent"
                    else latest.state.value,
                    "attempts": sum(d.attempts for d in deliveries),
                    "first_sent_at": local(min(sent)) if sent else "",
                    "last_sent_at": local(max(sent)) if sent else "",
                    "withdrawn_at": local(withdrawn),
                    "expires": str(live.document.get("expires", "")) if live is not None else "",
                }


def write_csv(found: Iterator[dict[str, Any]], out: io.TextIOBase | Any) -> int:
    """Write the rows as CSV with a header; return how many rows."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    count = 0
    for row in found:
        writer.writerow([row[key] for key in COLUMNS])
        count += 1
    return count


def write_xlsx(found: Iterator[dict[str, Any]], path: Path) -> int:
    """Write the rows as an Excel workbook (one sheet, streamed); return how many rows."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("ledger")
    sheet.append(list(COLUMNS))
    count = 0
    for row in found:
        sheet.append([row[key] for key in COLUMNS])
        count += 1
    book.save(path)
    return count
