"""The SMS subscriber store: who receives texts, about what, and what became of each text.

- **Import** (``dispatch subscribers import FILE``): a CSV with a header and the columns ``phone``
  (required), ``areas`` and ``topics`` (lists separated by ``;``) and ``consent`` (yes/no, default
  yes). Numbers are normalised to E.164 (``DISPATCH_SMS__DEFAULT_REGION`` for numbers without a
  country code); a number given twice is merged. Every bad row is reported by its line number and the
  others are imported. An import replaces a known number's areas, topics and consent but never lifts
  an opt-out: only the subscriber can undo that.
- **Audience**: a warning reaches every subscriber whose area lies inside one of the item's areas
  (opted out or not, unless ``DISPATCH_SMS__WARNINGS_IGNORE_OPT_OUT=false``); any other kind only
  subscribers in the area who consented, did not opt out and follow one of the item's topics.
- **Opt-out** arrives as an inbound SMS (Kannel's MO callback) saying ``TD``, ``T``, ``STOP`` or ``退订``.
- **Delivery reports** (Kannel's DLR callback, ``%d``): 8 accepted by the SMSC, 4 queued, 1 delivered,
  2 not delivered, 16 rejected by the SMSC. The final ones (1, 2, 16) are never overwritten, so a
  duplicated or late report changes nothing.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import (
    Select,
    String,
    Table,
    bindparam,
    cast,
    false,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dispatcher.corrections import MAY_HAVE_REACHED
from dispatcher.errors import InvalidItemError
from dispatcher.items import PROVINCES, Item, Kind, area_prefix
from dispatcher.ledger import (
    DeliveryRow,
    Ledger,
    RecipientRow,
    SmsBatchRow,
    SubscriberRow,
    record,
    record_delivery,
    utcnow,
)
from dispatcher.outcomes import confirmed_by_report
from dispatcher.spool import Spool
from settings import SmsSettings

log = logging.getLogger(__name__)
OPT_OUT_WORDS = frozenset({"TD", "T", "STOP", "退订"})
REPORTS = {1: "delivered", 2: "failed", 4: "queued", 8: "accepted", 16: "rejected"}
FINAL_REPORTS = frozenset({1, 2, 16})
#: delivery reports applied together (the API gathers those that arrive while the last lot is written)
REPORTS_PER_TRANSACTION = 2000
_YES = {"yes", "y", "true", "1", "是"}
_NO = {"no", "n", "false", "0", "否"}


def normalise(raw: str, region: str) -> str:
    """A phone number in E.164, or ValueError saying what is wrong with it."""
    raw = raw.strip()
    if region == "CN" and len(raw) == 11 and raw[0] == "1" and raw.isdigit():
        # The common case, a mainland mobile number written as its 11 digits: parsing it is half the
        # cost of an import of a million rows, and it parses to exactly this (no prefix to strip).
        if not phonenumbers.is_valid_number(
            phonenumbers.PhoneNumber(country_code=86, national_number=int(raw))
        ):
            raise ValueError(f"{raw!r} is not a valid phone number")
        return f"+86{raw}"
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{raw!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[;|、]", value or "") if part.strip()]


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    merged: int = 0
    #: the first bad rows, by line; ``refused_rows`` counts them all
    refused: list[tuple[int, str]] = field(default_factory=list)
    refused_rows: int = 0

    def refuse(self, line: int, problem: str) -> None:
        self.refused_rows += 1
        if len(self.refused) < MAX_LISTED_REFUSALS:
            self.refused.append((line, problem))


# A file of a million rows is read a slice at a time, each slice written in one transaction: memory
# stays flat, and the ledger's write lock is never held for long (workers keep sending meanwhile).
IMPORT_CHUNK = 5000
MAX_LISTED_REFUSALS = 1000


def _parse_row(row: dict[str, str], region: str) -> tuple[str, list[str], list[str], bool]:
    phone = normalise(row.get("phone") or "", region)
    areas = _split(row.get("areas"))
    for code in areas:
        if not re.fullmatch(r"\d{6}", code) or code[:2] not in PROVINCES:
            raise ValueError(f"areas: {code!r} is not a 6-digit administrative division code")
    topics = _split(row.get("topics"))
    consent_text = (row.get("consent") or "yes").strip().lower()
    if consent_text not in _YES | _NO:
        raise ValueError(f"consent: {consent_text!r} is neither yes nor no")
    return phone, areas, topics, consent_text in _YES


def _rows(reader: csv.DictReader[str], report: ImportReport) -> Iterator[dict[str, str]]:
    """The reader's rows; a row the csv module cannot read (a field over its size limit, a broken
    quote) is reported by its line and skipped, and the rest of the file is read."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.refuse(reader.line_num + 1, f"cannot be read as CSV: {exc}")
            continue
        yield row


