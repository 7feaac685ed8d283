"""Running one delivery: claim it in the ledger, send the pinned payload, record the outcome.

The ledger decides, not the message: a task for a delivery that is already done, held by another
worker under a live lease, or not yet due does nothing. A claim whose earlier attempt may have
reached the channel (a lapsed lease, an unknown outcome) first asks the channel to look the send up,
so a lost answer does not become a second post.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from channels import build_channel
from channels.base import Channel, Payload, Receipt
from dispatcher import circuits, corrections, ratelimits, rota, signing, subscribers
from dispatcher.errors import (
    ChannelError,
    DispatchError,
    NotRepeatedError,
    OutcomeUnknownError,
    TemporaryChannelError,
    TooLateError,
)
from dispatcher.items import Kind
from dispatcher.ledger import (
    SHOWING,
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
    record,
    record_delivery,
)
from dispatcher.outcomes import settle_item
from settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    item_id: int
    attempt: int
    in_doubt: bool
    payload: Payload
    key: str
    kind: str
    #: when the attempt now in doubt was claimed (its request left soon after), if one is
    doubt_since: datetime | None = None
    #: when this attempt was claimed
    claimed_at: datetime | None = None
    #: what the delivery does at its target
    action: Action = Action.publish
    #: for a withdrawal: the receipt of the send it takes down
    withdraws: Receipt | None = None
    #: the state a delivery of a revision no longer live ends in unless its earlier attempt is found to
    #: have landed (``superseded``, or ``cancelled`` once the item was withdrawn): it only settles
    stale: DeliveryState | None = None


def backoff(settings: Settings, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter, never shorter than the channel's Retry-After."""
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, retry_after or 0.0)


def latest_claim(session: Session, delivery_id: int) -> tuple[int, datetime, dict[str, Any]] | None:
    """The latest ``delivery.claimed`` event: its id, time and detail."""
    found = session.execute(
        select(EventRow.id, EventRow.at, EventRow.detail)
        .where(EventRow.delivery_id == delivery_id, EventRow.name == "delivery.claimed")
        .order_by(EventRow.id.desc())
        .limit(1)
    ).one_or_none()
    return (found[0], found[1], dict(found[2] or {})) if found else None


def last_unknown_request(session: Session, delivery_id: int) -> datetime | None:
    """When the request of the latest ``delivery.unknown`` left (its ``requested_at``, or its time)."""
    found = session.execute(
        select(EventRow.detail, EventRow.at)
        .where(EventRow.delivery_id == delivery_id, EventRow.name == "delivery.unknown")
        .order_by(EventRow.id.desc())
        .limit(1)
    ).one_or_none()
    if found is None:
        return None
    since = (found[0] or {}).get("requested_at")
    return datetime.fromisoformat(since) if since else found[1]


def lapsed_in_doubt(session: Session, row: DeliveryRow, marks_requests: bool) -> bool:
    """Whether a claim whose lease lapsed leaves the delivery in doubt: it was settling an earlier doubt
    itself (that doubt is not settled by dying), or its request may have left — for channels that mark
    requests, only if it recorded ``delivery.requesting`` after that claim."""
    claimed = latest_claim(session, row.id)
    if claimed is None:  # no record of the claim (an older ledger): assume the worst
        return True
    claim_id, _, detail = claimed
    if detail.get("in_doubt") or not marks_requests:
        return True
    return (
        session.scalar(
            select(EventRow.id)
            .where(
                EventRow.delivery_id == row.id,
                EventRow.name == "delivery.requesting",
                EventRow.id > claim_id,
            )
            .limit(1)
        )
        is not None
    )


