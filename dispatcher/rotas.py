"""Rotas of safety tips through the ledger: submitted and approved as a whole, then run by the scheduler.

A rota file (:mod:`dispatcher.rota`) is submitted as a version of the rota of its name; another person
approves it, and its digest is kept. The approved version runs on its cadences while the rota is
``active``; a new file is a new version, and until it is approved the approved one keeps running. A rota
can be paused, resumed and retired, each on the record.

The future lives in the ledger: every sweep, :func:`run_due` decides the slots that came since the
rota's cursor. A slot is decided once — its row in ``rota_slots`` is unique per (rota, time), so two
schedulers, or one restarted in the middle of a slot, make one item of it. A slot within
``DISPATCH_ROTA_GRACE_SECONDS`` of its time becomes an item (``late`` past a minute: after an outage);
an older one is ``skipped``, on the record. The item is a safety tip approved by the rota's approval: its
``item.approved`` event names the rota, the version and the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher import approval, outbox, people, rota
from dispatcher.errors import DispatchError, NotFoundError, RefusedError
from dispatcher.ledger import (
    ItemRow,
    ItemState,
    Ledger,
    RotaRow,
    RotaSlotRow,
    RotaVersionRow,
    record,
)
from settings import Settings

#: a slot decided later than this after its time is ``late`` (the scheduler was down), not ``sent``
ON_TIME = timedelta(seconds=60)
#: slots one rota decides per run at most: a rota paused for a year does not stall a sweep
SLOTS_PER_RUN = 200


@dataclass
class Submitted:
    rota_id: int
    version: int
    digest: str


def submit(ledger: Ledger, path: Path, *, author: str | None = None) -> Submitted:
    """Store a rota file as a new version of the rota of its name, for review (``author``: the user who
    submits it, the file's author on the record)."""
    return store(ledger, rota.load_rota(path, author=author))


def store(ledger: Ledger, loaded: rota.Rota) -> Submitted:
    """Store a rota, already read and checked, as a new version of the rota of its name, for review."""
    document = loaded.model_dump(mode="json")
    with ledger.session() as session:
        row = session.scalars(select(RotaRow).where(RotaRow.name == loaded.name)).first()
        if row is not None and row.state == "retired":
            raise RefusedError(f"rota {loaded.name!r} was retired; give the file another name")
        if row is None:
            row = RotaRow(name=loaded.name, state="submitted", slots_used=0)
            session.add(row)
            session.flush()
        number = 1 + (
            session.scalar(
                select(RotaVersionRow.number)
                .where(RotaVersionRow.rota_id == row.id)
                .order_by(RotaVersionRow.number.desc())
                .limit(1)
            )
            or 0
        )
        session.add(
            RotaVersionRow(
                rota_id=row.id, number=number, document=document, digest=loaded.digest, author=loaded.author
            )
        )
        record(
            session, "rota.submitted", actor=loaded.author, rota=row.id, version=number, digest=loaded.digest
        )
        return Submitted(row.id, number, loaded.digest)


def _rota(session: Session, ref: str | int) -> RotaRow:
    """A rota by id or by name, locked."""
    query = select(RotaRow).with_for_update()
    found = session.scalars(
        query.where(RotaRow.id == int(ref)) if str(ref).isdigit() else query.where(RotaRow.name == str(ref))
    ).first()
    if found is None:
        raise NotFoundError(f"no rota {ref!r}")
    return found


def _pending(session: Session, row: RotaRow) -> RotaVersionRow:
    version = session.scalars(
        select(RotaVersionRow)
        .where(RotaVersionRow.rota_id == row.id)
        .order_by(RotaVersionRow.number.desc())
        .limit(1)
    ).first()
    if version is None or version.decision is not None:
        state = f"version {version.number} is {version.decision}" if version else "no version"
        raise RefusedError(f"rota {row.name!r} has nothing to review ({state}); submit its file again")
    return version


def approve(ledger: Ledger, ref: str | int, approver: str) -> RotaVersionRow:
    """Approve a rota's submitted version: from now on its slots go out (the approved version before it
    is replaced)."""
    approver = approval.person(approver, "an approval needs the approver's name")
    with ledger.session() as session:
        row = _rota(session, ref)
        if row.state == "retired":
            raise RefusedError(f"rota {row.name!r} was retired")
        version = _pending(session, row)
        if people.same_person(approver, version.author):
            raise RefusedError(
                f"version {version.number} of rota {row.name!r} was written by {version.author}; "
                "another person must approve it"
            )
        now = ledger.now()
        version.decision, version.reviewer, version.reviewed_at = "approved", approver, now
        row.live_version_id = version.id
        if row.state in ("submitted", "rejected"):
            row.state = "active"
        if row.cursor is None:
            row.cursor = now  # slots before the approval are nobody's
        record(
            session,
            "rota.approved",
            actor=approver,
            rota=row.id,
            version=version.number,
            digest=version.digest,
        )
        session.flush()
        return version


def reject(ledger: Ledger, ref: str | int, reviewer: str, reason: str) -> None:
    reviewer = approval.person(reviewer, "a rejection needs the reviewer's name")
    with ledger.session() as session:
        row = _rota(session, ref)
        version = _pending(session, row)
        if people.same_person(reviewer, version.author):
            raise RefusedError(
                f"version {version.number} of rota {row.name!r} was written by {version.author}"
            )
        version.decision, version.reviewer, version.reviewed_at = "rejected", reviewer, ledger.now()
        if row.live_version_id is None:
            row.state = "rejected"
        record(session, "rota.rejected", actor=reviewer, rota=row.id, version=version.number, reason=reason)


def change(
    ledger: Ledger, settings: Settings, ref: str | int, what: str, actor: str, reason: str = ""
) -> str:
    """Pause, resume or retire a rota, on the record; return its new state. Slots that come while it is
    paused are skipped (recorded when it resumes), not sent late."""
    actor = approval.person(actor, "a change of a rota needs the name of who makes it")
    moves = {"pause": ("active", "paused"), "resume": ("paused", "active"), "retire": (None, "retired")}
    before, after = moves[what]
    with ledger.session() as session:
        row = _rota(session, ref)
        if row.state == "retired" or (before is not None and row.state != before):
            raise RefusedError(f"rota {row.name!r} is {row.state}; it cannot be {what}d")
        now = ledger.now()
        if what == "resume" and row.live_version_id is not None and row.cursor is not None:
            version = session.get_one(RotaVersionRow, row.live_version_id)
            loaded = rota.parse_rota(version.document, row.name)
            for slot in rota.slots(loaded, row.cursor, now, ZoneInfo(settings.time_zone))[:SLOTS_PER_RUN]:
                if slot > row.cursor:
                    _skip(session, row, version, slot, "the rota was paused", actor)
            row.cursor = now
        row.state = after
        record(session, f"rota.{after}", actor=actor, rota=row.id, reason=reason or None)
        return after


def _skip(
    session: Session, row: RotaRow, version: RotaVersionRow, slot: datetime, reason: str, actor: str
) -> None:
    exists = session.scalar(
        select(RotaSlotRow.id).where(RotaSlotRow.rota_id == row.id, RotaSlotRow.slot_at == slot)
    )
    if exists is not None:
        return
    session.add(
        RotaSlotRow(rota_id=row.id, version_id=version.id, slot_at=slot, state="skipped", reason=reason)
    )
    record(session, "rota.slot_skipped", actor=actor, rota=row.id, slot=slot.isoformat(), reason=reason)


@dataclass
class Decided:
    rota_id: int
    slot_at: datetime
    state: str
    item_id: int | None = None


def run_due(
    ledger: Ledger, settings: Settings, broker: outbox.Broker | None = None, actor: str = "scheduler"
) -> list[Decided]:
    """Decide every slot of every active rota that came since its cursor; see the module's docstring."""
    now = ledger.now()
    zone = ZoneInfo(settings.time_zone)
    decided: list[Decided] = []
    with ledger.session() as session:
        active = list(session.scalars(select(RotaRow.id).where(RotaRow.state == "active")))
    for rota_id in active:
        decided += _run_rota(ledger, settings, rota_id, now, zone, actor)
    # A slot whose item was made but not approved (the scheduler stopped in between) is approved now.
    with ledger.session() as session:
        unfinished = list(
            session.scalars(
                select(RotaSlotRow.item_id)
                .join(ItemRow, ItemRow.id == RotaSlotRow.item_id)
                .where(ItemRow.state == ItemState.submitted)
            )
        )
    for item_id in unfinished:
        if item_id is not None:
            _approve_item(ledger, settings, item_id, broker)
    return decided


def _run_rota(
    ledger: Ledger, settings: Settings, rota_id: int, now: datetime, zone: ZoneInfo, actor: str
) -> list[Decided]:
    decided: list[Decided] = []
    grace = timedelta(seconds=settings.rota_grace_seconds)
    with ledger.session() as session:
        row = session.get(RotaRow, rota_id, with_for_update=True)
        if row is None or row.state != "active" or row.live_version_id is None or row.cursor is None:
            return []
        version = session.get_one(RotaVersionRow, row.live_version_id)
        loaded = rota.parse_rota(version.document, row.name)
        due = [
            slot
            for slot in rota.slots(loaded, row.cursor, now + timedelta(microseconds=1), zone)
            if slot > row.cursor
        ]
        for slot in due[:SLOTS_PER_RUN]:
            taken = session.scalar(
                select(RotaSlotRow.id).where(RotaSlotRow.rota_id == row.id, RotaSlotRow.slot_at == slot)
            )
            if taken is not None:
                continue  # another scheduler decided it
            if now - slot > grace:
                _skip(session, row, version, slot, f"missed by more than the grace period ({grace})", actor)
                decided.append(Decided(row.id, slot, "skipped"))
                continue
            number = row.slots_used
            tip = rota.tip_for(loaded, number)
            item = loaded.item_for(tip, slot)
            state = "late" if now - slot > ON_TIME else "sent"
            # the slot and its item in one transaction: they come together, or not at all
            item_id = approval.store_item(
                session,
                item,
                rota=row.id,
                version=version.number,
                slot=slot.isoformat(),
                slot_number=number,
                tip=tip,
            )
            session.add(
                RotaSlotRow(
                    rota_id=row.id,
                    version_id=version.id,
                    slot_at=slot,
                    state=state,
                    number=number,
                    tip=tip,
                    item_id=item_id,
                )
            )
            row.slots_used = number + 1
            record(
                session,
                "rota.slot_sent" if state == "sent" else "rota.slot_late",
                actor=actor,
                rota=row.id,
                version=version.number,
                slot=slot.isoformat(),
                tip=tip,
                item_id=item_id,
            )
            decided.append(Decided(row.id, slot, state, item_id))
        if due:
            row.cursor = max(due[:SLOTS_PER_RUN][-1], row.cursor)
    return decided


def _approve_item(ledger: Ledger, settings: Settings, item_id: int, broker: outbox.Broker | None) -> None:
    """Approve a slot's item by the rota's approval (its approver, named with the rota in the event). An
    item the channels refuse (a tip a sign cannot show, an item expired meanwhile) fails its slot, on
    the record, and is not tried again."""
    with ledger.session() as session:
        item = session.get_one(ItemRow, item_id)
        if item.state is not ItemState.submitted:
            return  # approved meanwhile, by another scheduler
        slot = session.scalars(select(RotaSlotRow).where(RotaSlotRow.item_id == item_id)).one()
        version = session.get_one(RotaVersionRow, slot.version_id)
        basis = {"rota": slot.rota_id, "version": version.number, "slot": slot.slot_at.isoformat()}
        reviewer = version.reviewer or ""
    try:
        approval.approve(ledger, settings, item_id, reviewer, broker, basis=basis)
    except (DispatchError, IntegrityError) as exc:
        with ledger.session() as session:
            item = session.get_one(ItemRow, item_id, with_for_update=True)
            if item.state is not ItemState.submitted:
                return  # another scheduler approved it first
            slot = session.scalars(select(RotaSlotRow).where(RotaSlotRow.item_id == item_id)).one()
            item.state = ItemState.rejected
            slot.state, slot.reason = "failed", str(exc)[:500]
            record(session, "item.rejected", actor="scheduler", item_id=item_id, reason=str(exc)[:500])
            record(
                session,
                "rota.slot_failed",
                actor="scheduler",
                rota=slot.rota_id,
                slot=slot.slot_at.isoformat(),
                item_id=item_id,
                reason=str(exc)[:500],
            )


def listing(ledger: Ledger) -> list[dict[str, Any]]:
    """Every rota: its state, live version, slots decided, and the next slot."""
    with ledger.session() as session:
        rows = list(session.scalars(select(RotaRow).order_by(RotaRow.id)))
        result = []
        for row in rows:
            versions = list(
                session.scalars(
                    select(RotaVersionRow)
                    .where(RotaVersionRow.rota_id == row.id)
                    .order_by(RotaVersionRow.number)
                )
            )
            live = next((v for v in versions if v.id == row.live_version_id), None)
            counts: dict[str, int] = {}
            for (state,) in session.execute(select(RotaSlotRow.state).where(RotaSlotRow.rota_id == row.id)):
                counts[state] = counts.get(state, 0) + 1
            result.append(
                {
                    "id": row.id,
                    "name": row.name,
                    "state": row.state,
                    "live_version": live.number if live else None,
                    "approved_by": live.reviewer if live else None,
                    "digest": live.digest if live else None,
                    "awaiting_review": versions[-1].number
                    if versions and versions[-1].decision is None
                    else None,
                    "slots": counts,
                }
            )
        return result
