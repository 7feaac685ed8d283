from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import Session

from dispatcher.ledger import (
    ApprovalRow,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RevisionRow,
    SubscriberRow,
    _append_only,
    database_form,
    insert_rows,
    record,
    utcnow,
)


def test_events_are_append_only(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with ledger.session() as session:
        record(session, "test.event", actor="tester", note="first")
    with pytest.raises(RuntimeError, match="append-only"):
        with ledger.session() as session:
            row = session.query(EventRow).one()
            row.name = "rewritten"
    with pytest.raises(RuntimeError, match="append-only"):
        with ledger.session() as session:
            session.delete(session.query(EventRow).one())
    with ledger.session() as session:
        assert session.query(EventRow).one().name == "test.event"


def test_the_orm_guard_is_the_ledgers_own(tmp_path: Path) -> None:
    """Importing the ledger adds no listener to SQLAlchemy's Session class; its own sessions have one."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    assert not event.contains(Session, "before_flush", _append_only)
    assert event.contains(ledger._sessions, "before_flush", _append_only)
    ledger.dispose()


def test_timestamps_come_back_timezone_aware(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with ledger.session() as session:
        session.add(
            ItemRow(
                uid="u" * 32, kind="warning", title="t", author="a", department="d", state=ItemState.submitted
            )
        )
    with ledger.session() as session:
        assert session.query(ItemRow).one().created_at.tzinfo is not None


def test_rows_written_by_the_driver_read_back_as_the_orms(tmp_path: Path) -> None:
    """``insert_rows`` bypasses SQLAlchemy's handling of each row: values in ``database_form`` must read
    back exactly as rows the ORM wrote, timestamps timezone-aware."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    now = utcnow()
    with ledger.session() as session:
        table = SubscriberRow.__table__
        stamp = database_form(table.c.created_at, now, session)
        assert isinstance(stamp, str)  # converted once, not by the driver for every row
        insert_rows(
            session,
            table,  # type: ignore[arg-type]
            ["phone", "areas", "topics", "consent", "source", "created_at", "updated_at"],
            [("+8613800138000", '["110105"]', "[]", True, "test", stamp, stamp)],
        )
        session.add(SubscriberRow(phone="+8613800138001", areas=["110105"], topics=[], source="test"))
    with ledger.session() as session:
        driver, orm = session.query(SubscriberRow).order_by(SubscriberRow.phone).all()
        assert driver.created_at == now and driver.created_at.tzinfo is not None
        assert driver.areas == orm.areas == ["110105"]
    ledger.dispose()


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with pytest.raises(ZeroDivisionError):
        with ledger.session() as session:
            record(session, "lost", actor="a")
            session.flush()
            raise ZeroDivisionError
    with ledger.session() as session:
        assert session.query(EventRow).count() == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET name = 'rewritten'",
        "DELETE FROM events",
        "UPDATE approvals SET approver = 'someone else'",
        "DELETE FROM approvals",
    ],
)
def test_the_database_itself_refuses_to_rewrite_the_record(tmp_path: Path, statement: str) -> None:
    """Raw SQL from another client, and the ORM's bulk statements that skip its guard, are refused."""
    import sqlite3

    path = tmp_path / "l.sqlite"
    ledger = Ledger(f"sqlite:///{path}")
    with ledger.session() as session:
        record(session, "test.event", actor="tester")
        item = ItemRow(
            uid="u" * 32, kind="warning", title="t", author="a", department="d", state=ItemState.submitted
        )
        session.add(item)
        session.flush()
        revision = RevisionRow(item_id=item.id, number=1, document={}, digest="x")
        session.add(revision)
        session.flush()
        session.add(ApprovalRow(revision_id=revision.id, approver="b", decision="approved"))
    raw = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw.execute(statement)
    raw.close()
    with pytest.raises(Exception, match="append-only"):
        with ledger.session() as session:
            session.execute(update(EventRow).values(name="bulk"))
    with ledger.session() as session:
        assert session.query(EventRow).one().name == "test.event"
        assert session.query(ApprovalRow).one().approver == "b"


def test_the_ledger_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "var" / "l.sqlite"
    Ledger(f"sqlite:///{path}")
    assert path.stat().st_mode & 0o777 == 0o600