def doubt_began(session: Session, row: DeliveryRow) -> datetime | None:
    """When the request now in doubt left: the claim of the attempt whose answer was lost (kept in its
    ``delivery.unknown`` event); for a lease that lapsed, that claim — or, when the lapsed claim was
    itself settling an earlier doubt, that earlier request. Waits and re-drives reuse attempt numbers,
    so events are told apart by order, never by number."""
    if row.state is DeliveryState.unknown:
        return last_unknown_request(session, row.id)
    claimed = latest_claim(session, row.id)
    if claimed is None:
        return None
    if claimed[2].get("in_doubt"):
        return last_unknown_request(session, row.id) or claimed[1]
    return claimed[1]


def withdrawn_on_record(session: Session, delivery_id: int) -> bool:
    """Whether the delivery was withdrawn (on the record, or at its target by someone else)."""
    found = select(EventRow.id).where(
        EventRow.delivery_id == delivery_id, EventRow.name == "delivery.withdrawn"
    )
    return session.scalar(found.limit(1)) is not None


def expiry_of(row: DeliveryRow) -> datetime:
    """When the delivery's revision expires (the item's ``expires``, as approved)."""
    return datetime.fromisoformat(str(row.revision.document["expires"]))


def budget_start(session: Session, row: DeliveryRow) -> datetime:
    """When the delivery's retry budget began: when it was written, or its latest re-drive or loss at its
    target, each of which starts the budget afresh. Asked only when an attempt fails: the events it reads
    cannot change while the delivery is claimed (a re-drive takes dead or failed deliveries, a loss sent
    ones)."""
    redriven = session.scalar(
        select(func.max(EventRow.at)).where(
            EventRow.delivery_id == row.id, EventRow.name.in_(["delivery.redriven", "delivery.lost"])
        )
    )
    return max(row.created_at, redriven) if redriven else row.created_at


def stale_state(
    row: DeliveryRow, item_state: ItemState, live_revision_id: int | None
) -> DeliveryState | None:
    """How a delivery that shows the item ends when it must no longer be sent: ``cancelled`` once the
    item was withdrawn, ``superseded`` when its revision is no longer the live one; None otherwise."""
    if row.action is Action.expire and item_state is ItemState.withdrawn:
        return DeliveryState.cancelled  # nothing is marked expired once it was taken down
    if ending(row) and live_revision_id is not None and row.revision_id != live_revision_id:
        return DeliveryState.superseded  # the item was corrected after it ended: it shows again
    if not row.showing:
        return None
    if item_state is ItemState.withdrawn:
        return DeliveryState.cancelled
    if live_revision_id is not None and row.revision_id != live_revision_id:
        return DeliveryState.superseded
    return None


def quiet_until(settings: Settings, channel: str, now: datetime) -> datetime | None:
    """When the channel's quiet hours end, if ``now`` is in them (``DISPATCH_QUIET_HOURS``)."""
    text = settings.quiet_hours.get(channel)
    if not text:
        return None
    quiet = rota.parse_quiet_hours(text)
    if quiet is None:
        return None
    zone = ZoneInfo(settings.time_zone)
    return quiet.next_open(now, zone).astimezone(UTC) if quiet.contains(now, zone) else None


def ending(row: DeliveryRow) -> bool:
    """Whether the delivery is part of an item's end at its expiry (marking it, or taking it down)."""
    return row.action is Action.expire or (
        row.action is Action.withdraw and (row.payload or {}).get("ending") == "expired"
    )


def earlier_in_flight(session: Session, row: DeliveryRow, whole_channel: bool) -> int | None:
    """A delivery of the same item on the same target (on the same channel, for ``whole_channel``) that
    went out before this one and whose outcome is not settled yet: a worker holds it, or its answer was
    lost. A later revision, or a withdrawal, waits for it, so nothing older lands after it."""
    earlier = DeliveryRow.revision_id < row.revision_id
    if not row.showing:  # a withdrawal or a notice also waits for the sends of its own revision
        earlier = or_(earlier, DeliveryRow.action.in_(list(SHOWING)))
    query = select(DeliveryRow.id).where(
        DeliveryRow.item_id == row.item_id,
        DeliveryRow.state.in_([DeliveryState.sending, DeliveryState.unknown]),
        DeliveryRow.channel == row.channel,
        DeliveryRow.id != row.id,
        earlier,
    )
    if not whole_channel:
        query = query.where(DeliveryRow.target == row.target)
    return session.scalar(query.order_by(DeliveryRow.id).limit(1))


