"""What a later revision does to the earlier ones: corrections (and the withdrawals they imply).

When a revision of an item already out is approved, in the approval's transaction:

- every delivery of an earlier revision that has not left yet (pending, or waiting to retry) is
  ``superseded``, on the record; one whose outcome is in doubt, or that a worker holds, is left to
  settle, and nothing of the new revision goes to its target until it has (``delivery.claim``);
- each target the earlier revisions reached gets the new revision as an ``update`` where the channel
  replaces in place (the same post, the sign's message at its priority) and as a ``follow_up``
  otherwise (a correction post on a microblog, a text to the phones that had the earlier one);
- targets the new revision no longer covers (a sign outside its areas now) get a ``withdraw``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session, aliased

from dispatcher import signing
from dispatcher.ledger import (
    SHOWING,
    Action,
    DeliveryRow,
    DeliveryState,
    EventRow,
    insert_events,
    record_delivery,
    utcnow,
)
from dispatcher.words import Payload

#: states in which a delivery may have reached its target (sent, or its outcome not settled yet)
MAY_HAVE_REACHED = (DeliveryState.sent, DeliveryState.sending, DeliveryState.unknown)
#: states of a delivery that has not left and can be stopped outright
NOT_LEFT = (DeliveryState.pending, DeliveryState.retrying)


@dataclass(frozen=True)
class Reached:
    """A delivery of an earlier revision that may have put the item on its target."""

    id: int
    channel: str
    target: str
    payload: dict[str, Any]
    provider_id: str | None = None


def stop_earlier(
    session: Session,
    item_id: int,
    revision_id: int | None,
    state: DeliveryState,
    event: str,
    actor: str,
    **detail: Any,
) -> int:
    """End every delivery of the item (of revisions before ``revision_id``, or of every revision when it
    is None) that has not left yet, as ``state``, each with its event; return how many. In bulk: a
    warning's ten thousand SMS batches end in one statement."""
    deliveries: Table = DeliveryRow.__table__  # type: ignore[assignment]
    where = [
        deliveries.c.item_id == item_id,
        deliveries.c.state.in_([s.value for s in NOT_LEFT]),
    ]
    if revision_id is not None:
        where.append(deliveries.c.revision_id < revision_id)
    # Only what would show the item: a pending withdrawal still takes down what it must.
    where.append(deliveries.c.action.in_([a.value for a in SHOWING]))
    ids = list(session.scalars(select(deliveries.c.id).where(*where).order_by(deliveries.c.id)))
    if not ids:
        return 0
    now = utcnow()
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        session.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(chunk), deliveries.c.state.in_([s.value for s in NOT_LEFT]))
            .values(state=state.value, lease_until=None, next_attempt_at=None, updated_at=now)
        )
        insert_events(
            session,
            [
                {
                    "at": now,
                    "name": event,
                    "actor": actor,
                    "item_id": item_id,
                    "delivery_id": d,
                    "detail": detail,
                }
                for d in chunk
            ],
        )
    return len(ids)


def stop_ending(session: Session, item_id: int, revision_id: int, actor: str, **detail: Any) -> int:
    """Supersede what an earlier revision's expiry still had to do (a mark, a takedown): the item was
    corrected, and shows again."""
    found = session.scalars(
        select(DeliveryRow).where(
            DeliveryRow.item_id == item_id,
            DeliveryRow.revision_id < revision_id,
            DeliveryRow.state.in_(list(NOT_LEFT)),
            DeliveryRow.action.in_([Action.expire, Action.withdraw]),
        )
    ).all()
    stopped = 0
    for row in found:
        if row.action is Action.withdraw and (row.payload or {}).get("ending") != "expired":
            continue  # a takedown of a target the correction no longer covers still goes
        row.state, row.lease_until, row.next_attempt_at = DeliveryState.superseded, None, None
        record_delivery(
            session,
            row,
            "delivery.superseded",
            actor=actor,
            why="the item was corrected after it ended",
            **detail,
        )
        stopped += 1
    return stopped


#: and for taking down: a delivery whose budget ran out while an attempt was in doubt may have landed too
MAY_HAVE_LANDED = (*MAY_HAVE_REACHED, DeliveryState.dead)