def import_csv(
    ledger: Ledger,
    path: Path,
    settings: SmsSettings,
    progress: Callable[[int], None] | None = None,
    by: str = "import",
) -> ImportReport:
    """Import subscribers from a CSV file, streamed: bad rows are reported, the rest written a slice at
    a time in bulk. ``progress`` is told how many bytes of the file each slice took; ``by`` is who
    imports (on the record)."""
    report = ImportReport()
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
        handle.read(1)
        handle.seek(0)
    except FileNotFoundError:
        raise InvalidItemError(str(path), [("(file)", "no such file")]) from None
    except UnicodeDecodeError:
        raise InvalidItemError(str(path), [("(file)", "is not UTF-8 text")]) from None
    # Numbers already written by this import, as integers (a million take about 60 MB): a number
    # given again is merged with what this import wrote, never with what was known before.
    seen: set[int] = set()
    consumed = [0]  # bytes of the file read so far, for ``progress``

    def lines() -> Iterator[str]:
        for line in handle:
            consumed[0] += len(line.encode("utf-8"))
            yield line

    with handle:
        reader = csv.DictReader(lines())
        try:
            fieldnames = reader.fieldnames
        except UnicodeDecodeError:
            raise InvalidItemError(str(path), [("(file)", "is not UTF-8 text")]) from None
        if not fieldnames or "phone" not in [name.strip() for name in fieldnames]:
            raise InvalidItemError(str(path), [("line 1", "the header must name a 'phone' column")])
        chunk: dict[str, tuple[list[str], list[str], bool]] = {}
        position = 0
        try:
            for row in _rows(reader, report):
                cleaned = {(k or "").strip(): (v or "") for k, v in row.items()}
                try:
                    phone, areas, topics, consent = _parse_row(cleaned, settings.default_region)
                except ValueError as exc:
                    report.refuse(reader.line_num, str(exc))
                    continue
                if phone in chunk:
                    report.merged += 1
                    old_areas, old_topics, _ = chunk[phone]
                    areas = list(dict.fromkeys(old_areas + areas))
                    topics = list(dict.fromkeys(old_topics + topics))
                chunk[phone] = (areas, topics, consent)
                if len(chunk) >= IMPORT_CHUNK:
                    _write(ledger, chunk, seen, path.name, report)
                    chunk = {}
                    if progress:
                        progress(consumed[0] - position)
                        position = consumed[0]
        except UnicodeDecodeError as exc:
            report.refuse(
                reader.line_num + 1, f"is not UTF-8 text ({exc.reason}); the rest of the file was not read"
            )
        _write(ledger, chunk, seen, path.name, report)
        if progress:
            progress(consumed[0] - position)
    with ledger.session() as session:
        record(
            session,
            "subscribers.imported",
            actor=by,
            file=path.name,
            created=report.created,
            updated=report.updated,
            refused=report.refused_rows,
        )
    return report