def claim(
    ledger: Ledger,
    settings: Settings,
    delivery_id: int,
    worker: str,
    marks_requests: Callable[[str], bool] = lambda _channel: False,
    whole_channel: Callable[[str], bool] = lambda _channel: False,
) -> Claim | None:
    """Take the delivery under a lease, or return None when there is nothing to do now.

    ``marks_requests(channel)`` is True for channels that cannot look an earlier send up: for them an
    attempt records ``delivery.requesting`` just before its request leaves, so an attempt that died
    between claim and request is known never to have sent anything, and is not in doubt.
    ``whole_channel(channel)`` is True for channels whose targets are not places but batches of people
    (SMS): a later revision there waits for every earlier send of the item on the channel, not only
    for the one on its own target.
    """
    now = ledger.now()
    with ledger.session() as session:
        # One query for the delivery and what its claim needs of its item and revision (the kind, the
        # expiry); only the delivery's row is locked.
        found = session.execute(
            select(
                DeliveryRow,
                ItemRow.kind,
                RevisionRow.document["expires"].as_string(),
                ItemRow.state,
                ItemRow.live_revision_id,
                RevisionRow.number,
            )
            .join(ItemRow, ItemRow.id == DeliveryRow.item_id)
            .join(RevisionRow, RevisionRow.id == DeliveryRow.revision_id)
            .where(DeliveryRow.id == delivery_id)
            .with_for_update(of=DeliveryRow)
        ).one_or_none()
        if found is None:
            log.warning("delivery %s does not exist; task dropped", delivery_id)
            record(session, "task.unknown_delivery", actor=worker, delivery_id=None, requested=delivery_id)
            return None
        row, kind, expires_at, item_state, live_revision_id, revision_number = found
        busy = row.state is DeliveryState.sending and row.lease_until and row.lease_until > now
        # Waiting states honour their time: a stray task must not cut a backoff, a circuit's rest
        # or a rate limit short (an unknown outcome waits too, before it is settled by lookup), and a
        # scheduled item does not go out before its publish_at.
        waiting = row.state in (DeliveryState.retrying, DeliveryState.unknown, DeliveryState.pending)
        early = waiting and row.next_attempt_at and row.next_attempt_at > now
        if row.state in TERMINAL or busy or early:
            if early and row.state is DeliveryState.pending:
                row.enqueued_at = None  # a task came before its time: the sweeper publishes it when due
            return None
        if not signing.pinned(
            signing.payload_key(settings), row.payload, row.idempotency_key, row.payload_digest
        ):
            error = "payload does not match its approval pin (altered in the ledger?); not sent"
            move(session, row, DeliveryState.failed, "delivery.failed", actor=worker, why=error, error=error)
            return None
        if row.sent_at is not None and withdrawn_on_record(session, row.id):
            # Sent, lost at its target, then withdrawn on the record before it was put back: the
            # withdrawal stands, and the delivery keeps its record of having been sent.
            move(session, row, DeliveryState.sent, "delivery.not_refilled", actor=worker, reason="withdrawn")
            settle_item(session, row.item_id, worker)
            return None
        # A withdrawal or an expiry mark may be repeated safely (taking down what is gone already is
        # done; marking a marked post again changes nothing): never in doubt.
        in_doubt = row.action not in (Action.withdraw, Action.expire) and (
            row.state is DeliveryState.unknown
            or (
                row.state is DeliveryState.sending
                and lapsed_in_doubt(session, row, marks_requests(row.channel))
            )
        )
        stale = stale_state(row, item_state, live_revision_id)
        if stale is not None and not in_doubt:
            # Nothing of it left: it ends here, and nothing of an older revision lands after a newer one.
            why = (
                "the item was withdrawn before it was sent"
                if stale is DeliveryState.cancelled
                else "a later revision was approved before it was sent"
            )
            move(session, row, stale, f"delivery.{stale.value}", actor=worker, why=why)
            settle_item(session, row.item_id, worker)
            return None
        expires = datetime.fromisoformat(str(expires_at))
        # Taking down or marking what an item showed is what its expiry asks for: only sends expire.
        if expires <= now and row.showing and in_doubt and stale is None:
            # Expired while an earlier attempt is in doubt: whether it landed is settled first (never
            # by sending again), so what it may show is known and the expiry takes it down.
            stale = DeliveryState.expired
        elif expires <= now and row.showing:
            # Past its expiry nothing of an item goes out, however it was held up (a broker outage,
            # a sign showing a warning): the delivery ends as expired, on the record.
            move(
                session,
                row,
                DeliveryState.expired,
                "delivery.expired",
                actor=worker,
                why=f"the item expired at {expires.isoformat()} before it could be sent",
                expires=expires.isoformat(),
                in_doubt=in_doubt,
            )
            settle_item(session, row.item_id, worker)
            return None
        withdraws = None
        if row.action is Action.withdraw:
            taken_down = session.get_one(DeliveryRow, row.replaces_id)
            if taken_down.state not in TERMINAL:
                # Not settled yet (on its way, or waiting to retry): the takedown waits for it.
                row.state, row.next_attempt_at = (
                    DeliveryState.retrying,
                    now + timedelta(seconds=settings.sweep_interval),
                )
                row.lease_until = None
                row.last_error = f"waits for delivery {taken_down.id} to settle"
                return None
            if taken_down.state is DeliveryState.dead:
                # Its budget ran out, perhaps with an attempt in doubt: what landed is looked up first.
                withdraws = Receipt(None, {"delivery": taken_down.id, "look_up": taken_down.idempotency_key})
            elif taken_down.state is not DeliveryState.sent:
                why = f"nothing to take down: delivery {taken_down.id} ended {taken_down.state.value}"
                move(session, row, DeliveryState.cancelled, "delivery.cancelled", actor=worker, why=why)
                return None
            else:
                withdraws = Receipt(taken_down.provider_id, {"delivery": taken_down.id})
        resume_at, reason = None, ""
        if stale is None and (row.action is not Action.publish or revision_number > 1):
            blocker = earlier_in_flight(session, row, whole_channel(row.channel))
            if blocker is not None:
                # An earlier send on this target may still land: this one goes after it is settled.
                resume_at = now + timedelta(seconds=settings.sweep_interval)
                reason = f"waits for delivery {blocker}, sent earlier, to settle"
        if (
            resume_at is None
            and kind != Kind.warning.value
            and row.action not in (Action.withdraw, Action.expire)
        ):
            resume_at = quiet_until(settings, row.channel, now)
            reason = "quiet hours (routine items wait; warnings do not)"
        if resume_at is None:
            resume_at = circuits.admit(session, settings, row.channel, row.target, now)
            reason = "the target's circuit is open"
        if resume_at is None:
            wait = ratelimits.take(session, settings.rate_limits, row.channel, row.target, now)
            resume_at, reason = (now + timedelta(seconds=wait), "rate limited") if wait else (None, "")
        if resume_at is not None:
            # Not an attempt: the delivery waits, keeping whether an earlier attempt is in doubt.
            row.state = DeliveryState.unknown if in_doubt else DeliveryState.retrying
            row.next_attempt_at = resume_at
            row.lease_until = None
            row.last_error = f"{reason}; next try at {resume_at:%H:%M:%S}Z"
            return None
        doubt_since = doubt_began(session, row) if in_doubt else None
        row.attempts += 1
        move(
            session,
            row,
            DeliveryState.sending,
            "delivery.claimed",
            actor=worker,
            attempt=row.attempts,
            in_doubt=in_doubt,
        )
        row.lease_until = now + timedelta(seconds=settings.lease_seconds)
        return Claim(
            row.id,
            row.item_id,
            row.attempts,
            in_doubt,
            Payload(row.channel, row.target, dict(row.payload)),
            row.idempotency_key,
            kind,
            doubt_since,
            now,
            row.action,
            withdraws,
            stale,
        )


