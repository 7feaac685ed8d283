"""The ledger: items, revisions, approvals, deliveries and an append-only event log (SQLAlchemy 2).

The ledger is the truth; the queue is only transport. Every state change of an item or a delivery
is written here together with an event, in the same transaction.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)
from sqlalchemy.types import TypeDecorator

from dispatcher.migrate import upgrade


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class ItemState(enum.StrEnum):
    draft = "draft"
    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    published = "published"
    partially_published = "partially_published"
    failed = "failed"
    expired = "expired"  # nothing was sent before the item expired
    withdrawn = "withdrawn"  # taken down everywhere it reached (``dispatch retract``)


class DeliveryState(enum.StrEnum):
    pending = "pending"  # written by approval, waiting for a worker
    sending = "sending"  # claimed by a worker under a lease
    retrying = "retrying"  # a temporary error; due again at next_attempt_at
    unknown = "unknown"  # the request left and no answer came; to be reconciled by lookup
    sent = "sent"
    failed = "failed"  # a permanent error
    dead = "dead"  # the retry budget ran out
    expired = "expired"  # the item expired before it could be sent: never sent late
    superseded = "superseded"  # a later revision was approved before this one was sent
    cancelled = "cancelled"  # the item was withdrawn before this was sent (or there was nothing to do)


TERMINAL = frozenset(
    {
        DeliveryState.sent,
        DeliveryState.failed,
        DeliveryState.dead,
        DeliveryState.expired,
        DeliveryState.superseded,
        DeliveryState.cancelled,
    }
)


class Action(enum.StrEnum):
    """What a delivery does at its target."""

    publish = "publish"  # puts the item there for the first time
    update = "update"  # a later revision replaces what the target shows, in place
    follow_up = "follow_up"  # a later revision, sent after the earlier one (a channel that cannot edit)
    withdraw = "withdraw"  # takes down what an earlier delivery put there (``replaces_id``)
    expire = "expire"  # marks what an earlier delivery put there as expired (a notice on the post)
    notice = "notice"  # tells the recipients of an earlier text that the item was withdrawn


#: Actions that put (a revision of) the item on a target
SHOWING = frozenset({Action.publish, Action.update, Action.follow_up})


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ItemRow(Base):
    __tablename__ = "items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(200))
    author: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(200))
    state: Mapped[ItemState] = mapped_column(Enum(ItemState, native_enum=False, length=24))
    #: the id of the latest approved revision: what every channel should show (a later one may await
    #: review). No foreign key: items and revisions would refer to each other.
    live_revision_id: Mapped[int | None] = mapped_column(Integer)
    #: when the live revision expires (the sweeper ends what it shows then); and when that was done
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    revisions: Mapped[list[RevisionRow]] = relationship(back_populates="item", order_by="RevisionRow.number")

    @property
    def current(self) -> RevisionRow:
        return self.revisions[-1]


class RevisionRow(Base):
    __tablename__ = "revisions"
    __table_args__ = (UniqueConstraint("item_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    number: Mapped[int] = mapped_column(Integer)
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id"))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[ItemRow] = relationship(back_populates="revisions")
    deliveries: Mapped[list[DeliveryRow]] = relationship(back_populates="revision", order_by="DeliveryRow.id")


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), unique=True)
    approver: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(16))  # approved | rejected
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class EndorsementRow(Base):
    """A first approval of a revision that needs more than one (a severe warning): append-only. The
    approval that completes it is the revision's :class:`ApprovalRow`; every approver is a different
    person, none its author."""

    __tablename__ = "endorsements"
    __table_args__ = (UniqueConstraint("revision_id", "approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"))
    approver: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryRow(Base):
    """One (revision, channel, target) unit of work with the exact payload that was approved."""

    __tablename__ = "deliveries"
    # Whether an item still has deliveries on their way is one lookup here, whatever its size; the
    # index also serves every query by item alone.
    __table_args__ = (
        Index("ix_deliveries_item_id_state", "item_id", "state"),
        # the status page's rates and times of the last hour and day, asked every few seconds
        Index("ix_deliveries_sent_at", "sent_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(100))
    queue: Mapped[str] = mapped_column(String(20))
    action: Mapped[Action] = mapped_column(
        Enum(Action, native_enum=False, length=12), default=Action.publish, server_default="publish"
    )
    #: the earlier delivery on the same target this one updates, follows up, withdraws or notices
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[DeliveryState] = mapped_column(
        Enum(DeliveryState, native_enum=False, length=16), index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column()
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    enqueued_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()

    revision: Mapped[RevisionRow] = relationship(back_populates="deliveries")

    @property
    def showing(self) -> bool:
        """Whether this delivery puts (a revision of) the item on its target."""
        return self.action in SHOWING


class CapAlertRow(Base):
    """A CAP alert the dispatcher took in, and the item (and revision) it became: later alerts that
    reference it find their item here."""

    __tablename__ = "cap_alerts"
    __table_args__ = (UniqueConstraint("sender", "identifier"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    #: the revision an Alert or Update became; None for a Cancel
    revision: Mapped[int | None] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(200))
    identifier: Mapped[str] = mapped_column(String(200))
    sent: Mapped[datetime] = mapped_column()
    msg_type: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: what the item does not carry, kept: the info blocks in other languages, geocodes of other
    #: systems, the alert's note
    kept: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class RotaRow(Base):
    """A rota of safety tips: its live (approved) version runs on its cadences while it is ``active``."""

    __tablename__ = "rotas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: submitted (never approved yet) | active | paused | retired | rejected
    state: Mapped[str] = mapped_column(String(12))
    live_version_id: Mapped[int | None] = mapped_column(Integer)
    #: slots after this moment are the scheduler's to decide (it moves on as it decides them)
    cursor: Mapped[datetime | None] = mapped_column()
    #: slots that went out so far: the next one's number (which tip it is comes from it)
    slots_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RotaVersionRow(Base):
    """One submitted file of a rota, with its digest and the review it got."""

    __tablename__ = "rota_versions"
    __table_args__ = (UniqueConstraint("rota_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rota_id: Mapped[int] = mapped_column(ForeignKey("rotas.id"))
    number: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(100))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: approved | rejected, once reviewed
    decision: Mapped[str | None] = mapped_column(String(12))
    reviewer: Mapped[str | None] = mapped_column(String(100))
    reviewed_at: Mapped[datetime | None] = mapped_column()


class RotaSlotRow(Base):
    """One slot of a rota, decided once: the item it became (sent on time or late, within the grace
    period) or why it was skipped. The unique (rota, slot) is what makes it once."""

    __tablename__ = "rota_slots"
    __table_args__ = (UniqueConstraint("rota_id", "slot_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rota_id: Mapped[int] = mapped_column(ForeignKey("rotas.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("rota_versions.id"))
    slot_at: Mapped[datetime] = mapped_column()
    #: sent | late | skipped
    state: Mapped[str] = mapped_column(String(8))
    number: Mapped[int | None] = mapped_column(Integer)
    tip: Mapped[int | None] = mapped_column(Integer)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmsQuotaRow(Base):
    """Routine texts planned for one phone on one local day, against ``DISPATCH_SMS__DAILY_CAP``."""

    __tablename__ = "sms_quota"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, local
    count: Mapped[int] = mapped_column(Integer, default=0)


class SmsCapRow(Base):
    """A phone a routine item's text did not go to that day because of the daily cap: ``deferred`` to
    the next day, or ``skipped``."""

    __tablename__ = "sms_caps"
    __table_args__ = (UniqueConstraint("item_id", "phone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    phone: Mapped[str] = mapped_column(String(20))
    day: Mapped[str] = mapped_column(String(10))
    outcome: Mapped[str] = mapped_column(String(8))


class SubscriberRow(Base):
    """A phone number that asked for messages: where it lives, what about, and whether it still wants them."""

    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)  # E.164
    areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent: Mapped[bool] = mapped_column(default=True)
    opted_out_at: Mapped[datetime | None] = mapped_column()
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RecipientRow(Base):
    """One phone of an SMS delivery, with the outcome its delivery reports tell."""

    __tablename__ = "sms_recipients"
    __table_args__ = (UniqueConstraint("delivery_id", "phone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Found by the unique index on (delivery_id, phone): no index of its own.
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"))
    phone: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    report_type: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SmsBatchRow(Base):
    """The parts an SMS batch was sent in and the final delivery reports received for them.

    A text the dispatcher split goes as one message per part, each with its own delivery reports
    (``part`` in the report URL): it counts as taken only once every part has reported, and fewer
    final reports than ``parts × recipients`` long after sending means parts were lost or cut (checked
    by the sweeper; one alert per batch). Left to the gateway, a split text is reported once per phone
    (Kannel 1.4.5), so ``parts`` is then 1.
    """

    __tablename__ = "sms_batches"

    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), primary_key=True)
    parts: Mapped[int] = mapped_column(Integer)
    recipients: Mapped[int] = mapped_column(Integer)
    final_reports: Mapped[int] = mapped_column(Integer, default=0)
    #: the parts (1…parts) some report came back for: a text split by the dispatcher is proven taken
    #: only once every part is
    reported_parts: Mapped[list[int]] = mapped_column(JSON, default=list)
    alerted: Mapped[bool] = mapped_column(default=False)


class RateBucketRow(Base):
    """A token bucket shared by every worker: ``key`` is a channel or ``channel:target``."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(140), primary_key=True)
    tokens: Mapped[float] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class CircuitRow(Base):
    """The circuit breaker of one target: closed (sending), open (resting) or half_open (one trial)."""

    __tablename__ = "circuits"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(10), default="closed")
    failures: Mapped[int] = mapped_column(Integer, default=0)
    open_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserRow(Base):
    """A person who may act: their name on the record, their roles, and the hash of their token (the
    token itself is shown once, when made, and never stored)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    #: the name as the four-eyes rule compares it (people.person_key): no two users look alike
    key: Mapped[str] = mapped_column(String(200), unique=True)
    roles: Mapped[str] = mapped_column(String(100))  # space-separated, sorted
    #: the public half of the token, to find its row; and SHA-256 of the secret half
    token_id: Mapped[str] = mapped_column(String(24), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column()


class ChannelHealthRow(Base):
    """The health of one channel (``target`` ``*``) or one of its targets, as the last check left it:
    ``healthy``, ``degraded`` or ``down`` since ``since`` (``dispatcher/monitor.py`` says the rule)."""

    __tablename__ = "channel_health"

    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    state: Mapped[str] = mapped_column(String(10))
    since: Mapped[datetime] = mapped_column()
    checked_at: Mapped[datetime] = mapped_column()
    #: probes in a row that failed, and that were good (the hysteresis of down_after and up_after)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column()
    latency_ms: Mapped[float | None] = mapped_column()


class HealthChangeRow(Base):
    """Append-only: every change of a channel's or a target's health, from which downtimes are told."""

    __tablename__ = "health_changes"
    __table_args__ = (Index("ix_health_changes_channel_target_at", "channel", "target", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[str] = mapped_column(String(100))
    from_state: Mapped[str] = mapped_column(String(10))
    to_state: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime] = mapped_column(index=True)
    reason: Mapped[str | None] = mapped_column(Text)


class DigestRow(Base):
    """The morning supervision digest of one local day (the day it reports on): written once."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[str] = mapped_column(String(10), unique=True)  # YYYY-MM-DD, local
    composed_at: Mapped[datetime] = mapped_column()
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    text: Mapped[str] = mapped_column(Text)