def _write(
    ledger: Ledger,
    chunk: dict[str, tuple[list[str], list[str], bool]],
    seen: set[int],
    source: str,
    report: ImportReport,
) -> None:
    """One slice in one transaction: new numbers inserted in bulk, known ones updated in bulk (a number
    this import wrote before is merged with it; one known before the import is replaced)."""
    if not chunk:
        return
    with ledger.session() as session:
        known = {
            row.phone: row
            for row in session.execute(
                select(
                    SubscriberRow.phone, SubscriberRow.id, SubscriberRow.areas, SubscriberRow.topics
                ).where(SubscriberRow.phone.in_(list(chunk)))
            )
        }
        # Written earlier by this import: merged with; known from before: replaced.
        earlier = {phone: (row.areas, row.topics) for phone, row in known.items() if int(phone[1:]) in seen}
        now = utcnow()
        inserts, updates = [], []
        for phone, (areas, topics, consent) in chunk.items():
            if phone in earlier:
                report.merged += 1
                old_areas, old_topics = earlier[phone]
                areas = list(dict.fromkeys(list(old_areas) + areas))
                topics = list(dict.fromkeys(list(old_topics) + topics))
            values = {
                "areas": areas,
                "topics": topics,
                "consent": consent,
                "source": source,
                "updated_at": now,
            }
            if phone in known:
                updates.append({"id": known[phone].id, **values})
                if phone not in earlier:
                    report.updated += 1
            else:
                inserts.append({"phone": phone, "created_at": now, **values})
                report.created += 1
            seen.add(int(phone[1:]))
        if inserts:  # Core's executemany: the ORM's bulk path costs as much again for nothing here
            session.execute(insert(SubscriberRow.__table__), inserts)  # type: ignore[arg-type]
        if updates:
            session.execute(update(SubscriberRow), updates)


def _audience_query(item: Item, settings: SmsSettings, *columns: Any) -> Select[Any]:
    """Subscribers an item's SMS may reach, narrowed by the database: by area exactly (a code is in an
    area when it starts with the area's prefix, and in the stored JSON every code follows a quote),
    and by opt-out and consent; routine items also by a rough match of their topics, checked exactly
    by the caller."""
    table = SubscriberRow.__table__
    areas = cast(table.c.areas, String)
    query = select(*columns).where(
        or_(*(areas.contains(f'"{area_prefix(area)}', autoescape=True) for area in item.areas))
        if item.areas
        else false()
    )
    if item.kind is Kind.warning:
        return query if settings.warnings_ignore_opt_out else query.where(table.c.opted_out_at.is_(None))
    topics = cast(table.c.topics, String)
    return query.where(
        table.c.opted_out_at.is_(None),
        table.c.consent.is_(True),
        or_(*(topics.contains(json.dumps(topic), autoescape=True) for topic in item.topics))
        if item.topics
        else false(),
    )


# Subscribers are read this many at a time: memory stays flat whatever the size of the store.
AUDIENCE_CHUNK = 5000


def audience(session: Session, item: Item, settings: SmsSettings) -> Iterator[str]:
    """The phone numbers an item's SMS goes to, in a stable order (by number), streamed: a warning
    reaches everyone in its areas; any other kind those who consented and follow one of its topics."""
    table = SubscriberRow.__table__
    query = _audience_query(item, settings, table.c.phone, cast(table.c.topics, String)).order_by(
        table.c.phone
    )
    # The statement's own option, not the connection's: a connection told to stream would stream every
    # statement after it too, and PostgreSQL cannot declare a cursor for the inserts that follow.
    rows = session.connection().execute(query.execution_options(yield_per=AUDIENCE_CHUNK))
    if item.kind is Kind.warning:
        for phone, _ in rows:
            yield phone
        return
    wanted = set(item.topics)
    for phone, topics in rows:
        if not wanted.isdisjoint(json.loads(topics)):
            yield phone


def audience_size(session: Session, item: Item, settings: SmsSettings) -> int:
    if item.kind is Kind.warning:  # the database's narrowing is exact for a warning
        return session.scalar(_audience_query(item, settings, func.count())) or 0
    return sum(1 for _ in audience(session, item, settings))


#: Per-phone states that say the text did not reach the phone
NOT_RECEIVED = ("failed", "rejected")


