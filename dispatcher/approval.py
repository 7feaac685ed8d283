"""Submitting, approving and rejecting items.

Approval pins content: it renders every channel's payload for every target, stores each with its
digest and writes the deliveries as ``pending`` in the same transaction that marks the item
approved. Only after that commit are tasks enqueued (an outbox: if the broker is down, the sweeper
enqueues them later). The approver is never the author, and an item is approved once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from channels import REGISTRY, build_channel, unknown
from channels.base import Channel
from dispatcher import caps, corrections, outbox, people, signing, subscribers
from dispatcher.corrections import idempotency_key
from dispatcher.errors import ContentError, InvalidItemError, NotFoundError, RefusedError
from dispatcher.items import Item, Kind
from dispatcher.ledger import (
    Action,
    ApprovalRow,
    DeliveryRow,
    DeliveryState,
    EndorsementRow,
    ItemRow,
    ItemState,
    Ledger,
    RecipientRow,
    RevisionRow,
    SmsBatchRow,
    database_form,
    insert_events,
    insert_rows,
    record,
    utcnow,
)
from dispatcher.rendering import TemplateRenderer, publication_for
from dispatcher.words import Payload, Publication, Target, digest_of
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Every payload an item would send, and what stops or worries the approver."""

    publication: Publication
    payloads: list[Payload] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: deliveries the broker took at approval; the rest wait in the ledger for the sweeper
    enqueued: int = 0
    #: the adapters that rendered the payloads, by channel name
    adapters: dict[str, Channel] = field(default_factory=dict)
    #: for each channel that reaches subscribers, how many recipients; its one payload here is a
    #: sample of its batches, which approval writes as it streams the audience
    audiences: dict[str, int] = field(default_factory=dict)
    #: approvals still needed before anything is sent (a severe warning needs two); 0 once approved
    awaiting: int = 0
    #: everyone who approved the revision, in order
    approvers: list[str] = field(default_factory=list)
    #: for a correction: the (channel, target) pairs an earlier revision reached, rendered as corrections
    #: (a channel that reaches subscribers is one pair, with target ``*``); the others as publications
    corrected: frozenset[tuple[str, str]] = frozenset()

    @property
    def per_channel(self) -> dict[str, int]:
        """Payloads by channel, in the order the channels came."""
        counted: dict[str, int] = {}
        for payload in self.payloads:
            counted[payload.channel] = counted.get(payload.channel, 0) + 1
        return counted

    def publication_for(self, channel: str, target: str) -> Publication:
        """The publication as one target gets it: a correction only where an earlier revision reached."""
        if self.publication.stage != "correction":
            return self.publication
        if (channel, target) in self.corrected or (channel, "*") in self.corrected:
            return self.publication
        return replace(self.publication, stage="publish", previous_title=None)


def queue_for(kind: str, channel: str, bulk: bool = False) -> str:
    """Warnings take the urgent lanes — a warning's batches to subscribers a lane of their own, so its
    signs, site and posts never wait behind thousands of them; everything else waits in its channel's
    queue."""
    if kind != Kind.warning.value:
        return channel
    return URGENT_BULK if bulk else URGENT


URGENT = "urgent"
URGENT_BULK = "urgent-bulk"
#: the lanes a worker takes from before any other queue
URGENT_LANES = (URGENT, URGENT_BULK)


def plan(
    settings: Settings,
    publication: Publication,
    only: str | None = None,
    *,
    ask_peers: bool = True,
    corrected: frozenset[tuple[str, str]] = frozenset(),
) -> Plan:
    """Render every wanted channel for every target; collect every limit problem, not only the first.

    With ``ask_peers`` each channel also asks its peer whether it will take the payloads (``check``).
    A correction is rendered as one only for the targets in ``corrected`` (those an earlier revision
    reached); elsewhere it is the item's first publication.
    """
    renderer = TemplateRenderer(settings.templates_dir)
    result = Plan(publication, corrected=corrected)
    for name in channels_of(publication.item):
        if only and name != only:
            continue
        channel = result.adapters[name] = build_channel(name, settings)
        if channel.reaches_subscribers:
            targets = _sample_batch(result, name, channel, publication)
        else:
            targets = channel.targets(publication)
        if not targets:
            result.notes.append(f"{name}: no target for this item (nothing will be sent)")
        prepared = []
        for target in targets:
            try:
                payload = channel.prepare(result.publication_for(name, target.name), target, renderer)
            except ContentError as exc:
                result.problems.append(str(exc))
                continue
            prepared.append(payload)
            result.notes += channel.remarks(payload)
        if prepared and ask_peers:
            findings = channel.check(prepared)
            result.problems += findings.problems
            result.notes += findings.notes
        result.payloads += prepared
    return result


