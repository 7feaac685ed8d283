"""Reading the ledger for people: item and delivery listings as rows or JSON-ready dicts."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select

from channels import REGISTRY, build_channel
from dispatcher.circuits import not_closed
from dispatcher.errors import DispatchError, NotFoundError
from dispatcher.ledger import (
    ApprovalRow,
    CircuitRow,
    DeliveryRow,
    EndorsementRow,
    EventRow,
    ItemRow,
    Ledger,
)
from dispatcher.subscribers import counts_by_delivery
from dispatcher.words import Payload
from settings import Settings


def delivery_view(row: DeliveryRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "item": row.item_id,
        "channel": row.channel,
        "target": row.target,
        "queue": row.queue,
        "state": row.state.value,
        "attempts": row.attempts,
        "provider_id": row.provider_id,
        "last_error": row.last_error,
        "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        "payload_digest": row.payload_digest,
        "action": row.action.value,
        "replaces": row.replaces_id,
    }


def item_status(ledger: Ledger, item_id: int) -> dict[str, Any]:
    with ledger.session() as session:
        item = session.get(ItemRow, item_id)
        if item is None:
            raise NotFoundError(f"no item {item_id}")
        reviews = {
            review.revision_id: review
            for review in session.scalars(
                select(ApprovalRow).where(ApprovalRow.revision_id.in_([r.id for r in item.revisions]))
            )
        }
        shown = item.live_revision_id or item.current.id
        approval = reviews.get(shown)
        endorsed: dict[int, list[str]] = {}
        for endorsement in session.scalars(
            select(EndorsementRow)
            .where(EndorsementRow.revision_id.in_([r.id for r in item.revisions]))
            .order_by(EndorsementRow.id)
        ):
            endorsed.setdefault(endorsement.revision_id, []).append(endorsement.approver)

        def approvers(revision_id: int) -> list[str]:
            review = reviews.get(revision_id)
            final = [review.approver] if review and review.decision == "approved" else []
            return endorsed.get(revision_id, []) + final

        numbers = {r.id: r.number for r in item.revisions}
        revisions = [
            {
                "number": r.number,
                "title": r.document.get("title"),
                "author": r.document.get("author"),
                "state": ("withdrawn" if item.state.value == "withdrawn" else "live")
                if r.id == item.live_revision_id
                else (reviews[r.id].decision if r.id in reviews else "submitted"),
                "reason": reviews[r.id].reason if r.id in reviews else None,
                "reviewer": reviews[r.id].approver if r.id in reviews else None,
                "approvers": approvers(r.id),
                "reviewed_at": reviews[r.id].at.isoformat() if r.id in reviews else None,
            }
            for r in item.revisions
        ]
        withdrawn = session.scalars(
            select(EventRow).where(EventRow.item_id == item_id, EventRow.name == "item.withdrawn")
        ).first()
        deliveries = session.scalars(
            select(DeliveryRow).where(DeliveryRow.item_id == item_id).order_by(DeliveryRow.id)
        ).all()
        # Channels that report per recipient: how each recipient fared.
        counts = counts_by_delivery(session, [d.id for d in deliveries])
        views = []
        for delivery in deliveries:
            view = delivery_view(delivery)
            view["revision"] = numbers.get(delivery.revision_id)
            if delivery.id in counts:
                view["recipients"] = counts[delivery.id]
            views.append(view)
        return {
            "id": item.id,
            "uid": item.uid,
            "kind": item.kind,
            "title": item.title,
            "state": item.state.value,
            "author": item.author,
            # who approved what is shown; a first approval still waiting for a second is not one yet
            "approver": ", ".join(approvers(shown)) if approval and approval.decision == "approved" else None,
            "approved_at": approval.at.isoformat() if approval else None,
            "live_revision": numbers.get(item.live_revision_id) if item.live_revision_id else None,
            "revisions": revisions,
            "withdrawn": {
                "by": withdrawn.actor,
                "at": withdrawn.at.isoformat(),
                "reason": withdrawn.detail.get("reason"),
            }
            if withdrawn
            else None,
            "deliveries": views,
        }


def items_overview(ledger: Ledger, limit: int = 50, before: int | None = None) -> dict[str, Any]:
    """A page of items, newest first: ``items``, the ``total`` count, and ``next_before`` — the id to
    pass as ``before`` for the next page, or None on the last page."""
    with ledger.session() as session:
        query = select(ItemRow).order_by(ItemRow.id.desc()).limit(limit + 1)
        if before is not None:
            query = query.where(ItemRow.id < before)
        found = session.scalars(query).all()
        items, more = found[:limit], len(found) > limit
        total = session.scalar(select(func.count()).select_from(ItemRow)) or 0
        states = session.execute(
            select(DeliveryRow.item_id, DeliveryRow.state).where(
                DeliveryRow.item_id.in_([i.id for i in items])
            )
        ).all()
        per_item: dict[int, Counter[str]] = {}
        for item_id, state in states:
            per_item.setdefault(item_id, Counter())[state.value] += 1
        return {
            "items": [
                {
                    "id": i.id,
                    "kind": i.kind,
                    "state": i.state.value,
                    "title": i.title,
                    "author": i.author,
                    "created_at": i.created_at.isoformat(),
                    "deliveries": dict(per_item.get(i.id, {})),
                }
                for i in items
            ],
            "total": total,
            "limit": limit,
            "next_before": items[-1].id if more and items else None,
        }


def payload_view(payload: Payload) -> dict[str, Any]:
    """What ``preview --json`` shows of one payload."""
    return {"channel": payload.channel, "target": payload.target, **payload.body}


def circuit_view(row: CircuitRow) -> dict[str, Any]:
    return {
        "channel": row.channel,
        "target": row.target,
        "state": row.state,
        "failures": row.failures,
        "open_until": row.open_until.isoformat() if row.open_until else None,
        "last_error": row.last_error,
    }


def channel_health(ledger: Ledger, settings: Settings) -> dict[str, Any]:
    """Every channel probed now (reachable, credentials accepted, how fast) as ``channels``, and every
    target whose circuit is not closed as ``circuits``. A channel that cannot even be built (its
    settings are wrong) is reported down with the reason, and the others are still probed."""
    results: list[dict[str, Any]] = []
    for name in REGISTRY:
        try:
            health = build_channel(name, settings).probe()
        except DispatchError as exc:
            results.append({"channel": name, "ok": False, "detail": str(exc), "latency_ms": None})
            continue
        results.append(
            {
                "channel": name,
                "ok": health.ok,
                "detail": health.detail,
                "latency_ms": round(health.latency_ms, 1),
            }
        )
    with ledger.session() as session:
        circuits = [circuit_view(c) for c in not_closed(session)]
    return {"channels": results, "circuits": circuits}