def _earlier_phones(session: Session, item_id: int, channel: str, received: bool) -> Iterator[str]:
    """Phones an earlier text of the item may have reached, by number, each once: with ``received``,
    those no report says it failed for; otherwise every phone of a batch that went out."""
    recipients, deliveries = RecipientRow.__table__, DeliveryRow.__table__
    query = (
        select(recipients.c.phone)
        .distinct()
        .join(deliveries, deliveries.c.id == recipients.c.delivery_id)
        .where(
            deliveries.c.item_id == item_id,
            deliveries.c.channel == channel,
            deliveries.c.state.in_(MAY_HAVE_REACHED),  # sent, or in doubt
            deliveries.c.action.in_(("publish", "update", "follow_up")),
        )
        .order_by(recipients.c.phone)
    )
    if received:
        query = query.where(recipients.c.state.not_in(NOT_RECEIVED))
    rows = session.connection().execute(query.execution_options(yield_per=AUDIENCE_CHUNK))
    for (phone,) in rows:
        yield phone


def received_earlier(session: Session, item_id: int, channel: str) -> Iterator[str]:
    """The phones that received an earlier revision of the item (or may have: a report may be on its
    way), by number: whom a withdrawal notice goes to."""
    return _earlier_phones(session, item_id, channel, received=True)


def correction_audience(
    session: Session, item: Item, settings: SmsSettings, item_id: int, channel: str
) -> Iterator[str]:
    """Whom a correction goes to, by number, streamed: exactly the phones that received an earlier
    revision, and the phones of the corrected item's audience that no earlier text went to (newly in
    its areas, or whose batch never left); never everyone in the area again. Three ordered streams are
    merged, so nothing is held whole."""
    received = received_earlier(session, item_id, channel)
    tried = _earlier_phones(session, item_id, channel, received=False)
    fresh = minus(audience(session, item, settings), tried)
    yield from _union(received, fresh)


def minus(ordered: Iterator[str], removed: Iterator[str]) -> Iterator[str]:
    """The numbers of ``ordered`` not in ``removed``; both ascending."""
    gone = next(removed, None)
    for phone in ordered:
        while gone is not None and gone < phone:
            gone = next(removed, None)
        if phone != gone:
            yield phone


def intersect(ordered: Iterator[str], kept: Iterator[str]) -> Iterator[str]:
    """The numbers of ``ordered`` also in ``kept``; both ascending."""
    other = next(kept, None)
    for phone in ordered:
        while other is not None and other < phone:
            other = next(kept, None)
        if phone == other:
            yield phone


def _union(first: Iterator[str], second: Iterator[str]) -> Iterator[str]:
    """The numbers of both, ascending and each once; both ascending."""
    a, b = next(first, None), next(second, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a < b):
            yield a  # type: ignore[misc]
            a = next(first, None)
        elif a is None or b < a:
            yield b
            b = next(second, None)
        else:
            yield a
            a, b = next(first, None), next(second, None)


def batches_of(phones: Iterator[str], size: int) -> Iterator[list[str]]:
    """Numbers cut into batches of ``size``, in order; only one batch is held at a time."""
    batch: list[str] = []
    for phone in phones:
        batch.append(phone)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def phones_of(session: Session, delivery_id: int) -> list[str]:
    """The phones of one delivery, in the order approval wrote them."""
    return list(
        session.scalars(
            select(RecipientRow.phone)
            .where(RecipientRow.delivery_id == delivery_id)
            .order_by(RecipientRow.id)
        )
    )


def truncated_batches(session: Session, older_than: datetime) -> list[tuple[DeliveryRow, SmsBatchRow]]:
    """Batches split by the dispatcher, sent before ``older_than``, whose phones all reported but with
    fewer final reports than parts: the gateway or the SMS centre lost or cut parts."""
    reported_all = (
        select(RecipientRow.delivery_id)
        .where(RecipientRow.delivery_id == SmsBatchRow.delivery_id, RecipientRow.report_type.is_(None))
        .exists()
    )
    rows = session.execute(
        select(DeliveryRow, SmsBatchRow)
        .join(SmsBatchRow, SmsBatchRow.delivery_id == DeliveryRow.id)
        .where(
            SmsBatchRow.parts > 1,
            SmsBatchRow.alerted.is_(False),
            SmsBatchRow.final_reports < SmsBatchRow.parts * SmsBatchRow.recipients,
            DeliveryRow.sent_at < older_than,
            ~reported_all,
        )
    ).all()
    return [(delivery, batch) for delivery, batch in rows]


