"""Prometheus metrics counted in the ledger at scrape time: exact values, cumulative histogram buckets,
circuit states as numbers, queue depths from the broker's callable."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from dispatcher import approval
from dispatcher.items import parse_item
from dispatcher.ledger import (
    Action,
    ApprovalRow,
    CircuitRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RevisionRow,
)
from dispatcher.metrics import BUCKETS, exposition
from settings import Settings
from tests.dispatcher.test_migrations import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.support import item_doc

APPROVED = datetime(2026, 11, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

#: (channel, target, state, attempts, seconds from approval to sent_at or None, action)
Planned = tuple[str, str, DeliveryState, int, float | None, Action]


def planted(ledger: Ledger, deliveries: list[Planned], **changes: object) -> int:
    """An item submitted through the flow and approved at APPROVED with ``deliveries`` as given, each
    claimed ``attempts`` times in the event log (approvals are append-only and stamped with the wall
    clock: written here, the times are the test's)."""
    item_id = approval.submit(ledger, parse_item(item_doc(**changes)))
    with ledger.session() as session:
        item = session.get_one(ItemRow, item_id)
        revision = session.scalars(select(RevisionRow).where(RevisionRow.item_id == item_id)).one()
        session.add(ApprovalRow(revision_id=revision.id, approver="陈刚", decision="approved", at=APPROVED))
        item.state, item.live_revision_id = ItemState.approved, revision.id
        for channel, target, state, attempts, after, action in deliveries:
            row = DeliveryRow(
                revision_id=revision.id,
                item_id=item_id,
                channel=channel,
                target=target,
                queue=channel,
                action=action,
                idempotency_key=f"{revision.id}:{channel}:{target}:{action}",
                payload={},
                payload_digest="0" * 64,
                state=state,
                attempts=attempts,
                sent_at=APPROVED + timedelta(seconds=after) if after is not None else None,
            )
            session.add(row)
            session.flush()
            for _ in range(attempts):
                session.add(
                    EventRow(
                        name="delivery.claimed", actor="w", item_id=item_id, delivery_id=row.id, detail={}
                    )
                )
    return item_id


def scrape(
    ledger: Ledger, settings: Settings, depths: dict[str, int | None] | None = None
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The exposition parsed: sample name → {sorted labels: value}."""
    text = exposition(ledger, settings, (lambda: depths) if depths is not None else None).decode()
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labels(**given: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(given.items()))


@pytest.fixture
def planted_ledger(ledger: Ledger) -> Ledger:
    return plant(ledger)


def plant(ledger: Ledger) -> Ledger:
    """Two items approved with deliveries in known states and times, one item waiting for review, and
    three circuits (open, half open, closed)."""
    publish = Action.publish
    sent, dead = DeliveryState.sent, DeliveryState.dead
    planted(
        ledger,
        [
            ("website", "site", sent, 1, 0.5, publish),
            ("display", "BJ-CY-001", sent, 2, 30, publish),  # exactly on a bound: in le=30
            ("display", "BJ-CY-002", sent, 1, 30.001, publish),  # just past it: in le=60
            ("display", "BJ-CY-003", dead, 5, None, publish),
            ("display", "BJ-CY-004", DeliveryState.retrying, 2, None, publish),
            ("display", "BJ-CY-005", DeliveryState.pending, 0, None, publish),
            # a takedown sent is not a publication: not in the histogram, but counted as a delivery
            ("website", "site", sent, 1, 7200, Action.withdraw),
        ],
    )
    planted(
        ledger,
        [
            ("website", "site", sent, 1, 4000, publish),
            ("website", "other", DeliveryState.sending, 1, None, publish),
        ],
        kind="release",
        title="关于调整防汛应急响应等级的通知",
        event=None,
        severity=None,
        urgency=None,
        certainty=None,
        short_text=None,
    )
    approval.submit(ledger, parse_item(item_doc(title="待审核")))  # one item still submitted
    with ledger.session() as session:
        session.add(CircuitRow(channel="display", target="BJ-CY-003", state="open", failures=5))
        session.add(CircuitRow(channel="display", target="BJ-CY-004", state="half_open", failures=5))
        session.add(CircuitRow(channel="website", target="site", state="closed", failures=0))
    return ledger


def test_the_counts_are_the_ledgers(planted_ledger: Ledger, settings: Settings) -> None:
    found = scrape(planted_ledger, settings)
    items = found["dispatch_items"]
    assert items[labels(state="approved")] == 2 and items[labels(state="submitted")] == 1
    assert items[labels(state="withdrawn")] == 0 and len(items) == len(ItemState)

    deliveries = found["dispatch_deliveries"]
    assert deliveries == {
        labels(channel="website", kind="warning", state="sent"): 2,
        labels(channel="display", kind="warning", state="sent"): 2,
        labels(channel="display", kind="warning", state="dead"): 1,
        labels(channel="display", kind="warning", state="retrying"): 1,
        labels(channel="display", kind="warning", state="pending"): 1,
        labels(channel="website", kind="release", state="sent"): 1,
        labels(channel="website", kind="release", state="sending"): 1,
    }
    assert found["dispatch_deliveries_waiting"] == {
        labels(channel="display"): 2,
        labels(channel="website"): 1,
    }
    assert found["dispatch_attempts_total"] == {labels(channel="website"): 4, labels(channel="display"): 10}
    assert found["dispatch_circuit_state"] == {
        labels(channel="display", target="BJ-CY-003"): 2,
        labels(channel="display", target="BJ-CY-004"): 1,
        labels(channel="website", target="site"): 0,
    }
    assert "dispatch_queue_depth" not in found  # no broker to ask


def test_the_histogram_buckets_are_cumulative_and_exact(planted_ledger: Ledger, settings: Settings) -> None:
    found = scrape(planted_ledger, settings)
    buckets = found["dispatch_approval_to_sent_seconds_bucket"]

    def series(channel: str, kind: str) -> list[float]:
        bounds = [str(float(b)) for b in BUCKETS] + ["+Inf"]
        return [buckets[labels(channel=channel, kind=kind, le=le)] for le in bounds]

    #                                        1  2  5  10 30 60 120 300 900 3600 +Inf
    assert series("display", "warning") == [0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2]
    assert series("website", "warning") == [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert series("website", "release") == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    count, total = (
        found["dispatch_approval_to_sent_seconds_count"],
        found["dispatch_approval_to_sent_seconds_sum"],
    )
    assert count[labels(channel="display", kind="warning")] == 2
    assert total[labels(channel="display", kind="warning")] == pytest.approx(60.001, abs=1e-6)
    assert total[labels(channel="website", kind="release")] == pytest.approx(4000)


def test_a_circuit_opened_shows_2_and_every_scrape_reads_the_ledger_anew(
    planted_ledger: Ledger, settings: Settings
) -> None:
    with planted_ledger.session() as session:
        session.get_one(CircuitRow, ("website", "site")).state = "open"
        row = session.scalars(select(DeliveryRow).where(DeliveryRow.state == DeliveryState.retrying)).one()
        row.state = DeliveryState.sent
    found = scrape(planted_ledger, settings)
    assert found["dispatch_circuit_state"][labels(channel="website", target="site")] == 2
    assert found["dispatch_deliveries_waiting"][labels(channel="display")] == 1
    assert labels(channel="display", kind="warning", state="retrying") not in found["dispatch_deliveries"]


def test_queue_depths_come_from_the_broker_callable(ledger: Ledger, settings: Settings) -> None:
    found = scrape(ledger, settings, {"urgent": 3, "website": 0, "sms": None})
    # the queue the broker could not answer for is left out, not reported empty
    assert found["dispatch_queue_depth"] == {labels(queue="urgent"): 3, labels(queue="website"): 0}
    assert found["dispatch_items"][labels(state="submitted")] == 0


def test_the_same_numbers_from_a_postgresql_ledger(
    postgres_url: str,  # noqa: F811
    settings: Settings,
) -> None:
    ledger = Ledger(postgres_url)
    try:
        found = scrape(plant(ledger), settings)
    finally:
        ledger.dispose()
    buckets = found["dispatch_approval_to_sent_seconds_bucket"]
    bounds = [str(float(b)) for b in BUCKETS] + ["+Inf"]
    assert [buckets[labels(channel="display", kind="warning", le=le)] for le in bounds] == [
        0,
        0,
        0,
        0,
        1,
        2,
        2,
        2,
        2,
        2,
        2,
    ]
    assert found["dispatch_approval_to_sent_seconds_sum"][
        labels(channel="display", kind="warning")
    ] == pytest.approx(60.001, abs=1e-6)
    assert found["dispatch_attempts_total"] == {labels(channel="website"): 4, labels(channel="display"): 10}
    assert found["dispatch_circuit_state"][labels(channel="display", target="BJ-CY-003")] == 2
