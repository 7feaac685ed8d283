from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from dispatcher import approval, outbox, subscribers, tasks
from dispatcher.errors import ContentError, InvalidItemError, NotFoundError, RefusedError
from dispatcher.items import parse_item
from dispatcher.ledger import ApprovalRow, DeliveryRow, DeliveryState, EventRow, ItemRow, ItemState, Ledger
from dispatcher.signing import payload_key, pin
from dispatcher.words import digest_of
from settings import Settings
from tests.support import item_doc


def queued(settings: Settings) -> dict[str, int]:
    """Messages waiting in the embedded broker, per queue."""
    path = settings.broker_url.removeprefix("sqla+sqlite:///")
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT q.name, count(*) FROM kombu_message m JOIN kombu_queue q ON m.queue_id = q.id "
            "WHERE m.visible = 1 GROUP BY q.name"
        ).fetchall()
    return dict(rows)


def submitted(ledger: Ledger, **changes: object) -> int:
    return approval.submit(ledger, parse_item(item_doc(**changes)))


def test_approval_pins_payloads_and_enqueues_one_task_per_delivery(
    ledger: Ledger, settings: Settings, broker: outbox.Broker
) -> None:
    item_id = submitted(ledger)
    result = approval.approve(ledger, settings, item_id, "陈刚", broker)
    with ledger.session() as session:
        deliveries = session.query(DeliveryRow).order_by(DeliveryRow.id).all()
        assert session.get(ItemRow, item_id).state is ItemState.approved
        assert session.query(ApprovalRow).one().approver == "陈刚"
        names = [e.name for e in session.query(EventRow).filter_by(item_id=item_id).order_by(EventRow.id)]
    # website 1, sms 1 batch, display 2 signs in Chaoyang (110105), microblog 1 account
    assert sorted((d.channel, d.target) for d in deliveries) == [
        ("display", "BJ-CY-001"),
        ("display", "BJ-CY-002"),
        ("microblog", "sandbox"),
        ("sms", "batch-001"),
        ("website", "site"),
    ]
    assert all(d.state is DeliveryState.pending for d in deliveries)
    assert all(
        d.payload_digest == pin(payload_key(settings), d.payload, d.idempotency_key) for d in deliveries
    )
    assert len({d.idempotency_key for d in deliveries}) == len(deliveries)
    written = {(d.channel, d.target): d.payload for d in deliveries}
    planned = {(p.channel, p.target): p.body for p in result.payloads}
    batch = written.pop(("sms", "batch-001"))
    sample = planned.pop(("sms", "batch-001"))
    assert written == planned
    # The batch is the plan's sample with the digest of the numbers written for it, in order.
    with ledger.session() as session:
        phones = subscribers.phones_of(session, next(d.id for d in deliveries if d.channel == "sms"))
    assert len(phones) == 3
    assert batch == {**sample, "audience": digest_of(phones)}
    assert all(d.enqueued_at is not None for d in deliveries)
    # A warning takes the urgent lanes on every channel; its batches to subscribers have their own.
    assert queued(settings) == {"urgent": 4, "urgent-bulk": 1}
    assert names[:2] == ["item.submitted", "item.approved"]
    assert names.count("delivery.pending") == 5


def test_routine_items_go_to_their_channel_queues(ledger: Ledger, settings: Settings) -> None:
    item_id = submitted(
        ledger,
        kind="safety_tip",
        severity=None,
        urgency=None,
        certainty=None,
        channels=["website", "microblog"],
    )
    approval.approve(ledger, settings, item_id, "陈刚", tasks.broker_for(settings))
    assert queued(settings) == {"website": 1, "microblog": 1}


def test_the_author_cannot_approve(ledger: Ledger, settings: Settings) -> None:
    item_id = submitted(ledger)
    with pytest.raises(RefusedError, match="another person must approve"):
        approval.approve(ledger, settings, item_id, " 张敏 ")
    with ledger.session() as session:
        assert session.query(DeliveryRow).count() == 0
        assert session.get(ItemRow, item_id).state is ItemState.submitted


def test_approving_twice_does_not_fan_out_twice(ledger: Ledger, settings: Settings) -> None:
    item_id = submitted(ledger)
    approval.approve(ledger, settings, item_id, "陈刚", tasks.broker_for(settings))
    with pytest.raises(RefusedError, match="already approved .*陈刚.*nothing was sent again"):
        approval.approve(ledger, settings, item_id, "王五")
    with ledger.session() as session:
        assert session.query(DeliveryRow).count() == 5
        assert session.query(ApprovalRow).count() == 1
    assert queued(settings) == {"urgent": 4, "urgent-bulk": 1}


def test_an_expired_item_is_not_approved(ledger: Ledger, settings: Settings) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    item_id = submitted(ledger, expires=soon)
    ledger.shift = timedelta(minutes=2)  # it expired while it waited for review
    with pytest.raises(RefusedError, match="expired"):
        approval.approve(ledger, settings, item_id, "陈刚", tasks.broker_for(settings))


def test_an_item_already_past_its_expiry_is_refused_at_submission(ledger: Ledger, settings: Settings) -> None:
    """Found by a newcomer: it was stored, could never be approved, and (from CAP) used up its alert's id."""
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with pytest.raises(InvalidItemError, match="expires"):
        submitted(ledger, expires=past)
    with ledger.session() as session:
        assert session.query(ItemRow).count() == 0