Report = tuple[str, str, int, "int | None"]  # (delivery key, phone, report type, part)


def apply_report(
    session: Session, key: str, phone: str, report_type: int, part: int | None = None
) -> str | None:
    """Record a delivery report; returns the recipient's state, or None for an unknown delivery or phone."""
    return apply_reports(session, [(key, phone, report_type, part)])[0]


def apply_reports(session: Session, reports: list[Report]) -> list[str | None]:
    """Record many delivery reports in bulk, in their order: a handful of queries whatever their
    number. Returns each recipient's state after its report, or None for an unknown delivery or
    phone. A final report (delivered, failed, rejected) is never overwritten."""
    if not reports:
        return []
    deliveries = {
        row.idempotency_key: row
        for row in session.scalars(
            select(DeliveryRow).where(DeliveryRow.idempotency_key.in_({r[0] for r in reports}))
        )
    }
    pairs = {(deliveries[key].id, phone) for key, phone, _, _ in reports if key in deliveries}
    table: Table = RecipientRow.__table__  # type: ignore[assignment]
    recipients: dict[tuple[int, str], dict[str, Any]] = {}
    for chunk in _slices(sorted(pairs), 2000):
        # Two IN lists, not one of pairs: SQLite looks pairs up by scanning the whole index.
        found = session.execute(
            select(table.c.id, table.c.delivery_id, table.c.phone, table.c.report_type, table.c.state).where(
                table.c.delivery_id.in_({d for d, _ in chunk}), table.c.phone.in_({p for _, p in chunk})
            )
        )
        for row in found:
            if (row.delivery_id, row.phone) in pairs:
                recipients[(row.delivery_id, row.phone)] = dict(row._mapping)
    batches = {
        batch.delivery_id: batch
        for batch in session.scalars(
            select(SmsBatchRow).where(SmsBatchRow.delivery_id.in_({d for d, _ in recipients}))
        )
    }
    states: list[str | None] = []
    changed: dict[int, dict[str, Any]] = {}
    for key, phone, report_type, part in reports:
        delivery = deliveries.get(key)
        recipient = recipients.get((delivery.id, phone)) if delivery is not None else None
        if delivery is None or recipient is None:
            states.append(None)
            continue
        confirmed_by_report(session, delivery, report_type, actor="delivery-report")
        batch = batches.get(delivery.id)
        if batch is not None:
            if part is not None and part not in (batch.reported_parts or []):
                batch.reported_parts = sorted({*(batch.reported_parts or []), part})
            if report_type in FINAL_REPORTS:  # every part of a long text is reported on its own
                batch.final_reports += 1
        if recipient["report_type"] not in FINAL_REPORTS and report_type in REPORTS:
            recipient["report_type"], recipient["state"] = report_type, REPORTS[report_type]
            changed[recipient["id"]] = recipient
        states.append(recipient["state"])
    if changed:
        now = utcnow()
        session.execute(
            update(table).where(table.c.id == bindparam("rid")),
            [
                {"rid": r["id"], "report_type": r["report_type"], "state": r["state"], "updated_at": now}
                for r in changed.values()
            ],
        )
    return states


