"""Signs that forget or drop off the network are given their message again, through the delivery path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import update

from dispatcher import approval
from dispatcher.delivery import deliver
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger, record
from dispatcher.watch import WatchReport, watch
from sandbox.server import Sandbox
from settings import Settings
from tests.conftest import item_doc


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    """Every test here talks to the emulators."""
    return sandboxed


def sent_to_signs(ledger: Ledger, settings: Settings, **changes: object) -> list[DeliveryRow]:
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["display"], **changes)))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        rows = session.query(DeliveryRow).filter_by(item_id=item_id).all()
    for row in rows:
        deliver(ledger, settings, row.id, "test-worker")
    return rows


def watch_signs(ledger: Ledger, settings: Settings) -> WatchReport:
    """One watch, then the re-sends it caused, run as a worker would."""
    report = watch(ledger, settings)
    for delivery_id in report.lost:
        assert deliver(ledger, settings, delivery_id, "test-worker") is DeliveryState.sent
    return report


def sign(sandbox: Sandbox, sign_id: str, action: str, **body: object) -> requests.Response:
    return requests.post(f"{sandbox.urls['display']}/_sandbox/signs/{sign_id}/{action}", json=body, timeout=5)


def showing(sandbox: Sandbox, sign_id: str) -> dict | None:
    return requests.get(f"{sandbox.urls['display']}/signs/{sign_id}/message", timeout=5).json()


def test_nothing_is_resent_while_signs_show_their_messages(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sent_to_signs(ledger, settings)
    report = watch_signs(ledger, settings)
    assert report.checked == 2 and report.lost == []


def test_a_rebooted_sign_gets_its_warning_back(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    rows = sent_to_signs(ledger, settings)
    first = next(r for r in rows if r.target == "BJ-CY-001")
    sign(sandbox, "BJ-CY-001", "reboot")
    assert showing(sandbox, "BJ-CY-001") is None
    report = watch_signs(ledger, settings)
    assert report.lost == [first.id]
    assert showing(sandbox, "BJ-CY-001")["id"] == first.idempotency_key
    with ledger.session() as session:
        event = session.query(EventRow).filter_by(name="delivery.lost").one()
        claims = session.query(EventRow).filter_by(name="delivery.claimed", delivery_id=first.id).count()
    assert event.detail == {"target": "BJ-CY-001", "reason": "blank"}
    assert claims == 2  # the refill was claimed and sent like any delivery, on the record


def test_an_offline_sign_is_resent_once_it_answers(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sent_to_signs(ledger, settings)
    sign(sandbox, "BJ-CY-002", "reboot")
    sign(sandbox, "BJ-CY-002", "offline", offline=True)
    report = watch_signs(ledger, settings)
    assert report.unreachable == ["BJ-CY-002"] and report.lost == []
    sign(sandbox, "BJ-CY-002", "offline", offline=False)
    assert len(watch_signs(ledger, settings).lost) == 1


def test_a_sign_showing_a_higher_priority_message_is_left_alone(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    tip = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None, "title": "提示"}
    sent_to_signs(ledger, settings, **tip)
    requests.put(
        f"{sandbox.urls['display']}/signs/BJ-CY-001/message",
        timeout=5,
        json={"id": "other-warning", "multi": "暴雨", "priority": 200},
    ).raise_for_status()
    assert watch_signs(ledger, settings).lost == []


def test_expired_items_are_not_watched(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    sent_to_signs(ledger, settings, expires=soon)
    ledger.shift = timedelta(minutes=5, seconds=1)  # the flow's clock moves on; nothing sleeps
    assert watch_signs(ledger, settings).checked == 0


def test_a_newer_warning_is_not_pushed_aside_by_the_one_it_replaced(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found by the fault suite: the watch put every earlier warning back, in turn."""
    sent_to_signs(ledger, settings, title="第一次预警")
    newer = sent_to_signs(ledger, settings, title="第二次预警")
    for _ in range(3):
        assert watch_signs(ledger, settings).lost == []
    assert (
        showing(sandbox, "BJ-CY-001")["id"]
        == next(r for r in newer if r.target == "BJ-CY-001").idempotency_key
    )
    sign(sandbox, "BJ-CY-001", "reboot")
    assert watch_signs(ledger, settings).lost == [next(r.id for r in newer if r.target == "BJ-CY-001")]