class OpsAlertRow(Base):
    """The outbox of operator alerts: one row per (source, route), so an alert is never written twice.
    ``source`` is ``change:<id>`` or ``digest:<day>``; ``route`` ``webhook`` or the phone channel's name."""

    __tablename__ = "ops_alerts"
    __table_args__ = (UniqueConstraint("source", "route"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    change_id: Mapped[int | None] = mapped_column(ForeignKey("health_changes.id"))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id"))
    route: Mapped[str] = mapped_column(String(20))
    #: pending (due at next_try_at) | sent | failed
    state: Mapped[str] = mapped_column(String(8), index=True)
    #: what is sent: ``json`` (the webhook's body) and ``text`` (the SMS)
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column()
    sent_at: Mapped[datetime | None] = mapped_column()


class EventRow(Base):
    """Append-only: rows are inserted, never updated or deleted (enforced in :func:`_append_only`, and
    by the database's own triggers, made by the first migration)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(ForeignKey("deliveries.id"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: the hash of the event before it, and its own over that and its fields: a chain ``dispatch ledger
    #: verify`` walks, so an event changed, removed or slipped in is found (:func:`event_hash`)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


#: where the chain starts
GENESIS = "0" * 64
#: on PostgreSQL, transactions that append events take turns at the chain's head (an advisory lock for
#: the transaction); on SQLite each write transaction holds the database's one write lock already
CHAIN_LOCK = 0x7E11_C4A1


def event_hash(
    prev: str,
    at: datetime,
    name: str,
    actor: str,
    item_id: int | None,
    delivery_id: int | None,
    detail: dict[str, Any] | None,
) -> str:
    """An event's hash: SHA-256 over the previous hash and the event's fields in a canonical JSON form
    (UTC time to the microsecond, sorted keys). Migrations rely on this form: it does not change."""
    canonical = json.dumps(
        [
            prev,
            at.astimezone(UTC).isoformat(timespec="microseconds"),
            name,
            actor,
            item_id,
            delivery_id,
            detail or {},
        ],
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def chain_head(session: Session) -> str:
    """The hash of the newest event (taking the chain's turn on PostgreSQL), or the genesis."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({CHAIN_LOCK})")
    events: Table = EventRow.__table__  # type: ignore[assignment]
    head = connection.execute(select(events.c.hash).order_by(events.c.id.desc()).limit(1)).scalar()
    return str(head) if head else GENESIS


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append events in bulk (Core), each chained to the one before."""
    if not rows:
        return
    prev = chain_head(session)
    for row in rows:
        row["prev_hash"] = prev
        row["hash"] = prev = event_hash(
            prev,
            row["at"],
            row["name"],
            row["actor"],
            row.get("item_id"),
            row.get("delivery_id"),
            row.get("detail"),
        )
    session.execute(insert(EventRow.__table__), rows)  # type: ignore[arg-type]


def _append_only(session: Session, _context: Any, _instances: Any) -> None:
    # Listens to each ledger's own sessions (see Ledger.__init__), not to every Session in the process.
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, EventRow) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("the event log is append-only")
    # New events, in the order they were added (the order they are inserted in), join the chain.
    new = sorted(
        (obj for obj in session.new if isinstance(obj, EventRow)),
        key=lambda obj: inspect(obj).insert_order or 0,
    )
    if not new:
        return
    prev = chain_head(session)
    for obj in new:
        obj.at = obj.at or utcnow()
        obj.detail = obj.detail if obj.detail is not None else {}
        obj.prev_hash = prev
        obj.hash = prev = event_hash(
            prev, obj.at, obj.name, obj.actor, obj.item_id, obj.delivery_id, obj.detail
        )


def verify_chain(session: Session, chunk: int = 5000) -> tuple[int, int | None, str]:
    """Walk the event log in order: (events checked, the id of the first event whose link is broken or
    None, the head's hash)."""
    events: Table = EventRow.__table__  # type: ignore[assignment]
    prev, checked, after = GENESIS, 0, 0
    while True:
        rows = session.execute(
            select(events).where(events.c.id > after).order_by(events.c.id).limit(chunk)
        ).all()
        if not rows:
            return checked, None, prev
        for row in rows:
            at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
            expected = event_hash(prev, at, row.name, row.actor, row.item_id, row.delivery_id, row.detail)
            if row.prev_hash != prev or row.hash != expected:
                return checked, row.id, prev
            prev, checked, after = row.hash, checked + 1, row.id


def record(
    session: Session,
    name: str,
    *,
    actor: str,
    item_id: int | None = None,
    delivery_id: int | None = None,
    **detail: Any,
) -> EventRow:
    row = EventRow(name=name, actor=actor, item_id=item_id, delivery_id=delivery_id, detail=detail)
    session.add(row)
    return row


def record_delivery(session: Session, row: DeliveryRow, name: str, *, actor: str, **detail: Any) -> EventRow:
    """An event about one delivery (its item and id taken from the row): the one way a delivery's
    history is written."""
    return record(session, name, actor=actor, item_id=row.item_id, delivery_id=row.id, **detail)


def move(
    session: Session,
    row: DeliveryRow,
    state: DeliveryState,
    event: str,
    *,
    actor: str,
    why: str | None = None,
    **detail: Any,
) -> None:
    """A delivery's change of state and its event, in one step: how every change of state reaches the
    ledger.
    ``why`` becomes the delivery's last error (cleared when it is None and the state is ``sent``)."""
    row.state = state
    if state is not DeliveryState.sending:
        row.lease_until = None
    if why is not None or state is DeliveryState.sent:
        row.last_error = why
    record_delivery(session, row, event, actor=actor, **detail)


class Ledger:
    """An engine and a session factory for one ledger URL; opening it migrates its schema to this
    release's (:func:`dispatcher.migrate.upgrade`: one query when it is already there)."""

    def __init__(self, url: str, *, busy_timeout: float = 30.0) -> None:
        self.engine: Engine = open_engine(url, busy_timeout=busy_timeout)
        upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "before_flush", _append_only)

    #: How far the flow's clock is ahead of the wall clock: tests move time on without sleeping.
    shift: timedelta = timedelta(0)

    def now(self) -> datetime:
        """The time the flow goes by (claims, leases, backoff, windows, expiry): the wall clock, shifted."""
        return utcnow() + self.shift

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def open_engine(url: str, *, busy_timeout: float = 30.0) -> Engine:
    """The engine of a ledger, without touching its schema (``dispatch ledger`` reads and migrates it).

    On SQLite every transaction begins ``IMMEDIATE``, taking the database's one write lock up front;
    :func:`dispatcher.migrate.upgrade` relies on that lock to migrate once when processes open a ledger
    together.
    """
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        # How long a writer waits for another's lock before giving up (sqlite3 sets busy_timeout).
        kwargs["connect_args"] = {"timeout": busy_timeout}
        if parsed.database and parsed.database != ":memory:":
            private_file(Path(parsed.database))  # phone numbers live here: readable by its owner only
    engine = create_engine(url, **kwargs)
    if sqlite:
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def insert_rows(session: Session, table: Table, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows of plain values (already in the database's form) through the driver's own
    executemany. For a million phone numbers SQLAlchemy's per-row handling of parameters costs
    several seconds; the driver alone a fraction of that."""
    if not rows:
        return
    compiled = insert(table).compile(dialect=session.get_bind().dialect, column_keys=columns)
    if compiled.positional:
        order = [columns.index(name) for name in compiled.positiontup or []]
        reordered = order != list(range(len(columns)))
        params: list[Any] = [tuple(row[i] for i in order) for row in rows] if reordered else rows
    else:
        params = [dict(zip(columns, row, strict=True)) for row in rows]
    session.connection().exec_driver_sql(str(compiled), params)


def database_form(column: Any, value: Any, session: Session) -> Any:
    """``value`` as the database stores it for ``column`` (a datetime as SQLite's text, for one)."""
    dialect = session.get_bind().dialect
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor(value) if processor else value


def private_file(path: Path) -> None:
    """Create ``path`` (and its folder) readable and writable by the owner only, or tighten it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the worker's processes read while one writes; busy_timeout waits for the writer
    # instead of failing at once with "database is locked".
    dbapi_connection.isolation_level = None  # transactions are begun by _sqlite_begin_immediate
    cursor = dbapi_connection.cursor()
    # Turning a ledger that is not in WAL mode yet (one of release 0.1) into one needs it to itself, and
    # SQLite answers "locked" at once, without its busy handler, while another process holds it (the
    # first to open it, migrating): wait for it, as the busy timeout would.
    deadline = time.monotonic() + WAL_PATIENCE
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: seconds a new connection waits for another process to let it switch the ledger to WAL
WAL_PATIENCE = 30.0


def _sqlite_begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when another
    # process wrote in between (busy_timeout does not apply to that upgrade); taking the write lock
    # up front makes concurrent workers queue instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
