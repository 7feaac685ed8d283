from __future__ import annotations

from pathlib import Path

import pytest

from dispatcher.ledger import EventRow, ItemRow, ItemState, Ledger, record


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


def test_a_failed_transaction_writes_nothing(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.sqlite'}")
    with pytest.raises(ZeroDivisionError):
        with ledger.session() as session:
            record(session, "lost", actor="a")
            session.flush()
            raise ZeroDivisionError
    with ledger.session() as session:
        assert session.query(EventRow).count() == 0
