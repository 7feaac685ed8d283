"""The event log proves itself: every event carries the hash of the one before, and ``dispatch ledger
verify`` finds the first link an edit of the database broke (planted here, past the triggers)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from dispatcher import approval, identity
from dispatcher.cli import cli
from dispatcher.items import parse_item
from dispatcher.ledger import GENESIS, EventRow, Ledger, verify_chain
from settings import Settings
from tests.support import item_doc


def auditor(ledger: Ledger) -> dict[str, str]:
    """The environment of a command run by an auditor (its user's events are the ledger's first)."""
    admin = identity.authenticate(ledger, identity.bootstrap(ledger, "管理员").token)
    return {"DISPATCH_TOKEN": identity.add(ledger, admin, "审计", frozenset({identity.Role.auditor})).token}


def written(ledger: Ledger, settings: Settings) -> int:
    """Events of every kind of writing: the ORM's, and approval's bulk inserts (an SMS audience)."""
    item_id = approval.submit(ledger, parse_item(item_doc()))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        return session.query(EventRow).count()


def tamper(settings: Settings, statement: str) -> None:
    """Edit the database as someone with the file would: past the append-only triggers."""
    path = settings.ledger_url.removeprefix("sqlite:///")
    raw = sqlite3.connect(path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("DROP TRIGGER events_no_delete")
    raw.execute(statement)
    raw.commit()
    raw.close()


def test_every_event_is_chained_to_the_one_before(ledger: Ledger, settings: Settings) -> None:
    count = written(ledger, settings)
    with ledger.session() as session:
        checked, broken, head = verify_chain(session)
        events = session.query(EventRow).order_by(EventRow.id).all()
    assert (checked, broken) == (count, None) and count > 5
    assert events[0].prev_hash == GENESIS and head == events[-1].hash
    assert all(later.prev_hash == earlier.hash for earlier, later in zip(events, events[1:], strict=False))


def test_an_event_changed_in_the_database_is_found(ledger: Ledger, settings: Settings) -> None:
    env = {"DISPATCH_LEDGER_URL": settings.ledger_url, **auditor(ledger)}
    written(ledger, settings)
    tamper(settings, "UPDATE events SET actor = '王强' WHERE id = 3")
    with ledger.session() as session:
        assert verify_chain(session)[1] == 3
    result = CliRunner().invoke(cli, ["ledger", "verify"], env=env)
    assert result.exit_code == 1 and "breaks at event 3" in result.output


def test_an_event_removed_from_the_database_is_found(ledger: Ledger, settings: Settings) -> None:
    written(ledger, settings)
    tamper(settings, "DELETE FROM events WHERE id = 4")
    with ledger.session() as session:
        assert verify_chain(session)[1] == 5  # the one after the gap no longer links


def test_verify_says_the_chain_holds(ledger: Ledger, settings: Settings, tmp_path: Path) -> None:
    env = {"DISPATCH_LEDGER_URL": settings.ledger_url, **auditor(ledger)}
    count = written(ledger, settings)
    result = CliRunner().invoke(cli, ["ledger", "verify"], env=env)
    assert result.exit_code == 0 and result.output.startswith(f"{count} events, chained")
