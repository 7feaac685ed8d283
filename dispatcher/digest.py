"""The morning supervision digest: what yesterday held, for the page and the operators.

Once a local day, at ``DISPATCH_MONITOR__DIGEST_AT`` in the office's zone (``DISPATCH_TIME_ZONE``) or at
the first check after it, :func:`run_digest_if_due` composes the digest of the day before: the items
approved that day (counted by kind, and listed); the deliveries that failed or went dead that day and
still are, and those overdue now; the channels and targets that were down that day, and for how long
(from ``health_changes``, each period clipped to the day; one still down counts to the day's end). It
is kept (``digests``, unique per day: a second run that day finds it and does nothing) and sent in the
same transaction's ``ops_alerts``: the whole digest to the webhook, a one-line summary to the on-call
phones. A day the beat did not run past the digest time has no digest.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher.ledger import (
    ApprovalRow,
    DeliveryRow,
    DeliveryState,
    DigestRow,
    EventRow,
    HealthChangeRow,
    ItemRow,
    Ledger,
    RevisionRow,
    record,
)
from dispatcher.monitor import ACTOR, DOWN, WHOLE, overdue, queue_alerts, short_text
from settings import Settings

#: the longest list of items or deliveries a digest carries (the counts are always whole)
LISTED = 200


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The start and end of a local day, in UTC."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def run_digest_if_due(
    ledger: Ledger, settings: Settings, now: datetime | None = None
) -> dict[str, Any] | None:
    """Compose, keep and send yesterday's digest if today's digest time has passed and it is not done
    yet; the digest, or None when nothing was due."""
    now = now or ledger.now()
    zone = ZoneInfo(settings.time_zone)
    local = now.astimezone(zone)
    hours, minutes = (int(part) for part in settings.monitor.digest_at.split(":"))
    if local.time() < time(hours, minutes):
        return None
    day = local.date() - timedelta(days=1)
    try:
        with ledger.session() as session:
            if session.scalar(select(DigestRow.id).where(DigestRow.day == day.isoformat())) is not None:
                return None
            body = compose(session, settings, day, now)
            text = as_text(body)
            row = DigestRow(day=day.isoformat(), composed_at=now, body=body, text=text)
            session.add(row)
            session.flush()
            record(session, "digest.composed", actor=ACTOR, day=day.isoformat(), digest=row.id)
            message = {"json": {"type": "digest", **body}, "text": short_text(summary(body))}
            queue_alerts(session, settings, f"digest:{day.isoformat()}", message, now, digest_id=row.id)
    except IntegrityError:  # another process kept this day's digest first
        return None
    return body


def compose(session: Session, settings: Settings, day: date, now: datetime) -> dict[str, Any]:
    """The digest of local ``day``, JSON-ready."""
    zone = ZoneInfo(settings.time_zone)
    start, end = day_bounds(day, zone)
    by_kind = dict(
        session.execute(
            select(ItemRow.kind, func.count(func.distinct(ItemRow.id)))
            .join(RevisionRow, RevisionRow.item_id == ItemRow.id)
            .join(ApprovalRow, ApprovalRow.revision_id == RevisionRow.id)
            .where(ApprovalRow.decision == "approved", ApprovalRow.at >= start, ApprovalRow.at < end)
            .group_by(ItemRow.kind)
        ).all()
    )
    approved = session.execute(
        select(ItemRow.id, ItemRow.kind, ItemRow.title, RevisionRow.number, ApprovalRow.at)
        .join(RevisionRow, RevisionRow.item_id == ItemRow.id)
        .join(ApprovalRow, ApprovalRow.revision_id == RevisionRow.id)
        .where(ApprovalRow.decision == "approved", ApprovalRow.at >= start, ApprovalRow.at < end)
        .order_by(ApprovalRow.at)
        .limit(LISTED)
    ).all()
    # Failed or dead that day (its event) and still so now: nobody re-drove or settled it since.
    unresolved = session.execute(
        select(DeliveryRow)
        .where(
            DeliveryRow.state.in_([DeliveryState.failed, DeliveryState.dead]),
            DeliveryRow.id.in_(
                select(EventRow.delivery_id).where(
                    EventRow.name.in_(["delivery.failed", "delivery.dead"]),
                    EventRow.at >= start,
                    EventRow.at < end,
                )
            ),
        )
        .order_by(DeliveryRow.id)
        .limit(LISTED)
    ).scalars()
    troubles: dict[str, list[dict[str, Any]]] = {"failed": [], "dead": []}
    for row in unresolved:
        troubles[row.state.value].append(
            {
                "delivery": row.id,
                "item": row.item_id,
                "channel": row.channel,
                "target": row.target,
                "last_error": row.last_error,
            }
        )
    return {
        "day": day.isoformat(),
        "zone": settings.time_zone,
        "composed_at": now.isoformat(),
        "items": {
            "approved": sum(by_kind.values()),
            "by_kind": by_kind,
            "list": [
                {
                    "id": item_id,
                    "kind": kind,
                    "title": title,
                    "revision": number,
                    "approved_at": at.astimezone(zone).isoformat(),
                }
                for item_id, kind, title, number, at in approved
            ],
        },
        "deliveries": {**troubles, "overdue": overdue(session, settings, now, limit=LISTED)},
        "downtime": downtime(session, start, end, now),
    }


def downtime(session: Session, start: datetime, end: datetime, now: datetime) -> list[dict[str, Any]]:
    """Per channel and target that was down between ``start`` and ``end``: its periods down, each
    clipped to that span (one not over yet runs to ``now`` or the span's end), and their total."""
    # The state each (channel, target) entered the span in: its last change before the span.
    last_before = (
        select(func.max(HealthChangeRow.id))
        .where(HealthChangeRow.at < start)
        .group_by(HealthChangeRow.channel, HealthChangeRow.target)
    )
    changes = session.scalars(
        select(HealthChangeRow)
        .where(
            (HealthChangeRow.id.in_(last_before))
            | ((HealthChangeRow.at >= start) & (HealthChangeRow.at < end))
        )
        .order_by(HealthChangeRow.at, HealthChangeRow.id)
    ).all()
    periods: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    down_since: dict[tuple[str, str], datetime] = {}
    for change in changes:
        key = (change.channel, change.target)
        if change.to_state == DOWN and key not in down_since:
            down_since[key] = change.at
        elif change.to_state != DOWN and key in down_since:
            periods.setdefault(key, []).append((down_since.pop(key), change.at))
    for key, since in down_since.items():
        periods.setdefault(key, []).append((since, min(now, end)))
    found = []
    for (channel, target), spans in sorted(periods.items()):
        clipped = [(max(a, start), min(b, end)) for a, b in spans if b > start and a < end]
        if not clipped:
            continue
        found.append(
            {
                "channel": channel,
                "target": None if target == WHOLE else target,
                "seconds": round(sum((b - a).total_seconds() for a, b in clipped), 1),
                "periods": [[a.isoformat(), b.isoformat()] for a, b in clipped],
            }
        )
    return found


def summary(body: dict[str, Any]) -> str:
    """One line for the on-call phones."""
    deliveries = body["deliveries"]
    down = "、".join(
        f"{d['channel']}{'/' + d['target'] if d['target'] else ''} {round(d['seconds'] / 60)}分"
        for d in body["downtime"][:3]
    )
    return (
        f"【调度日报】{body['day']} 发布{body['items']['approved']}条 失败{len(deliveries['failed'])} "
        f"死信{len(deliveries['dead'])} 超时{len(deliveries['overdue'])}" + (f" 中断:{down}" if down else "")
    )


def as_text(body: dict[str, Any]) -> str:
    """The digest for a person to read, line by line."""
    items, deliveries = body["items"], body["deliveries"]
    kinds: dict[str, int] = items["by_kind"]
    lines = [
        f"Supervision digest for {body['day']} ({body['zone']})",
        f"Items approved: {items['approved']}"
        + (f" ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})" if kinds else ""),
        *(
            f"  #{i['id']} {i['kind']} r{i['revision']} {i['approved_at'][11:16]} {i['title']}"
            for i in items["list"]
        ),
    ]
    for state in ("failed", "dead", "overdue"):
        lines.append(f"Deliveries {state}, not resolved: {len(deliveries[state])}")
        lines += [
            f"  delivery {d['delivery']} (item {d['item']}) {d['channel']}/{d['target']}: "
            f"{d.get('last_error') or d.get('state') or ''}"
            for d in deliveries[state]
        ]
    lines.append(f"Down during the day: {len(body['downtime'])}")
    lines += [
        f"  {d['channel']}{'/' + d['target'] if d['target'] else ''}: {d['seconds'] / 60:.1f} min "
        f"in {len(d['periods'])} period(s)"
        for d in body["downtime"]
    ]
    return "\n".join(lines)


def latest_digest(session: Session) -> dict[str, Any] | None:
    """The newest digest, for the page: its JSON form with its text."""
    row = session.scalars(select(DigestRow).order_by(DigestRow.day.desc()).limit(1)).first()
    if row is None:
        return None
    return {**row.body, "text": row.text}