def test_a_withdrawn_delivery_is_never_refilled(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    rows = sent_to_signs(ledger, settings)
    first = next(r for r in rows if r.target == "BJ-CY-001")
    with ledger.session() as session:
        record(session, "delivery.withdrawn", actor="值班员", item_id=first.item_id, delivery_id=first.id)
    sign(sandbox, "BJ-CY-001", "reboot")
    report = watch_signs(ledger, settings)
    assert first.id not in report.lost and showing(sandbox, "BJ-CY-001") is None


def test_the_sign_watch_never_sends_a_payload_edited_in_the_ledger(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    rows = sent_to_signs(ledger, settings)
    first = next(r for r in rows if r.target == "BJ-CY-001")
    forged = {**first.payload, "multi": "[pt30o0]FAKE ALERT[nl]EVACUATE NOW"}
    with ledger.session() as session:
        session.execute(update(DeliveryRow).where(DeliveryRow.id == first.id).values(payload=forged))
    sign(sandbox, "BJ-CY-001", "reboot")
    report = watch(ledger, settings)
    assert report.lost == [first.id]
    # The refill goes through the delivery path, which checks the approval pin before anything leaves.
    deliver(ledger, settings, first.id, "test-worker")
    assert showing(sandbox, "BJ-CY-001") is None
    with ledger.session() as session:
        assert session.get_one(DeliveryRow, first.id).state is DeliveryState.failed
        failed = session.query(EventRow).filter_by(name="delivery.failed", delivery_id=first.id).one()
    assert "approval pin" in failed.detail["error"]


def test_a_message_that_ends_before_its_item_expires_is_not_put_back(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: durations are whole minutes, so a message ends up to a minute before its item
    expires; a blank sign then is a message that ended, and the delivery stays sent."""
    rows = sent_to_signs(ledger, settings, expires=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())
    sign(sandbox, "BJ-CY-001", "reboot")  # blank, as at the end of its duration
    ledger.shift = timedelta(minutes=4, seconds=2)  # 58 s before the item expires
    report = watch(ledger, settings)
    assert report.lost == [] and report.checked == 2
    with ledger.session() as session:
        assert {d.state for d in session.query(DeliveryRow)} == {DeliveryState.sent}
        assert session.get_one(DeliveryRow, rows[0].id).revision.item.state.value == "published"


def test_while_a_newer_warning_is_on_its_way_back_the_older_one_is_not_refilled(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: a sign in local control after a restart held the newer warning's refill back,
    and the next watch put the older warning back in between."""
    sent_to_signs(ledger, settings, title="第一次预警")
    newer = next(r for r in sent_to_signs(ledger, settings, title="第二次预警") if r.target == "BJ-CY-001")
    with ledger.session() as session:
        first_sent = session.get_one(DeliveryRow, newer.id).sent_at
    sign(sandbox, "BJ-CY-001", "reboot")
    sign(sandbox, "BJ-CY-001", "control", mode="local")
    assert watch(ledger, settings).lost == [newer.id]
    assert deliver(ledger, settings, newer.id, "test-worker") is DeliveryState.retrying  # waits: local
    for _ in range(2):
        assert watch(ledger, settings).lost == []  # the sign is the newer warning's, still on its way
    sign(sandbox, "BJ-CY-001", "control", mode="central")
    with ledger.session() as session:
        session.execute(update(DeliveryRow).where(DeliveryRow.id == newer.id).values(next_attempt_at=None))
    assert deliver(ledger, settings, newer.id, "test-worker") is DeliveryState.sent
    assert showing(sandbox, "BJ-CY-001")["id"] == newer.idempotency_key
    assert watch_signs(ledger, settings).lost == []
    with ledger.session() as session:  # the refill keeps the time it was first sent
        assert session.get_one(DeliveryRow, newer.id).sent_at == first_sent


def test_a_delivery_withdrawn_while_on_its_way_back_is_not_sent(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    first = next(r for r in sent_to_signs(ledger, settings) if r.target == "BJ-CY-001")
    sign(sandbox, "BJ-CY-001", "reboot")
    assert watch(ledger, settings).lost == [first.id]
    with ledger.session() as session:
        record(session, "delivery.withdrawn", actor="值班员", item_id=first.item_id, delivery_id=first.id)
    assert deliver(ledger, settings, first.id, "test-worker") is None
    assert showing(sandbox, "BJ-CY-001") is None
    with ledger.session() as session:
        assert session.get_one(DeliveryRow, first.id).state is DeliveryState.sent  # its record stands
        assert (
            session.query(EventRow).filter_by(name="delivery.not_refilled", delivery_id=first.id).count() == 1
        )
