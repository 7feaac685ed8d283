"""Moving deliveries from the ledger to the queue: the outbox relay and the sweeper.

The ledger holds the truth. ``enqueue`` hands each delivery to a :class:`Broker` after approval
committed; if the broker is unreachable the deliveries simply stay ``pending``. The flow knows no
queue library: whoever runs it (the command line, a worker) passes the broker in. ``sweep`` runs periodically
(Celery beat) and enqueues every delivery that is due and not in a worker's hands: pending ones
never picked up, retries whose time has come, claims whose lease ran out (a killed worker) and
sends whose outcome is unknown (to be reconciled by lookup).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Protocol

from sqlalchemy import and_, or_, select, update

from dispatcher import subscribers
from dispatcher.errors import NotFoundError, RefusedError
from dispatcher.ledger import (
    DeliveryRow,
    DeliveryState,
    ItemRow,
    ItemState,
    Ledger,
    move,
    record,
    utcnow,
)
from settings import Settings

log = logging.getLogger(__name__)


class Broker(Protocol):
    """The transport the outbox publishes to (``dispatcher.tasks.CeleryBroker`` in production)."""

    def publish(self, work: list[tuple[int, str]]) -> list[int]:
        """Publish a task per (delivery id, queue), in order; return the ids that reached the broker
        (a prefix: it stops at the first failure)."""
        ...

    def depths(self, queues: set[str]) -> dict[str, int | None]:
        """Messages waiting in each queue, or None where the broker cannot say."""
        ...

    def tidy(self) -> None:
        """Housekeeping the broker needs between sweeps (the embedded broker's consumed rows)."""
        ...


def enqueue(ledger: Ledger, broker: Broker | None, deliveries: list[tuple[int, str]]) -> int:
    """Publish a task for each (delivery id, queue); return how many reached the broker. Without a
    broker nothing is published: the deliveries wait in the ledger for the sweeper."""
    if not deliveries or broker is None:
        return 0
    sent = broker.publish(deliveries)
    if sent:
        with ledger.session() as session:
            session.execute(update(DeliveryRow).where(DeliveryRow.id.in_(sent)).values(enqueued_at=utcnow()))
    return len(sent)


# Deliveries one sweep publishes at most: a sweep takes a pool process while it publishes (a
# millisecond or more a task on the embedded broker), and sweeps come every couple of seconds; a
# million-phone warning's ten thousand batches are fed in over a few sweeps, faster than they are sent.
SWEEP_LIMIT = 1000


def due(ledger: Ledger, settings: Settings, broker: Broker) -> list[tuple[int, str]]:
    """Deliveries the sweeper must (re-)enqueue now.

    - a claim whose lease ran out (its worker died): always;
    - a retry or an unknown outcome whose time has come: once, when it becomes due;
    - a delivery whose task was published but never claimed for a lease period: only when its queue
      is empty. While messages wait in the queue its task is most likely among them, and publishing
      again would only lengthen the queue: under a backlog, re-enqueueing on a timer feeds itself
      (found by the fault suite: 2,250 deliveries became 21,000 queued tasks). Once the queue is
      empty, a delivery still waiting lost its task, and is published again.
    """
    now = ledger.now()
    stale = now - timedelta(seconds=settings.lease_seconds)
    young = now - timedelta(seconds=max(2.0, settings.sweep_interval))
    never_sent = and_(
        DeliveryRow.state == DeliveryState.pending,
        DeliveryRow.created_at < young,
        DeliveryRow.enqueued_at.is_(None),
        # a scheduled item's deliveries are due at its publish_at
        or_(DeliveryRow.next_attempt_at.is_(None), DeliveryRow.next_attempt_at <= now),
    )
    now_due = and_(
        DeliveryRow.state.in_([DeliveryState.retrying, DeliveryState.unknown]),
        or_(DeliveryRow.next_attempt_at.is_(None), DeliveryRow.next_attempt_at <= now),
        or_(DeliveryRow.enqueued_at.is_(None), DeliveryRow.enqueued_at < DeliveryRow.next_attempt_at),
    )
    lapsed = and_(DeliveryRow.state == DeliveryState.sending, DeliveryRow.lease_until < now)
    unclaimed = and_(
        DeliveryRow.state.in_([DeliveryState.pending, DeliveryState.retrying, DeliveryState.unknown]),
        DeliveryRow.enqueued_at < stale,
        or_(DeliveryRow.next_attempt_at.is_(None), DeliveryRow.next_attempt_at <= now),
    )
    with ledger.session() as session:
        rows = session.execute(
            select(DeliveryRow.id, DeliveryRow.queue)
            .where(or_(never_sent, now_due, lapsed))
            .order_by(DeliveryRow.id)
            .limit(SWEEP_LIMIT)
        ).all()
        waiting = session.execute(
            select(DeliveryRow.id, DeliveryRow.queue)
            .where(unclaimed)
            .order_by(DeliveryRow.id)
            .limit(SWEEP_LIMIT)
        ).all()
    work = [(row.id, row.queue) for row in rows]
    if waiting:
        depths = broker.depths({row.queue for row in waiting})
        chosen = {delivery_id for delivery_id, _ in work}
        work += [
            (row.id, row.queue) for row in waiting if depths.get(row.queue) == 0 and row.id not in chosen
        ]
    return work


def redrive(
    ledger: Ledger,
    broker: Broker | None,
    actor: str,
    *,
    channel: str | None = None,
    item_id: int | None = None,
    delivery_id: int | None = None,
    failed: bool = False,
    reason: str = "",
) -> list[int]:
    """Give dead deliveries (and, with ``failed``, failed ones) a fresh retry budget and enqueue them.

    The ledger records who did it and why. Re-driving a failed delivery overrides a refusal (a
    permanent error, a policy not to repeat), so it needs a reason. With ``delivery_id``, that one
    delivery: a NotFoundError if there is none, a RefusedError if it is not dead (or failed, with
    ``failed``) — an operator who asked for one delivery learns why nothing moved.
    """
    if not actor.strip():
        raise RefusedError("a re-drive needs the operator's name")
    if failed and not reason.strip():
        raise RefusedError("re-driving failed deliveries needs a reason (--reason TEXT), kept in the ledger")
    if failed and channel is None and item_id is None and delivery_id is None:
        raise RefusedError(
            "re-driving failed deliveries needs --item or --channel: a refusal is overridden case by case"
        )
    states = [DeliveryState.dead, DeliveryState.failed] if failed else [DeliveryState.dead]
    with ledger.session() as session:
        query = select(DeliveryRow).where(DeliveryRow.state.in_(states))
        if channel:
            query = query.where(DeliveryRow.channel == channel)
        if item_id is not None:
            query = query.where(DeliveryRow.item_id == item_id)
        if delivery_id is not None:
            query = query.where(DeliveryRow.id == delivery_id)
        rows = session.scalars(query.with_for_update()).all()
        if delivery_id is not None and not rows:
            found = session.get(DeliveryRow, delivery_id)
            if found is None:
                raise NotFoundError(f"no delivery {delivery_id}")
            wanted = " or ".join(state.value for state in states)
            raise RefusedError(f"delivery {delivery_id} is {found.state.value}, not {wanted}")
        for row in rows:
            previous_state, previous_attempts = row.state.value, row.attempts
            row.attempts, row.next_attempt_at = 0, None
            move(
                session,
                row,
                DeliveryState.pending,
                "delivery.redriven",
                actor=actor,
                previous_state=previous_state,
                previous_attempts=previous_attempts,
                last_error=row.last_error,
                reason=reason.strip(),
            )
        for touched in {row.item_id for row in rows}:
            item = session.get_one(ItemRow, touched)
            # A withdrawn item stays withdrawn: its re-driven sends end as cancelled when claimed, and
            # only its takedowns go out again.
            if item.state not in (ItemState.approved, ItemState.withdrawn):
                item.state = ItemState.approved
                record(session, "item.redriven", actor=actor, item_id=touched)
        work = [(row.id, row.queue) for row in rows]
    enqueue(ledger, broker, work)
    return [delivery_id for delivery_id, _ in work]


def sweep(ledger: Ledger, settings: Settings, broker: Broker) -> int:
    """Enqueue every due delivery, and the housekeeping that goes with a sweep."""
    deliveries = due(ledger, settings, broker)
    count = enqueue(ledger, broker, deliveries)
    if deliveries:
        log.info("sweeper enqueued %d deliveries", count)
    broker.tidy()
    subscribers.alert_truncated(ledger, settings.sms)
    subscribers.apply_kept_reports(ledger, subscribers.report_spool(settings.var_dir))
    return count