def settle(ledger: Ledger, settings: Settings, channel: Channel, claim: Claim) -> tuple[Receipt | None, str]:
    """Decide what became of an earlier attempt that may have landed, before sending again.

    Returns a receipt when the earlier attempt is found (``lookup``: the channel found it;
    ``reports``: delivery reports prove the gateway took it). Returns no receipt with ``sent`` when the
    channel's lookup says it did not land, or ``repeated`` when nothing can tell and the per-kind policy
    allows sending again — the doubt then remains until this attempt itself succeeds. Raises
    :class:`NotRepeatedError` when the policy does not allow it.
    """
    if channel.can_look_up:
        found = channel.lookup(claim.payload, claim.key)
        if found is not None:
            return found, "lookup"
        # "Not found" right after a timeout does not mean "never landed": a slow server may still be
        # acting on the earlier request. Conclude only once its processing window has passed.
        wait_out_the_window(ledger, settings, claim, "not found yet")
        return None, "sent"
    if channel.reports_per_recipient:
        # Reports the API kept on disk while the ledger was busy count before the policy decides.
        subscribers.apply_kept_reports(ledger, subscribers.report_spool(settings.var_dir))
        with ledger.session() as session:
            reported = subscribers.reported(session, claim.delivery_id)
        if reported:
            return Receipt(claim.key, {"recipients_reported": reported}), "reports"
        # Reports come some time after the gateway took a batch: none yet is no proof it did not.
        wait_out_the_window(ledger, settings, claim, "no delivery report yet")
    if not settings.repeat_when_unknown.get(claim.kind, False):
        raise NotRepeatedError(
            f"{claim.payload.channel}: the outcome of an earlier attempt is unknown and the "
            f"policy for a {claim.kind} is not to repeat it"
        )
    return None, "repeated"