def _sample_batch(result: Plan, name: str, channel: Channel, publication: Publication) -> list[Target]:
    """The first batch of a channel that reaches subscribers, standing for all of them in a plan (every
    batch carries the same text)."""
    size = channel.recipients_per_target
    count = publication.audience
    batches = -(-count // size)
    result.audiences[name] = count
    if not count:
        return []
    result.notes.append(f"{name}: {count} recipient(s) in {batches} batch(es) of up to {size}")
    return [Target(batch_name(1), {"recipients": min(count, size), "audience": ""})]


def batch_name(number: int, kind: str = "batch") -> str:
    return f"{kind}-{number:03d}"


def channels_of(item: Item) -> list[str]:
    """The channels an item names (every registered one when it names none), each known."""
    names = item.channels or list(REGISTRY)
    for name in names:
        if name not in REGISTRY:
            raise InvalidItemError(
                item.title, [("channels", f"{unknown(name)}; known: {', '.join(REGISTRY)}")]
            )
    return names


def approvals_needed(settings: Settings, item: Item) -> int:
    """How many people must approve: a warning as its severity requires (settings), anything else one."""
    if item.kind is not Kind.warning or item.severity is None:
        return 1
    return settings.approvals_required.get(item.severity.value, 1)


def _endorsements(session: Session, revision_id: int) -> list[str]:
    """Who approved the revision so far (its first approvals), in order."""
    return list(
        session.scalars(
            select(EndorsementRow.approver)
            .where(EndorsementRow.revision_id == revision_id)
            .order_by(EndorsementRow.id)
        )
    )


def _corrected(session: Session, item_id: int) -> frozenset[tuple[str, str]]:
    """The targets an earlier revision of the item reached; a channel that reaches subscribers as one."""
    found = corrections.reached_targets(session, item_id)
    whole = {(channel, "*") for channel, _ in found if REGISTRY[channel].reaches_subscribers}
    return frozenset(found | whole)


def _subscriber_channel(item: Item) -> str | None:
    return next((name for name in channels_of(item) if REGISTRY[name].reaches_subscribers), None)


def _audience(session: Session, settings: Settings, item: Item, correcting: int | None = None) -> int:
    """How many phones the item's texts go to; for a correction of item ``correcting``, the phones that
    had an earlier revision and those newly in its audience."""
    channel = _subscriber_channel(item)
    if channel is None:
        return 0
    if correcting is not None:
        return sum(
            1 for _ in subscribers.correction_audience(session, item, settings.sms, correcting, channel)
        )
    return subscribers.audience_size(session, item, settings.sms)


def draft_publication(session: Session, settings: Settings, item: Item) -> Publication:
    """A publication for an item not yet in the ledger (preview of a file)."""
    return publication_for(
        item,
        item_id=0,
        uid="0" * 32,
        revision=1,
        public_url=settings.website.public_url,
        audience=_audience(session, settings, item),
    )


def stored_publication(
    session: Session, settings: Settings, row: ItemRow, revision: RevisionRow | None = None
) -> Publication:
    """The publication of an item's latest revision (or of ``revision``): a correction when an earlier
    one is live."""
    revision = revision or row.current
    item = Item.model_validate(revision.document)
    live = session.get(RevisionRow, row.live_revision_id) if row.live_revision_id else None
    correcting = live is not None and live.id != revision.id
    return publication_for(
        item,
        item_id=row.id,
        uid=row.uid,
        revision=revision.number,
        public_url=settings.website.public_url,
        audience=_audience(session, settings, item, row.id if correcting else None),
        stage="correction" if correcting else "publish",
        previous_title=str(live.document["title"]) if correcting and live else None,
    )


#: Called inside the transaction that stores an item or a revision, with its session and the item's id
#: and revision number: what came with it is recorded in the same transaction (a CAP alert's row).
Stored = Callable[[Session, int, int], None]


def submit(ledger: Ledger, item: Item, *, draft: bool = False, also: Stored | None = None) -> int:
    """Store a validated item with its first revision, as ``submitted`` (or ``draft``); return its id."""
    channels_of(item)  # an unknown channel is refused now, naming the field, not at approval
    _not_expired(ledger, item)
    with ledger.session() as session:
        item_id = store_item(session, item, draft=draft)
        if also is not None:
            also(session, item_id, 1)
        return item_id


def store_item(session: Session, item: Item, *, draft: bool = False, **detail: Any) -> int:
    """Write an item with its first revision and its ``item.submitted`` (or ``item.drafted``) event,
    ``detail`` added to it, in the caller's transaction; return its id."""
    document = item.model_dump(mode="json")
    row = ItemRow(
        uid=uuid.uuid4().hex,
        kind=item.kind.value,
        title=item.title,
        author=item.author,
        department=item.department,
        state=ItemState.draft if draft else ItemState.submitted,
    )
    session.add(row)
    session.flush()
    session.add(RevisionRow(item_id=row.id, number=1, document=document, digest=digest_of(document)))
    record(
        session,
        "item.drafted" if draft else "item.submitted",
        actor=item.author,
        item_id=row.id,
        kind=item.kind.value,
        **detail,
    )
    return row.id


def _not_expired(ledger: Ledger, item: Item) -> None:
    """An item already past its ``expires`` could never be approved: refused now, naming the field."""
    if item.is_expired(ledger.now()):
        raise InvalidItemError(item.title, [("expires", f"{item.expires.isoformat()} has already passed")])


def submit_draft(ledger: Ledger, item_id: int, by: str | None = None) -> None:
    """Move a draft on to review: by its author (``by``, the user who asks; None: the flow's own callers)."""
    with ledger.session() as session:
        row = _load(session, item_id)
        if row.state is not ItemState.draft:
            raise RefusedError(f"item {item_id} is {row.state.value}; only a draft can be submitted")
        if by is not None and not people.same_person(by, row.author):
            raise RefusedError(f"item {item_id} is {row.author}'s draft; only they can submit it")
        row.state = ItemState.submitted
        record(session, "item.submitted", actor=by or row.author, item_id=item_id, kind=row.kind)


def person(name: str, missing: str) -> str:
    """A checked name for the record, or a RefusedError saying what is missing or wrong."""
    if not name.strip():
        raise RefusedError(missing)
    try:
        return people.checked_name(name)
    except ValueError as exc:
        raise RefusedError(f"the name {name!r} {exc}") from None


def _load(session: Session, item_id: int) -> ItemRow:
    row = session.get(ItemRow, item_id, with_for_update=True)
    if row is None:
        raise NotFoundError(f"no item {item_id}")
    return row


def _reviewable(session: Session, item_id: int, reviewer: str, action: str) -> ItemRow:
    """The item, locked, if ``reviewer`` may ``action`` its latest revision now; a RefusedError saying
    why not otherwise. A revision is reviewed once; its author never reviews it."""
    row = _load(session, item_id)
    if row.state is ItemState.draft:
        raise RefusedError(
            f"item {item_id} is a draft; submit it for review first (dispatch submit {item_id})"
        )
    if row.state is ItemState.withdrawn:
        raise RefusedError(f"item {item_id} was withdrawn; nothing of it can be {action}")
    revision = row.current
    review = session.query(ApprovalRow).filter_by(revision_id=revision.id).one_or_none()
    if review is not None or (row.live_revision_id is None and row.state is not ItemState.submitted):
        by = f" ({review.decision} by {review.approver} at {review.at:%Y-%m-%d %H:%M:%S}Z)" if review else ""
        what = f"item {item_id}" if revision.number == 1 else f"revision {revision.number} of item {item_id}"
        state = review.decision if review else row.state.value
        raise RefusedError(
            f"{what} is already {state}{by}; only a submitted revision can be {action}, "
            "and nothing was sent again"
        )
    author = str(revision.document.get("author") or row.author)
    if people.same_person(reviewer, author):  # look-alike spellings of a name are the same person
        verb = "approve" if action == "approved" else "review"
        what = f"item {item_id}" if revision.number == 1 else f"revision {revision.number} of item {item_id}"
        raise RefusedError(f"{what} was written by {author}; another person must {verb} it")
    return row


def revise(ledger: Ledger, item_id: int, item: Item, *, also: Stored | None = None) -> int:
    """Store a new revision of an item for review — a correction once an earlier one is out; return its
    number. It is reviewed like any item (the same checks and limits, another person approves it); until
    then the approved revision stands."""
    channels_of(item)
    _not_expired(ledger, item)
    document = item.model_dump(mode="json")
    with ledger.session() as session:
        row = _load(session, item_id)
        if row.state is ItemState.withdrawn:
            raise RefusedError(f"item {item_id} was withdrawn; submit a new item instead")
        if item.kind.value != row.kind:
            raise InvalidItemError(
                item.title,
                [("kind", f"item {item_id} is a {row.kind}; a revision cannot make it a {item.kind}")],
            )
        latest = row.current
        number = latest.number + 1
        session.add(
            RevisionRow(
                item_id=row.id,
                number=number,
                replaces_id=row.live_revision_id or latest.id,
                document=document,
                digest=digest_of(document),
            )
        )
        if row.state is ItemState.rejected:
            row.state = ItemState.submitted
        record(
            session,
            "item.revised",
            actor=item.author,
            item_id=item_id,
            revision=number,
            replaces=latest.number,
            digest=digest_of(document),
        )
        if also is not None:
            also(session, item_id, number)
        return number


def approve(
    ledger: Ledger,
    settings: Settings,
    item_id: int,
    approver: str,
    broker: outbox.Broker | None = None,
    *,
    basis: dict[str, Any] | None = None,
) -> Plan:
    """Approve an item's submitted revision, pin its payloads, write its deliveries and enqueue them on
    ``broker`` (without one, they wait in the ledger for the sweeper). A revision of an item already out
    is a correction: see :mod:`dispatcher.corrections`. ``basis`` names what the approval stands on when
    it was given before the item existed (a rota's approval: its rota, version and slot), recorded."""
    approver = person(approver, "an approval needs the approver's name")
    with ledger.session() as session:
        row = _reviewable(session, item_id, approver, "approved")
        publication = stored_publication(session, settings, row)
        revision_id = row.current.id
        corrected = _corrected(session, item_id) if publication.stage == "correction" else frozenset()
    if publication.item.is_expired(ledger.now()):
        raise RefusedError(f"item {item_id} expired at {publication.item.expires.isoformat()}")
    # Rendering (every SMS batch, every sign) happens outside the write transaction, so a large
    # fan-out does not hold the ledger's lock; the item is checked again under the lock below.
    result = plan(settings, publication, corrected=corrected)
    if result.problems:
        raise ContentError(
            f"item {item_id} cannot be approved as written:\n"
            + "\n".join(f"  {problem}" for problem in result.problems)
        )
    if not result.payloads and publication.stage != "correction":
        raise RefusedError(f"item {item_id} reaches no target on any channel")
    key = signing.payload_key(settings)
    renderer = TemplateRenderer(settings.templates_dir)
    with ledger.session() as session:
        row = _reviewable(session, item_id, approver, "approved")
        revision = row.current
        if revision.id != revision_id:
            raise RefusedError(f"item {item_id} changed while it was being approved; approve it again")
        correcting = row.live_revision_id is not None
        endorsed = _endorsements(session, revision.id)
        if any(people.same_person(approver, earlier) for earlier in endorsed):
            raise RefusedError(
                f"{approver} approved revision {revision.number} of item {item_id} already; "
                "the next approval must be another person's"
            )
        needed = approvals_needed(settings, publication.item)
        result.approvers = [*endorsed, approver]
        if len(result.approvers) < needed:
            # A first approval of a severe warning: on the record, and nothing is sent yet.
            session.add(EndorsementRow(revision_id=revision.id, approver=approver))
            result.awaiting = needed - len(result.approvers)
            record(
                session,
                "item.endorsed",
                actor=approver,
                item_id=item_id,
                revision=revision.number,
                approvals=len(result.approvers),
                needed=needed,
            )
            return result
        row.state = ItemState.approved
        row.live_revision_id = revision.id
        row.expires_at, row.ended_at = publication.item.expires, None
        # An item to go out later waits in the ledger: its deliveries are due at publish_at.
        due_at = publication.item.publish_at if _later(publication.item, ledger.now()) else None
        session.add(ApprovalRow(revision_id=revision.id, approver=approver, decision="approved"))
        record(
            session,
            "item.approved",
            actor=approver,
            item_id=item_id,
            revision=revision.number,
            approvers=result.approvers,
            basis=basis,
        )
        earlier: dict[tuple[str, str], corrections.Reached] = {}
        if correcting:
            corrections.stop_earlier(
                session,
                item_id,
                revision.id,
                DeliveryState.superseded,
                "delivery.superseded",
                approver,
                why=f"revision {revision.number} was approved before it was sent",
                revision=revision.number,
            )
            # An item corrected after it ended shows again: what its expiry still had to do is stopped.
            corrections.stop_ending(session, item_id, revision.id, approver, revision=revision.number)
            fixed_channels = [name for name in REGISTRY if not REGISTRY[name].reaches_subscribers]
            earlier = corrections.latest_per_target(
                corrections.reached(session, item_id, fixed_channels, revision.id)
            )
        fixed = [p for p in result.payloads if not result.adapters[p.channel].reaches_subscribers]
        deliveries = []
        for payload in fixed:
            before = earlier.pop((payload.channel, payload.target), None)
            replaces = result.adapters[payload.channel].replaces_on_correction
            queue = queue_for(row.kind, payload.channel)
            delivery = corrections.pending(key, revision.id, item_id, queue, payload)
            delivery.action = corrections.action_for(replaces, before)
            delivery.replaces_id = before.id if before else None
            delivery.next_attempt_at = due_at
            deliveries.append(delivery)
        # What the earlier revisions reached and this one does not (a sign outside its areas now) is
        # taken down; a channel that cannot take anything back keeps it.
        for before in earlier.values():
            if REGISTRY[before.channel].can_withdraw:
                queue = queue_for(row.kind, before.channel)
                deliveries.append(corrections.withdrawal(key, revision.id, item_id, queue, before))
        work = corrections.write_pending(session, deliveries, approver)
        bulk: list[tuple[int, str]] = []
        for adapter in result.adapters.values():
            if result.audiences.get(adapter.name):
                sms_reached = (adapter.name, "*") in result.corrected
                action = Action.follow_up if correcting and sms_reached else Action.publish

                def phones(channel: str = adapter.name, item: Item = publication.item) -> Iterator[str]:
                    if correcting:
                        return subscribers.correction_audience(session, item, settings.sms, item_id, channel)
                    return subscribers.audience(session, item, settings.sms)

                shown = result.publication_for(adapter.name, "*")
                cap = daily_cap(settings, publication.item, adapter.name, due_at or ledger.now())
                writer = AudienceWriter(
                    session, key, adapter, revision.id, item_id, row.kind, approver, action, due_at
                )
                within = phones() if cap is None else subscribers.minus(phones(), cap.reached(session))
                for batch in subscribers.batches_of(within, adapter.recipients_per_target):
                    writer.add(adapter.prepare(shown, writer.next_target(batch), renderer), batch)
                bulk += writer.flush()
                if cap is not None:
                    # Batches over the cap wait for tomorrow in the ledger: the sweeper publishes them then.
                    cap.apply(session, writer, phones(), shown, renderer, result)
        for note in result.notes:
            record(session, "item.note", actor=approver, item_id=item_id, note=note)
    # The first batches to subscribers go with the rest; the others wait in the ledger for the
    # sweeper, which publishes them outbox.SWEEP_LIMIT a sweep at most: publishing ten thousand tasks here
    # would keep the approver waiting (seconds on Redis, a minute on the embedded broker) for nothing.
    if due_at is None:
        result.enqueued = outbox.enqueue(ledger, broker, work + bulk[:PUBLISHED_AT_APPROVAL])
    else:
        result.notes.append(f"scheduled: the deliveries wait in the ledger until {due_at.isoformat()}")
    return result


def daily_cap(settings: Settings, item: Item, channel: str, send_at: datetime) -> caps.DailyCap | None:
    """The daily cap a routine item's texts answer to (warnings are never capped)."""
    if item.kind is Kind.warning:
        return None
    return caps.DailyCap.for_send(settings, channel, send_at)


def _later(item: Item, now: datetime) -> bool:
    return item.publish_at is not None and item.publish_at > now


PUBLISHED_AT_APPROVAL = 100


class AudienceWriter:
    """Writes the batches of a channel that reaches subscribers as approval streams its audience: the
    deliveries, one record per phone, the batch's expected reports and the ``delivery.pending`` events,
    all in bulk, a few thousand phones at a time, so memory stays flat whatever the audience."""

    FLUSH_PHONES = 5000

    def __init__(
        self,
        session: Session,
        key: bytes,
        adapter: Channel,
        revision_id: int,
        item_id: int,
        kind: str,
        approver: str,
        action: Action = Action.publish,
        due_at: datetime | None = None,
        prefix: str = "batch",
    ) -> None:
        self.session, self.key, self.adapter = session, key, adapter
        self.action, self.due_at = action, due_at
        self.prefix = "notice" if action is Action.notice else prefix
        self.kind = kind
        self.revision_id, self.item_id, self.approver = revision_id, item_id, approver
        self.queue = queue_for(kind, adapter.name, bulk=True)
        self.number = 0
        self.waiting: list[tuple[Payload, list[str]]] = []
        self.phones = 0
        self.written: list[tuple[int, str]] = []

    def sibling(self, due_at: datetime | None, prefix: str) -> AudienceWriter:
        """A writer of more batches of the same item, due at ``due_at``, named ``<prefix>-NNN``."""
        return AudienceWriter(
            self.session,
            self.key,
            self.adapter,
            self.revision_id,
            self.item_id,
            self.kind,
            self.approver,
            self.action,
            due_at,
            prefix,
        )

    def next_target(self, phones: list[str]) -> Target:
        self.number += 1
        name = batch_name(self.number, self.prefix)
        return Target(name, {"recipients": len(phones), "audience": digest_of(phones)})

    def add(self, payload: Payload, phones: list[str]) -> None:
        self.waiting.append((payload, phones))
        self.phones += len(phones)
        if self.phones >= self.FLUSH_PHONES:
            self.flush()

    def flush(self) -> list[tuple[int, str]]:
        """Write what waits; return every (delivery id, queue) written so far."""
        if not self.waiting:
            return self.written
        now = utcnow()
        keys = [idempotency_key(self.revision_id, p.channel, p.target) for p, _ in self.waiting]
        pins = [signing.pin(self.key, p.body, k) for (p, _), k in zip(self.waiting, keys, strict=True)]
        # Core's executemany throughout: the ORM's bulk path costs as much again, for nothing here.
        deliveries: Table = DeliveryRow.__table__  # type: ignore[assignment]
        ids = self.session.scalars(
            insert(deliveries).returning(deliveries.c.id, sort_by_parameter_order=True),
            [
                {
                    "revision_id": self.revision_id,
                    "item_id": self.item_id,
                    "channel": payload.channel,
                    "target": payload.target,
                    "queue": self.queue,
                    "action": self.action.value,
                    "next_attempt_at": self.due_at,
                    "idempotency_key": delivery_key,
                    "payload": payload.body,
                    "payload_digest": pin,
                    "state": DeliveryState.pending,
                    "created_at": now,
                    "updated_at": now,
                }
                for (payload, _), delivery_key, pin in zip(self.waiting, keys, pins, strict=True)
            ],
        ).all()
        recipients: Table = RecipientRow.__table__  # type: ignore[assignment]
        stamp = database_form(recipients.c.updated_at, now, self.session)
        insert_rows(
            self.session,
            recipients,
            ["delivery_id", "phone", "state", "updated_at"],
            [
                (delivery_id, phone, "pending", stamp)
                for delivery_id, (_, phones) in zip(ids, self.waiting, strict=True)
                for phone in phones
            ],
        )
        self.session.execute(
            insert(SmsBatchRow.__table__),  # type: ignore[arg-type]
            [
                {
                    "delivery_id": delivery_id,
                    "parts": self.adapter.reports_expected(payload),
                    "recipients": len(phones),
                    "final_reports": 0,
                    "reported_parts": [],
                    "alerted": False,
                }
                for delivery_id, (payload, phones) in zip(ids, self.waiting, strict=True)
            ],
        )
        insert_events(
            self.session,
            [
                {
                    "at": now,
                    "name": "delivery.pending",
                    "actor": self.approver,
                    "item_id": self.item_id,
                    "delivery_id": delivery_id,
                    "detail": {
                        "channel": payload.channel,
                        "target": payload.target,
                        "digest": pin,
                        "recipients": len(phones),
                    },
                }
                for delivery_id, (payload, phones), pin in zip(ids, self.waiting, pins, strict=True)
            ],
        )
        self.written += [(delivery_id, self.queue) for delivery_id in ids]
        self.waiting, self.phones = [], 0
        return self.written


def reject(ledger: Ledger, item_id: int, reviewer: str, reason: str) -> None:
    reviewer = person(reviewer, "a rejection needs the reviewer's name")
    with ledger.session() as session:
        row = _reviewable(session, item_id, reviewer, "rejected")
        if row.live_revision_id is None:
            row.state = ItemState.rejected
        # else a correction was turned down: the approved revision stands, and so does the item's state
        session.add(
            ApprovalRow(revision_id=row.current.id, approver=reviewer, decision="rejected", reason=reason)
        )
        record(
            session,
            "item.rejected",
            actor=reviewer,
            item_id=item_id,
            reason=reason,
            revision=row.current.number,
        )
