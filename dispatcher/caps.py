"""The daily cap of routine texts: a phone receives at most ``DISPATCH_SMS__DAILY_CAP`` routine texts a
local day; warnings are never capped.

Counted when a routine item is approved (or a rota's slot becomes one), against the local day it is
due to go out — after the channel's quiet hours, if it falls in them. Phones already at the cap that
day are left out of its batches: their text waits for the next day in batches of its own
(``deferred-NNN``, due when that day's window opens) or is skipped (``DISPATCH_SMS__OVER_CAP``); each
such phone is recorded (``sms_caps``) and the item's ``item.capped`` event counts them. The count is of
texts planned, kept in ``sms_quota``: a text that was later withdrawn still counted that day.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dispatcher import rota, subscribers
from dispatcher.ledger import SmsCapRow, SmsQuotaRow, insert_rows, record
from dispatcher.words import Publication
from settings import Settings

if TYPE_CHECKING:
    from channels.base import Channel
    from dispatcher.rendering import TemplateRenderer
    from dispatcher.words import Payload, Target


class BatchWriter(Protocol):
    """What the cap needs of approval's writer of batches (``approval.AudienceWriter``)."""

    adapter: Channel
    item_id: int
    revision_id: int
    approver: str

    def sibling(self, due_at: datetime | None, prefix: str) -> BatchWriter: ...

    def next_target(self, phones: list[str]) -> Target: ...

    def add(self, payload: Payload, phones: list[str]) -> None: ...

    def flush(self) -> list[tuple[int, str]]: ...


class Notes(Protocol):
    notes: list[str]


#: the advisory lock the counting of routine texts takes on PostgreSQL
QUOTA_LOCK = 0x5D15_CA9


def send_time(settings: Settings, channel: str, moment: datetime) -> datetime:
    """When a routine text due at ``moment`` goes out: at once, or when the channel's quiet hours end."""
    quiet = rota.parse_quiet_hours(settings.quiet_hours.get(channel, ""))
    zone = ZoneInfo(settings.time_zone)
    if quiet is not None and quiet.contains(moment, zone):
        return quiet.next_open(moment, zone)
    return moment


@dataclass
class DailyCap:
    channel: str
    limit: int
    day: str
    #: when texts over the cap go out instead (None: they are skipped)
    deferred_at: datetime | None
    deferred_day: str

    @classmethod
    def for_send(cls, settings: Settings, channel: str, due_at: datetime) -> DailyCap:
        zone = ZoneInfo(settings.time_zone)
        sent = send_time(settings, channel, due_at)
        next_day = send_time(settings, channel, rota.next_day_start(sent, zone))
        return cls(
            channel,
            settings.sms.daily_cap,
            rota.day_of(sent, zone).isoformat(),
            next_day if settings.sms.over_cap == "wait" else None,
            rota.day_of(next_day, zone).isoformat(),
        )

    def reached(self, session: Session) -> Iterator[str]:
        """The phones at the cap on the day, by number. Counting and checking are one transaction's: on
        PostgreSQL, approvals that count texts take turns (an advisory lock, released at commit); on
        SQLite every write transaction does already."""
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUOTA_LOCK})
        query = (
            select(SmsQuotaRow.phone)
            .where(SmsQuotaRow.day == self.day, SmsQuotaRow.count >= self.limit)
            .order_by(SmsQuotaRow.phone)
        )
        rows = session.connection().execute(query.execution_options(yield_per=subscribers.AUDIENCE_CHUNK))
        for (phone,) in rows:
            yield phone

    def apply(
        self,
        session: Session,
        writer: BatchWriter,
        phones: Iterator[str],
        shown: Publication,
        renderer: TemplateRenderer,
        result: Notes,
    ) -> list[tuple[int, str]]:
        """After the batches within the cap were written: the phones over it (``phones`` is the whole
        audience again, by number), deferred or skipped and recorded; then every phone's count."""
        over = subscribers.intersect(phones, self.reached(session))
        outcome = "deferred" if self.deferred_at is not None else "skipped"
        deferred = writer.sibling(self.deferred_at, "deferred") if self.deferred_at is not None else None
        count = 0
        for batch in subscribers.batches_of(over, writer.adapter.recipients_per_target):
            count += len(batch)
            insert_rows(
                session,
                SmsCapRow.__table__,  # type: ignore[arg-type]
                ["item_id", "phone", "day", "outcome"],
                [(writer.item_id, phone, self.day, outcome) for phone in batch],
            )
            if deferred is not None:
                deferred.add(writer.adapter.prepare(shown, deferred.next_target(batch), renderer), batch)
        work = deferred.flush() if deferred is not None else []
        self._count(session, writer, "batch", self.day)
        if deferred is not None:
            self._count(session, writer, "deferred", self.deferred_day)
        if count:
            record(
                session,
                "item.capped",
                actor=writer.approver,
                item_id=writer.item_id,
                channel=self.channel,
                day=self.day,
                cap=self.limit,
                phones=count,
                outcome=outcome,
                deferred_to=self.deferred_at.isoformat() if self.deferred_at else None,
            )
            result.notes.append(
                f"{self.channel}: {count} phone(s) had their {self.limit} routine texts for {self.day}: "
                + (f"theirs waits until {self.deferred_at.isoformat()}" if self.deferred_at else "skipped")
            )
        return work

    def _count(self, session: Session, writer: BatchWriter, prefix: str, day: str) -> None:
        """One more planned text on ``day`` for every phone of the item's ``prefix-NNN`` batches."""
        params: dict[str, Any] = {
            "day": day,
            "item": writer.item_id,
            "revision": writer.revision_id,
            "channel": self.channel,
            "prefix": f"{prefix}-%",
        }
        session.execute(
            text(
                "INSERT INTO sms_quota (phone, day, count) "
                "SELECT r.phone, :day, 1 FROM sms_recipients r JOIN deliveries d ON d.id = r.delivery_id "
                "WHERE d.item_id = :item AND d.revision_id = :revision AND d.channel = :channel "
                "AND d.target LIKE :prefix "
                "ON CONFLICT (phone, day) DO UPDATE SET count = sms_quota.count + 1"
            ),
            params,
        )
