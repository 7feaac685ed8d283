"""Submitting, approving and rejecting items.

Approval pins content: it renders every channel's payload for every target, stores each with its
digest and writes the deliveries as ``pending`` in the same transaction that marks the item
approved. Only after that commit are tasks enqueued (an outbox: if the broker is down, the sweeper
enqueues them later). The approver is never the author, and an item is approved once.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from channels import REGISTRY, build_channel, unknown
from channels.base import Channel
from dispatcher import outbox, people, signing, subscribers
from dispatcher.errors import ContentError, InvalidItemError, NotFoundError, RefusedError
from dispatcher.items import Item, Kind
from dispatcher.ledger import (
    ApprovalRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RecipientRow,
    RevisionRow,
    SmsBatchRow,
    database_form,
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


def idempotency_key(revision_id: int, channel: str, target: str) -> str:
    return hashlib.sha256(f"{revision_id}/{channel}/{target}".encode()).hexdigest()[:40]


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
    settings: Settings, publication: Publication, only: str | None = None, *, ask_peers: bool = True
) -> Plan:
    """Render every wanted channel for every target; collect every limit problem, not only the first.

    With ``ask_peers`` each channel also asks its peer whether it will take the payloads (``check``).
    """
    renderer = TemplateRenderer(settings.templates_dir)
    result = Plan(publication)
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
                payload = channel.prepare(publication, target, renderer)
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


def batch_name(number: int) -> str:
    return f"batch-{number:03d}"


def channels_of(item: Item) -> list[str]:
    """The channels an item names (every registered one when it names none), each known."""
    names = item.channels or list(REGISTRY)
    for name in names:
        if name not in REGISTRY:
            raise InvalidItemError(
                item.title, [("channels", f"{unknown(name)}; known: {', '.join(REGISTRY)}")]
            )
    return names


def _audience(session: Session, settings: Settings, item: Item) -> int:
    if not any(REGISTRY[name].reaches_subscribers for name in channels_of(item)):
        return 0
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


def stored_publication(session: Session, settings: Settings, row: ItemRow) -> Publication:
    revision = row.current
    item = Item.model_validate(revision.document)
    return publication_for(
        item,
        item_id=row.id,
        uid=row.uid,
        revision=revision.number,
        public_url=settings.website.public_url,
        audience=_audience(session, settings, item),
    )


def submit(ledger: Ledger, item: Item, *, draft: bool = False) -> int:
    """Store a validated item with its first revision, as ``submitted`` (or ``draft``); return its id."""
    channels_of(item)  # an unknown channel is refused now, naming the field, not at approval
    document = item.model_dump(mode="json")
    with ledger.session() as session:
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
        )
        return row.id


def submit_draft(ledger: Ledger, item_id: int) -> None:
    """Move a draft on to review."""
    with ledger.session() as session:
        row = _load(session, item_id)
        if row.state is not ItemState.draft:
            raise RefusedError(f"item {item_id} is {row.state.value}; only a draft can be submitted")
        row.state = ItemState.submitted
        record(session, "item.submitted", actor=row.author, item_id=item_id, kind=row.kind)


def _person(name: str, missing: str) -> str:
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
    """The item, locked, if ``reviewer`` may ``action`` it now; a RefusedError saying why not otherwise."""
    row = _load(session, item_id)
    if row.state is ItemState.draft:
        raise RefusedError(
            f"item {item_id} is a draft; submit it for review first (dispatch submit {item_id})"
        )
    if row.state is not ItemState.submitted:
        review = session.query(ApprovalRow).filter_by(revision_id=row.current.id).one_or_none()
        by = f" ({review.decision} by {review.approver} at {review.at:%Y-%m-%d %H:%M:%S}Z)" if review else ""
        raise RefusedError(
            f"item {item_id} is already {row.state.value}{by}; only a submitted item can be {action}, "
            "and nothing was sent again"
        )
    if people.same_person(reviewer, row.author):  # look-alike spellings of a name are the same person
        verb = "approve" if action == "approved" else "review"
        raise RefusedError(f"item {item_id} was written by {row.author}; another person must {verb} it")
    return row


def approve(
    ledger: Ledger, settings: Settings, item_id: int, approver: str, broker: outbox.Broker | None = None
) -> Plan:
    """Approve a submitted item, pin its payloads, write its deliveries and enqueue them on ``broker``
    (without one, they wait in the ledger for the sweeper)."""
    approver = _person(approver, "an approval needs the approver's name (--as NAME)")
    with ledger.session() as session:
        row = _reviewable(session, item_id, approver, "approved")
        publication = stored_publication(session, settings, row)
        revision_id = row.current.id
    if publication.item.is_expired(ledger.now()):
        raise RefusedError(f"item {item_id} expired at {publication.item.expires.isoformat()}")
    # Rendering (every SMS batch, every sign) happens outside the write transaction, so a large
    # fan-out does not hold the ledger's lock; the item is checked again under the lock below.
    result = plan(settings, publication)
    if result.problems:
        raise ContentError(
            f"item {item_id} cannot be approved as written:\n"
            + "\n".join(f"  {problem}" for problem in result.problems)
        )
    if not result.payloads:
        raise RefusedError(f"item {item_id} reaches no target on any channel")
    key = signing.payload_key(settings)
    renderer = TemplateRenderer(settings.templates_dir)
    with ledger.session() as session:
        row = _reviewable(session, item_id, approver, "approved")
        revision = row.current
        if revision.id != revision_id:
            raise RefusedError(f"item {item_id} changed while it was being approved; approve it again")
        row.state = ItemState.approved
        session.add(ApprovalRow(revision_id=revision.id, approver=approver, decision="approved"))
        record(session, "item.approved", actor=approver, item_id=item_id, revision=revision.number)
        fixed = [p for p in result.payloads if not result.adapters[p.channel].reaches_subscribers]
        deliveries = [
            DeliveryRow(
                revision_id=revision.id,
                item_id=item_id,
                channel=payload.channel,
                target=payload.target,
                queue=queue_for(row.kind, payload.channel),
                idempotency_key=idempotency_key(revision.id, payload.channel, payload.target),
                payload=payload.body,
                payload_digest=signing.pin(
                    key, payload.body, idempotency_key(revision.id, payload.channel, payload.target)
                ),
                state=DeliveryState.pending,
            )
            for payload in fixed
        ]
        session.add_all(deliveries)
        session.flush()
        for delivery in deliveries:
            record(
                session,
                "delivery.pending",
                actor=approver,
                item_id=item_id,
                delivery_id=delivery.id,
                channel=delivery.channel,
                target=delivery.target,
                digest=delivery.payload_digest,
            )
        work = [(d.id, d.queue) for d in deliveries]
        bulk: list[tuple[int, str]] = []
        for adapter in result.adapters.values():
            if result.audiences.get(adapter.name):
                writer = AudienceWriter(session, key, adapter, revision.id, item_id, row.kind, approver)
                for phones in subscribers.audience_batches(
                    session, publication.item, settings.sms, adapter.recipients_per_target
                ):
                    writer.add(adapter.prepare(publication, writer.next_target(phones), renderer), phones)
                bulk += writer.flush()
        for note in result.notes:
            record(session, "item.note", actor=approver, item_id=item_id, note=note)
    # The first batches to subscribers go with the rest; the others wait in the ledger for the
    # sweeper, which publishes them outbox.SWEEP_LIMIT a sweep at most: publishing ten thousand tasks here
    # would keep the approver waiting (seconds on Redis, a minute on the embedded broker) for nothing.
    result.enqueued = outbox.enqueue(ledger, broker, work + bulk[:PUBLISHED_AT_APPROVAL])
    return result


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
    ) -> None:
        self.session, self.key, self.adapter = session, key, adapter
        self.revision_id, self.item_id, self.approver = revision_id, item_id, approver
        self.queue = queue_for(kind, adapter.name, bulk=True)
        self.number = 0
        self.waiting: list[tuple[Payload, list[str]]] = []
        self.phones = 0
        self.written: list[tuple[int, str]] = []

    def next_target(self, phones: list[str]) -> Target:
        self.number += 1
        return Target(batch_name(self.number), {"recipients": len(phones), "audience": digest_of(phones)})

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
        self.session.execute(
            insert(EventRow.__table__),  # type: ignore[arg-type]
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
    reviewer = _person(reviewer, "a rejection needs the reviewer's name (--as NAME)")
    with ledger.session() as session:
        row = _reviewable(session, item_id, reviewer, "rejected")
        row.state = ItemState.rejected
        session.add(
            ApprovalRow(revision_id=row.current.id, approver=reviewer, decision="rejected", reason=reason)
        )
        record(session, "item.rejected", actor=reviewer, item_id=item_id, reason=reason)