def wait_out_the_window(ledger: Ledger, settings: Settings, claim: Claim, why: str) -> None:
    """Raise a wait while the earlier attempt's processing window is still open."""
    window = settings.window_for(claim.payload.channel)
    if claim.doubt_since is None:
        return
    left = (claim.doubt_since + timedelta(seconds=window) - ledger.now()).total_seconds()
    if left > 0:
        raise TemporaryChannelError(
            f"{claim.payload.channel}: the earlier attempt's outcome: {why}; waiting {left:.0f}s more "
            f"before concluding (processing window {window:.0f}s)",
            retry_after=left,
            wait=True,
        )


ChannelSource = Callable[[str], Channel]


def deliver(
    ledger: Ledger,
    settings: Settings,
    delivery_id: int,
    worker: str,
    channel_for: ChannelSource | None = None,
) -> DeliveryState | None:
    """Run one delivery to its next state; returns that state, or None if there was nothing to do.

    ``channel_for`` gives the adapter for a channel name; a worker process passes one that keeps
    its adapters (and their HTTP connections) between deliveries.
    """
    adapter = channel_for or (lambda name: build_channel(name, settings))
    taken = claim(
        ledger,
        settings,
        delivery_id,
        worker,
        lambda name: not adapter(name).can_look_up,
        lambda name: adapter(name).reaches_subscribers,
    )
    if taken is None:
        return None
    error: DispatchError | None = None
    receipt: Receipt | None = None
    how = "sent"
    doubt = taken.in_doubt  # an earlier attempt may have landed and nothing has said otherwise yet
    try:
        channel = adapter(taken.payload.channel)
        if taken.withdraws is not None and taken.withdraws.provider_id is None:
            # What a dead delivery may have left: taken down if a lookup finds it, else nothing to do.
            found = channel.lookup(taken.payload, str(taken.withdraws.detail["look_up"]))
            if found is not None:
                channel.retract(taken.payload, found)
            receipt, how = (
                Receipt(found.provider_id if found else None, {"found": found is not None}),
                "withdrawn",
            )
        elif taken.withdraws is not None:
            channel.retract(taken.payload, taken.withdraws)
            receipt, how = (
                Receipt(taken.withdraws.provider_id, {"withdrew": taken.withdraws.detail}),
                "withdrawn",
            )
        elif taken.stale is not None:
            # Its revision is no longer live: find out whether the earlier attempt landed, never send.
            try:
                receipt, how = settle(ledger, settings, channel, taken)
            except NotRepeatedError:
                receipt = None
            if receipt is None:
                return end_stale(ledger, taken, worker)
            doubt = False
        else:
            if doubt:
                receipt, how = settle(ledger, settings, channel, taken)
                doubt = how == "repeated"
            if receipt is None:
                if channel.reaches_subscribers or not channel.can_look_up:
                    # One transaction: the batch's numbers as approval wrote them (checked against the
                    # pin by ``addressed``), and the mark that from here on the request may have left.
                    with ledger.session() as session:
                        if channel.reaches_subscribers:
                            phones = subscribers.phones_of(session, taken.delivery_id)
                            taken = replace(taken, payload=channel.addressed(taken.payload, phones))
                        if not channel.can_look_up:
                            record(
                                session,
                                "delivery.requesting",
                                actor=worker,
                                item_id=taken.item_id,
                                delivery_id=taken.delivery_id,
                                attempt=taken.attempt,
                            )
                receipt = channel.send(taken.payload, taken.key)
        if receipt is not None and receipt.detail.get("duplicates"):
            receipt = remove_duplicates(ledger, channel, taken, worker, receipt)
    except DispatchError as exc:
        error = exc
    except Exception as exc:  # a bug or an unforeseen library error: retried within the budget
        log.exception("delivery %s: unexpected error", delivery_id)
        error = TemporaryChannelError(f"{type(exc).__name__}: {exc}")
    return finish(ledger, settings, taken, worker, receipt, how, error, doubt)


