"""What an item became once its deliveries ended, and outcomes proven after the fact.

Both the worker's core and the delivery-report path settle items, so this lives below both.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatcher.ledger import (
    SHOWING,
    TERMINAL,
    DeliveryRow,
    DeliveryState,
    ItemRow,
    ItemState,
    move,
    record,
    utcnow,
)

#: The states a delivery is still on its way in.
UNSETTLED = tuple(state for state in DeliveryState if state not in TERMINAL)


def settle_item(session: Session, item_id: int, worker: str) -> None:
    """Once every delivery of the item's live revision is terminal, mark it published, partially
    published or failed. A withdrawn item stays withdrawn; deliveries of earlier revisions, and those
    that take something down, do not count.

    Called after each delivery that ends: while any other delivery of the item is on its way, one
    lookup in the index on (item, state) says so, and only the last one counts them all (counting
    after every delivery made an item of thousands of deliveries quadratic)."""
    found = session.execute(
        select(ItemRow.state, ItemRow.live_revision_id).where(ItemRow.id == item_id)
    ).one()
    if found.state is ItemState.withdrawn:
        return
    ours = [DeliveryRow.item_id == item_id, DeliveryRow.action.in_(list(SHOWING))]
    if found.live_revision_id is not None:
        ours.append(DeliveryRow.revision_id == found.live_revision_id)
    unsettled = select(DeliveryRow.id).where(*ours, DeliveryRow.state.in_(UNSETTLED))
    if session.scalar(unsettled.limit(1)) is not None:
        return
    counts = dict(
        session.execute(
            select(DeliveryRow.state, func.count()).where(*ours).group_by(DeliveryRow.state)
        ).all()
    )
    if any(state not in TERMINAL for state in counts) or not counts:
        return
    sent = counts.get(DeliveryState.sent, 0)
    total = sum(counts.values())
    if sent == total:
        state = ItemState.published
    elif sent == 0 and counts.get(DeliveryState.expired, 0) == total:
        state = ItemState.expired
    elif sent == 0:
        state = ItemState.failed
    else:
        state = ItemState.partially_published
    item = session.get_one(ItemRow, item_id)
    if item.state is not state:
        item.state = state
        record(
            session,
            f"item.{state.value}",
            actor=worker,
            item_id=item_id,
            sent=sent,
            total=total,
        )


# Reports that say an SMS centre took the text (accepted, queued, delivered, or not delivered after it).
TAKEN_REPORTS = frozenset({1, 2, 4, 8})


def confirmed_by_report(session: Session, delivery: DeliveryRow, report_type: int, actor: str) -> None:
    """A delivery report proves the gateway took a text: a delivery that ended without being recorded as
    sent because nothing could tell (the policy chose not to repeat an unknown outcome, or its budget
    ran out) is sent after all. The ledger follows the evidence, on the record; a refusal stays one."""
    if report_type not in TAKEN_REPORTS:
        return
    undecided = delivery.state is DeliveryState.dead or (
        delivery.state is DeliveryState.failed and "not to repeat" in (delivery.last_error or "")
    )
    if not undecided:
        return
    previous = delivery.state
    delivery.sent_at = utcnow()
    move(
        session,
        delivery,
        DeliveryState.sent,
        "delivery.sent",
        actor=actor,
        how="reports",
        late=True,
        previous_state=previous.value,
    )
    settle_item(session, delivery.item_id, actor)