def _slices(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def opt_out(session: Session, phone: str, text: str) -> bool:
    """Apply an inbound SMS; True when it opted its sender out."""
    if text.strip().upper() not in OPT_OUT_WORDS:
        return False
    subscriber = session.scalars(select(SubscriberRow).where(SubscriberRow.phone == phone)).one_or_none()
    if subscriber is None or subscriber.opted_out_at is not None:
        return subscriber is not None
    subscriber.opted_out_at = utcnow()
    record(session, "subscriber.opted_out", actor=phone, subscriber=subscriber.id, text=text.strip())
    return True


def reported(session: Session, delivery_id: int) -> int:
    """How many recipients of a delivery have had a delivery report — any report means the gateway took
    the text — or 0 while some part of a text the dispatcher split has had none (that part may not
    have left)."""
    batch = session.get(SmsBatchRow, delivery_id)
    if batch is not None and batch.parts > 1 and len(batch.reported_parts or []) < batch.parts:
        return 0
    return len(
        session.scalars(
            select(RecipientRow.id).where(
                RecipientRow.delivery_id == delivery_id, RecipientRow.report_type.is_not(None)
            )
        ).all()
    )


def counts_by_delivery(session: Session, delivery_ids: list[int]) -> dict[int, dict[str, int]]:
    """How the recipients of each of these deliveries fared, by state, in one query (deliveries with
    no recipient records are left out)."""
    counts: dict[int, dict[str, int]] = {}
    found = session.execute(
        select(RecipientRow.delivery_id, RecipientRow.state, func.count())
        .where(RecipientRow.delivery_id.in_(delivery_ids))
        .group_by(RecipientRow.delivery_id, RecipientRow.state)
    )
    for delivery_id, state, count in found:
        counts.setdefault(delivery_id, {})[state] = count
    return counts


def recipient_counts(session: Session, delivery_id: int) -> dict[str, int]:
    return counts_by_delivery(session, [delivery_id]).get(delivery_id, {})


def alert_truncated(ledger: Ledger, settings: SmsSettings) -> int:
    """Raise one channel alert per long-text batch the gateway cut to its first part; return how many."""
    older_than = ledger.now() - timedelta(seconds=settings.report_window)
    with ledger.session() as session:
        found = truncated_batches(session, older_than)
        for delivery, batch in found:
            batch.alerted = True
            record_delivery(
                session,
                delivery,
                "channel.alert",
                actor="sweeper",
                channel=delivery.channel,
                target=delivery.target,
                error=(
                    f"sms: {batch.final_reports} final report(s) came back for {batch.recipients} phone(s) "
                    f"of a text sent in {batch.parts} parts: the gateway or the SMS centre lost or cut "
                    "parts of it"
                ),
            )
    return len(found)


def report_spool(var_dir: Path) -> Spool:
    """Where the API keeps delivery reports while the ledger cannot take them."""
    return Spool(var_dir / "dlr-spool.jsonl")


def apply_kept_reports(ledger: Ledger, spool: Spool) -> int:
    """Apply the reports kept while the ledger was unavailable, all in one transaction; while it is still
    unavailable they stay kept (and 0 is returned)."""

    def apply(entries: list[dict[str, Any]]) -> None:
        with ledger.session() as session:
            reports: list[Report] = []
            for entry in entries:
                if entry.get("kind") == "opt_out":
                    opt_out(session, str(entry["phone"]), str(entry["text"]))
                    continue
                part = entry.get("part")
                reports.append(
                    (str(entry["key"]), str(entry["phone"]), int(entry["type"]), int(part) if part else None)
                )
            for chunk in _slices(reports, REPORTS_PER_TRANSACTION):
                apply_reports(session, chunk)

    try:
        return spool.drain(apply)
    except OperationalError as exc:
        log.warning("kept delivery reports not applied yet: %s", type(exc).__name__)
        return 0


def list_subscribers(ledger: Ledger) -> list[dict[str, Any]]:
    """Every subscriber by phone number, with areas, topics, consent and when they opted out (or None)."""
    with ledger.session() as session:
        return [
            {
                "phone": s.phone,
                "areas": s.areas,
                "topics": s.topics,
                "consent": s.consent,
                "opted_out_at": s.opted_out_at.isoformat() if s.opted_out_at else None,
            }
            for s in session.scalars(select(SubscriberRow).order_by(SubscriberRow.phone))
        ]