def test_text_too_long_for_a_sign_is_refused_naming_the_sign(ledger: Ledger, settings: Settings) -> None:
    # BJ-HD-001 (Haidian) shows 2 pages of 2 lines of 10 characters: 40 cells at most.
    item_id = submitted(ledger, areas=["110108"], short_text="长" * 60)
    with pytest.raises(ContentError, match="display target BJ-HD-001: pages is 3, the limit is 2"):
        approval.approve(ledger, settings, item_id, "陈刚", tasks.broker_for(settings))
    with ledger.session() as session:
        assert session.query(DeliveryRow).count() == 0
        assert session.get(ItemRow, item_id).state is ItemState.submitted


def test_an_item_reaching_no_target_is_refused(ledger: Ledger, settings: Settings) -> None:
    item_id = submitted(ledger, areas=["310000"], channels=["display"])
    with pytest.raises(RefusedError, match="reaches no target"):
        approval.approve(ledger, settings, item_id, "陈刚", tasks.broker_for(settings))


def test_unknown_items_are_not_found(ledger: Ledger, settings: Settings) -> None:
    with pytest.raises(NotFoundError, match="no item 42"):
        approval.approve(ledger, settings, 42, "陈刚", tasks.broker_for(settings))


def test_a_rejected_item_cannot_be_approved(ledger: Ledger, settings: Settings) -> None:
    item_id = submitted(ledger)
    approval.reject(ledger, item_id, "陈刚", "wrong district")
    with pytest.raises(RefusedError, match="already rejected"):
        approval.approve(ledger, settings, item_id, "王五")


def test_the_broker_being_down_leaves_deliveries_pending(
    ledger: Ledger, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = settings.model_copy(update={"broker_url": "redis://127.0.0.1:9/0"})
    item_id = submitted(ledger)
    approval.approve(ledger, down, item_id, "陈刚", tasks.broker_for(down))
    with ledger.session() as session:
        deliveries = session.query(DeliveryRow).all()
    assert len(deliveries) == 5
    assert all(d.state is DeliveryState.pending and d.enqueued_at is None for d in deliveries)


def test_the_sweeper_purges_consumed_messages_of_the_embedded_broker(
    ledger: Ledger, settings: Settings
) -> None:
    broker = tasks.broker_for(settings)
    approval.approve(ledger, settings, submitted(ledger), "陈刚", broker)
    path = settings.broker_url.removeprefix("sqla+sqlite:///")
    with sqlite3.connect(path) as db:  # as kombu leaves them once a worker took two of them
        db.execute("UPDATE kombu_message SET visible = 0 WHERE id IN (SELECT id FROM kombu_message LIMIT 2)")
    assert broker.purge_acknowledged() == 2
    assert queued(settings) == {"urgent": 2, "urgent-bulk": 1}


def test_approval_publishes_the_first_batches_and_the_sweeper_the_rest(
    ledger: Ledger, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    monkeypatch.setattr(approval, "PUBLISHED_AT_APPROVAL", 1)
    settings.sms.batch_size = 1  # the three phones in Chaoyang: three batches
    broker = tasks.broker_for(settings)
    result = approval.approve(ledger, settings, submitted(ledger, channels=["sms"]), "陈刚", broker)
    assert result.enqueued == 1
    assert queued(settings) == {"urgent-bulk": 1}
    with ledger.session() as session:
        waiting = [d.id for d in session.query(DeliveryRow).filter(DeliveryRow.enqueued_at.is_(None))]
    assert len(waiting) == 2
    ledger.shift = timedelta(seconds=settings.sweep_interval + 5)  # no longer young
    assert outbox.sweep(ledger, settings, broker) == 2
    assert queued(settings) == {"urgent-bulk": 3}


def test_the_sweeper_does_not_feed_a_backlog(
    ledger: Ledger, settings: Settings, broker: outbox.Broker
) -> None:
    """Found by the fault suite: re-enqueueing unclaimed tasks on a timer multiplied a backlog."""
    from datetime import timedelta

    from sqlalchemy import update

    from dispatcher.ledger import utcnow

    approval.approve(ledger, settings, submitted(ledger), "陈刚", broker)
    with ledger.session() as session:  # published long ago and still not claimed
        session.execute(
            update(DeliveryRow).values(
                enqueued_at=utcnow() - timedelta(minutes=10), created_at=utcnow() - timedelta(minutes=10)
            )
        )
    assert outbox.due(ledger, settings, broker) == []  # their tasks still wait in the queue
    path = settings.broker_url.removeprefix("sqla+sqlite:///")
    with sqlite3.connect(path) as db:  # the broker loses them
        db.execute("DELETE FROM kombu_message")
    assert len(outbox.due(ledger, settings, broker)) == 5


def test_an_unknown_channel_is_refused_at_submit_naming_the_field(ledger: Ledger) -> None:
    """Items name channels from the registry; the core keeps no list of its own."""
    from dispatcher.errors import InvalidItemError

    with pytest.raises(InvalidItemError) as caught:
        submitted(ledger, channels=["website", "microblg"])
    assert dict(caught.value.problems)["channels"].startswith("unknown channel 'microblog'"[:17])
    assert "did you mean 'microblog'" in str(caught.value)