def end_stale(ledger: Ledger, taken: Claim, worker: str) -> DeliveryState | None:
    """A delivery of a revision no longer live, whose earlier attempt was not found to have landed (or
    nothing can tell): it ends without sending, on the record."""
    assert taken.stale is not None
    with ledger.session() as session:
        row = session.get(DeliveryRow, taken.delivery_id, with_for_update=True)
        if row is None or row.state is not DeliveryState.sending or row.attempts != taken.attempt:
            return None
        move(
            session,
            row,
            taken.stale,
            f"delivery.{taken.stale.value}",
            actor=worker,
            why=f"{taken.stale.value}: it may no longer be sent, and its earlier attempt was not found "
            "to have landed",
            attempt=row.attempts,
        )
        settle_item(session, row.item_id, worker)
    return taken.stale


def remove_duplicates(
    ledger: Ledger, channel: Channel, taken: Claim, worker: str, receipt: Receipt
) -> Receipt:
    """Withdraw the extra copies a lookup found (two posts for one delivery), each on the record."""
    removed = []
    for extra in receipt.detail["duplicates"]:
        channel.retract(taken.payload, Receipt(str(extra)))
        removed.append(str(extra))
        with ledger.session() as session:
            record(
                session,
                "delivery.duplicate_removed",
                actor=worker,
                item_id=taken.item_id,
                delivery_id=taken.delivery_id,
                kept=receipt.provider_id,
                removed=str(extra),
            )
    detail = {k: v for k, v in receipt.detail.items() if k != "duplicates"}
    return Receipt(receipt.provider_id, {**detail, "removed_duplicates": removed}, receipt.alert)


