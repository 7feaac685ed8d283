"""The morning digest: once a day, yesterday's items, unresolved deliveries and downtime clipped to the
day, kept and sent to the webhook and the on-call phones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from channels import build_channel
from channels.base import Channel
from dispatcher import monitor
from dispatcher.digest import latest_digest, run_digest_if_due
from dispatcher.ledger import DeliveryState, DigestRow, EventRow, HealthChangeRow, Ledger, OpsAlertRow
from sandbox.server import Sandbox
from settings import Settings
from tests.dispatcher.test_monitor import ONCALL, Receiver, alerting, planted, receiver, texts
from tests.support import received

__all__ = ["alerting", "receiver"]  # fixtures shared with the monitor's tests

# 08:31 on 11 March in Shanghai; "yesterday" is 10 March local, 2025-03-09T16:00Z to 2025-03-10T16:00Z.
NOW = datetime(2025, 3, 11, 0, 31, tzinfo=UTC)
DAY_START = datetime(2025, 3, 9, 16, 0, tzinfo=UTC)


def at(hours: float) -> datetime:
    """``hours`` after the start of yesterday (local)."""
    return DAY_START + timedelta(hours=hours)


def change(session: Any, channel: str, target: str, old: str, new: str, when: datetime) -> None:
    session.add(HealthChangeRow(channel=channel, target=target, from_state=old, to_state=new, at=when))


def test_the_digest_goes_once_a_day_with_downtime_clipped_to_the_day(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger = Ledger(alerting.ledger_url)
    with ledger.session() as session:
        # down from 23:00 the day before to 01:00: one hour of yesterday
        change(session, "website", "*", "healthy", "down", at(-1))
        change(session, "website", "*", "down", "healthy", at(1))
        # a sign down 10:00 to 10:30, degraded (not down) after
        change(session, "display", "BJ-CY-001", "healthy", "down", at(10))
        change(session, "display", "BJ-CY-001", "down", "degraded", at(10.5))
        # down at 23:30 and still down: 30 minutes of yesterday
        change(session, "microblog", "*", "healthy", "down", at(23.5))
        # down and back the day before: none of yesterday
        change(session, "sms", "*", "healthy", "down", at(-5))
        change(session, "sms", "*", "down", "healthy", at(-4))
        planted(session, kind="warning", approved_at=at(9), state=DeliveryState.sent, sent_at=at(9))
        planted(session, kind="release", approved_at=at(12), state=DeliveryState.sent, sent_at=at(12))
        planted(session, kind="release", approved_at=at(-2), state=DeliveryState.sent, sent_at=at(-2))
        failed = planted(session, kind="release", approved_at=at(13), state=DeliveryState.failed)
        redriven = planted(session, kind="release", approved_at=at(14), state=DeliveryState.sent, sent_at=NOW)
        for row in (failed, redriven):
            session.add(
                EventRow(
                    name="delivery.failed", actor="w", item_id=row.item_id, delivery_id=row.id, at=at(15)
                )
            )
    assert run_digest_if_due(ledger, alerting, NOW - timedelta(minutes=2)) is None  # 08:29: not yet
    body = run_digest_if_due(ledger, alerting, NOW)
    assert body is not None and body["day"] == "2025-03-10"
    assert run_digest_if_due(ledger, alerting, NOW + timedelta(hours=3)) is None  # once a day
    assert body["items"]["approved"] == 4 and body["items"]["by_kind"] == {"warning": 1, "release": 3}
    assert [d["delivery"] for d in body["deliveries"]["failed"]] == [failed.id]
    assert {(d["channel"], d["target"]): d["seconds"] for d in body["downtime"]} == {
        ("website", None): 3600.0,
        ("display", "BJ-CY-001"): 1800.0,
        ("microblog", None): 1800.0,
    }
    with ledger.session() as session:
        assert session.scalar(select(func.count()).select_from(DigestRow)) == 1
        assert sorted(session.scalars(select(OpsAlertRow.route)).all()) == ["sms", "webhook"]
        assert latest_digest(session) == {**body, "text": session.scalars(select(DigestRow.text)).one()}

    def channel_for(name: str) -> Channel:
        return build_channel(name, alerting)

    assert monitor.send_alerts(ledger, alerting, channel_for, now=NOW) == 2
    [hook] = receiver.bodies()
    assert hook["type"] == "digest" and hook["downtime"] == body["downtime"]
    phoned = texts(sandbox)
    assert [t["to"] for t in phoned] == ["+8613800138000", "+8613900139000"]
    assert phoned[0]["text"].startswith("【调度日报】2025-03-10 发布4条 失败1")
    assert len(received(sandbox, "sms")) == len(ONCALL)
    # The next day's digest is its own.
    assert run_digest_if_due(ledger, alerting, NOW + timedelta(days=1))["day"] == "2025-03-11"  # type: ignore[index]
    ledger.dispose()