def reached(
    session: Session, item_id: int, channels: list[str], before_revision_id: int | None = None
) -> list[Reached]:
    """Deliveries of the item on ``channels`` that may have put (a revision of) it on their targets and
    were not taken down since, oldest first; of revisions before ``before_revision_id`` when given."""
    withdrawn = taken_down(item_id)
    query = (
        select(
            DeliveryRow.id,
            DeliveryRow.channel,
            DeliveryRow.target,
            DeliveryRow.payload,
            DeliveryRow.provider_id,
        )
        .where(
            DeliveryRow.item_id == item_id,
            DeliveryRow.channel.in_(channels),
            DeliveryRow.action.in_(list(SHOWING)),
            DeliveryRow.state.in_(list(MAY_HAVE_LANDED)),
            DeliveryRow.id.not_in(withdrawn),
        )
        .order_by(DeliveryRow.id)
    )
    if before_revision_id is not None:
        query = query.where(DeliveryRow.revision_id < before_revision_id)
    return [Reached(*row) for row in session.execute(query)]


def taken_down(item_id: int) -> Any:
    """The deliveries of the item withdrawn on the record, or with a withdrawal of their own on its way
    (one is enough: a second would take down the same thing, under the same key)."""
    recorded = select(EventRow.delivery_id).where(
        EventRow.item_id == item_id, EventRow.name == "delivery.withdrawn", EventRow.delivery_id.is_not(None)
    )
    withdrawal = aliased(DeliveryRow)
    pending = select(withdrawal.replaces_id).where(
        withdrawal.item_id == item_id,
        withdrawal.action == Action.withdraw,
        withdrawal.replaces_id.is_not(None),
    )
    return recorded.union(pending)


def reached_targets(session: Session, item_id: int) -> set[tuple[str, str]]:
    """The (channel, target) pairs some delivery of the item may have reached and not taken down."""
    withdrawn = taken_down(item_id)
    found = session.execute(
        select(DeliveryRow.channel, DeliveryRow.target)
        .distinct()
        .where(
            DeliveryRow.item_id == item_id,
            DeliveryRow.action.in_(list(SHOWING)),
            DeliveryRow.state.in_(list(MAY_HAVE_REACHED)),
            DeliveryRow.id.not_in(withdrawn),
        )
    )
    return {(channel, target) for channel, target in found}


def latest_per_target(found: list[Reached]) -> dict[tuple[str, str], Reached]:
    """The latest of ``found`` on each (channel, target)."""
    latest: dict[tuple[str, str], Reached] = {}
    for delivery in found:
        latest[(delivery.channel, delivery.target)] = delivery
    return latest


def action_for(replaces: bool, earlier: Reached | None) -> Action:
    """A new revision's action on a target: a first publication where nothing reached it, else an
    update in place or a follow-up, as the channel corrects."""
    if earlier is None:
        return Action.publish
    return Action.update if replaces else Action.follow_up


def idempotency_key(revision_id: int, channel: str, target: str) -> str:
    return hashlib.sha256(f"{revision_id}/{channel}/{target}".encode()).hexdigest()[:40]


def pending(
    key: bytes, revision_id: int, item_id: int, queue: str, payload: Payload, name: str = ""
) -> DeliveryRow:
    """A pending delivery of ``payload``, pinned under its own idempotency key (``name`` tells apart
    deliveries of one revision on one target: a withdrawal beside a publication)."""
    delivery_key = idempotency_key(revision_id, payload.channel, payload.target + name)
    return DeliveryRow(
        revision_id=revision_id,
        item_id=item_id,
        channel=payload.channel,
        target=payload.target,
        queue=queue,
        action=Action.publish,
        idempotency_key=delivery_key,
        payload=payload.body,
        payload_digest=signing.pin(key, payload.body, delivery_key),
        state=DeliveryState.pending,
    )


def withdrawal(key: bytes, revision_id: int, item_id: int, queue: str, before: Reached) -> DeliveryRow:
    """A delivery that takes down what ``before`` put on its target: its payload is what was sent there
    (the channel's ``retract`` is given it, with the receipt ``before`` has once settled)."""
    payload = Payload(before.channel, before.target, before.payload)
    row = pending(key, revision_id, item_id, queue, payload, f"#withdraw-{before.id}")
    row.action, row.replaces_id = Action.withdraw, before.id
    return row


def write_pending(session: Session, deliveries: list[DeliveryRow], actor: str) -> list[tuple[int, str]]:
    """Write new deliveries with their ``delivery.pending`` events (what each does, and the delivery it
    acts on, when it is not a first publication); return their (id, queue) work."""
    session.add_all(deliveries)
    session.flush()
    for delivery in deliveries:
        record_delivery(
            session,
            delivery,
            "delivery.pending",
            actor=actor,
            channel=delivery.channel,
            target=delivery.target,
            digest=delivery.payload_digest,
            **({"action": delivery.action.value} if delivery.action is not Action.publish else {}),
            **({"replaces": delivery.replaces_id} if delivery.replaces_id else {}),
        )
    return [(d.id, d.queue) for d in deliveries]