def finish(
    ledger: Ledger,
    settings: Settings,
    taken: Claim,
    worker: str,
    receipt: Receipt | None,
    how: str,
    error: DispatchError | None,
    doubt: bool = False,
) -> DeliveryState | None:
    """Record what became of one attempt, unless the claim was lost to another worker meanwhile."""
    now = ledger.now()
    with ledger.session() as session:
        row = session.get(DeliveryRow, taken.delivery_id, with_for_update=True)
        if row is None or row.state is not DeliveryState.sending or row.attempts != taken.attempt:
            # Our lease ran out and another worker took the delivery over; its outcome stands.
            record(
                session,
                "delivery.late_outcome",
                actor=worker,
                item_id=taken.item_id,
                delivery_id=taken.delivery_id,
                attempt=taken.attempt,
                error=str(error or ""),
            )
            return None
        if error is None and receipt is not None:
            sent(session, settings, row, receipt, how, worker, now)
        elif isinstance(error, TemporaryChannelError) and error.wait:
            wait(session, settings, row, error, doubt, worker, now)
        elif isinstance(error, TemporaryChannelError):
            retry_or_give_up(session, settings, row, taken, error, doubt, worker, now)
        else:
            # Too late: the peer cannot show it for the little time left (a sign counts in minutes).
            late = isinstance(error, TooLateError)
            state, event = (
                (DeliveryState.expired, "delivery.expired")
                if late
                else (DeliveryState.failed, "delivery.failed")
            )
            policy = {"policy": "do not repeat"} if isinstance(error, NotRepeatedError) else {}
            move(
                session,
                row,
                state,
                event,
                actor=worker,
                why=str(error),
                attempt=row.attempts,
                error=str(error),
                **policy,
            )
        if isinstance(error, ChannelError) and error.alert:
            # Credentials expired or revoked: every delivery on this channel will fail until renewed.
            alert(session, row, worker, str(error))
        state = row.state
        if state in TERMINAL:
            settle_item(session, row.item_id, worker)
    log.info(
        "delivery %s %s/%s → %s", taken.delivery_id, taken.payload.channel, taken.payload.target, state.value
    )
    return state


def alert(session: Session, row: DeliveryRow, worker: str, error: str) -> None:
    """A channel alert: people must act (credentials revoked, a site that changed what it was sent)."""
    record_delivery(
        session,
        row,
        "channel.alert",
        actor=worker,
        attempt=row.attempts,
        channel=row.channel,
        target=row.target,
        error=error,
    )


def sent(
    session: Session,
    settings: Settings,
    row: DeliveryRow,
    receipt: Receipt,
    how: str,
    worker: str,
    now: datetime,
) -> None:
    circuits.succeeded(session, row.channel, row.target, worker)
    # A delivery sent again (a sign that lost its message) keeps the time it was first sent.
    row.provider_id, row.sent_at = receipt.provider_id, row.sent_at or now
    move(
        session,
        row,
        DeliveryState.sent,
        "delivery.sent",
        actor=worker,
        attempt=row.attempts,
        provider_id=receipt.provider_id,
        found_by_lookup=how == "lookup",
        how=how,
        **({"link": receipt.detail["link"]} if receipt.detail.get("link") else {}),
    )
    if receipt.alert:
        alert(session, row, worker, receipt.alert)
    if row.action is Action.withdraw and row.replaces_id is not None:
        taken_down = session.get_one(DeliveryRow, row.replaces_id)
        record_delivery(session, taken_down, "delivery.withdrawn", actor=worker, by=row.id, target=row.target)
    elif row.action is Action.update and row.replaces_id is not None:
        replace_earlier(session, settings, row, worker)


