"""Reports for people: the health of every channel and the circuits that are not closed."""

from __future__ import annotations

from datetime import timedelta

from dispatcher.ledger import CircuitRow, Ledger, utcnow
from dispatcher.reports import channel_health
from settings import Settings


def test_every_channel_is_probed_and_open_circuits_are_listed(ledger: Ledger, sandboxed: Settings) -> None:
    until = utcnow() + timedelta(minutes=1)
    with ledger.session() as session:
        session.add(
            CircuitRow(
                channel="sms",
                target="batch-001",
                state="open",
                failures=5,
                open_until=until,
                last_error="503",
            )
        )
        session.add(CircuitRow(channel="display", target="BJ-CY-001", state="closed", failures=0))
    report = channel_health(ledger, sandboxed)
    assert [r["channel"] for r in report["channels"]] == ["website", "sms", "display", "microblog"]
    assert all(r["ok"] and r["latency_ms"] is not None for r in report["channels"])
    assert report["circuits"] == [
        {
            "channel": "sms",
            "target": "batch-001",
            "state": "open",
            "failures": 5,
            "open_until": until.isoformat(),
            "last_error": "503",
        }
    ]


def test_a_channel_down_is_reported_with_why_and_the_others_still_probed(
    ledger: Ledger, sandboxed: Settings
) -> None:
    display = sandboxed.display.model_copy(update={"registry": sandboxed.var_dir / "no-such-registry.yaml"})
    report = channel_health(ledger, sandboxed.model_copy(update={"display": display}))
    health = {r["channel"]: r for r in report["channels"]}
    assert not health["display"]["ok"] and "does not exist" in health["display"]["detail"]
    assert health["website"]["ok"] and health["sms"]["ok"] and health["microblog"]["ok"]