def replace_earlier(session: Session, settings: Settings, row: DeliveryRow, worker: str) -> None:
    """A correction in place is out: what the earlier delivery put there goes, unless it was the same
    thing (the same post, edited). A sign keeps the older message under the newer one, and would show it
    again when the newer one ends; a microblog set to replace deletes the original once the correction
    is posted. The taking down is a delivery of its own, with its own attempts and outcome."""
    earlier = session.get_one(DeliveryRow, row.replaces_id)
    # What this one replaces may never have landed (a correction superseded while in doubt, found not to
    # have landed): then what it was to replace still shows, and goes now (found by the fault suite: a
    # sign kept the first revision's message under the third's).
    seen = {row.id}
    while earlier.state is not DeliveryState.sent and earlier.replaces_id and earlier.id not in seen:
        seen.add(earlier.id)
        earlier = session.get_one(DeliveryRow, earlier.replaces_id)
    if earlier.state is not DeliveryState.sent or earlier.provider_id == row.provider_id:
        return
    if withdrawn_on_record(session, earlier.id) or session.scalar(
        select(DeliveryRow.id)
        .where(DeliveryRow.replaces_id == earlier.id, DeliveryRow.action == Action.withdraw)
        .limit(1)
    ):
        return  # taken down already, or on its way down (a withdrawal of the item came first)
    before = corrections.Reached(earlier.id, earlier.channel, earlier.target, dict(earlier.payload))
    key = signing.payload_key(settings)
    withdrawal = corrections.withdrawal(key, row.revision_id, row.item_id, row.queue, before)
    corrections.write_pending(session, [withdrawal], worker)


def wait(
    session: Session,
    settings: Settings,
    row: DeliveryRow,
    error: TemporaryChannelError,
    doubt: bool,
    worker: str,
    now: datetime,
) -> None:
    """The peer set the time (a rate limit, a sign showing a warning, a sign in local control): not a
    failure, so neither an attempt nor a mark against the circuit is spent."""
    delay = max(1.0, error.retry_after or settings.retry_base_seconds)
    row.attempts -= 1
    # Never wait past the item's expiry: at expiry the delivery ends, it is not sent late.
    row.next_attempt_at = min(now + timedelta(seconds=delay), expiry_of(row))
    state = DeliveryState.unknown if doubt else DeliveryState.retrying
    move(
        session,
        row,
        state,
        "delivery.waiting",
        actor=worker,
        why=str(error),
        attempt=row.attempts,
        error=str(error),
        retry_in=round(delay, 2),
    )


def retry_or_give_up(
    session: Session,
    settings: Settings,
    row: DeliveryRow,
    taken: Claim,
    error: TemporaryChannelError,
    doubt: bool,
    worker: str,
    now: datetime,
) -> None:
    """A temporary failure: try again after a backoff, or end as dead once the budget is spent."""
    circuits.failed(session, settings, row.channel, row.target, str(error), worker, now)
    budget = settings.budget(row.channel)
    spent = (now - budget_start(session, row)).total_seconds()
    if row.attempts >= budget.attempts or spent >= budget.seconds:
        move(
            session,
            row,
            DeliveryState.dead,
            "delivery.dead",
            actor=worker,
            why=f"{error} (gave up after {row.attempts} attempts in {spent:.0f}s)",
            attempt=row.attempts,
            error=str(error),
            budget_attempts=budget.attempts,
            budget_seconds=budget.seconds,
        )
        return
    delay = backoff(settings, row.attempts, error.retry_after)
    # Still unknown if this attempt's answer was lost, or if an earlier attempt's outcome was never
    # settled: the next attempt must settle it first, not send blindly.
    lost = isinstance(error, OutcomeUnknownError)
    unknown = lost or doubt
    row.next_attempt_at = now + timedelta(seconds=delay)
    since = taken.claimed_at if lost else taken.doubt_since
    move(
        session,
        row,
        DeliveryState.unknown if unknown else DeliveryState.retrying,
        "delivery.unknown" if unknown else "delivery.retrying",
        actor=worker,
        why=str(error),
        attempt=row.attempts,
        error=str(error),
        retry_in=round(delay, 2),
        # when the request in doubt left: the window for "not found yet" counts from here
        **({"requested_at": since.isoformat()} if unknown and since else {}),
    )
