"""The worker's core, run in the test process against the sandbox emulators and a real ledger."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import requests
from pydantic import SecretStr
from sqlalchemy import delete, insert, update

from dispatcher import approval, outbox
from dispatcher.delivery import claim, deliver
from dispatcher.errors import RefusedError
from dispatcher.items import parse_item
from dispatcher.ledger import (
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RecipientRow,
    RevisionRow,
    record,
    utcnow,
)
from sandbox.server import Sandbox
from settings import RetryBudget, Settings
from tests.support import approved, inject, item_doc, make_due, numbers, received, site_posts, wait_until

WORKER = "test-worker"


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    """Every test here talks to the emulators."""
    return sandboxed


def revoked(settings: Settings) -> Settings:
    """The settings with the microblog account's token revoked at the peer."""
    account = settings.microblog.accounts[0].model_copy(update={"access_token": SecretStr("revoked")})
    return settings.model_copy(
        update={"microblog": settings.microblog.model_copy(update={"accounts": [account]})}
    )


def row(ledger: Ledger, delivery_id: int) -> DeliveryRow:
    with ledger.session() as session:
        return session.get(DeliveryRow, delivery_id)


def set_past(ledger: Ledger, delivery_id: int, column: str) -> None:
    """Move one of the delivery's times a second into the past, as time passing would."""
    with ledger.session() as session:
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == delivery_id)
            .values({column: utcnow() - timedelta(seconds=1)})
        )


def test_every_delivery_is_sent_and_the_item_published(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    deliveries = approved(ledger, settings)
    for d in deliveries:
        assert deliver(ledger, settings, d.id, WORKER) is DeliveryState.sent
    with ledger.session() as session:
        assert session.query(ItemRow).one().state is ItemState.published
        assert {d.state for d in session.query(DeliveryRow)} == {DeliveryState.sent}
        assert session.query(EventRow).filter_by(name="item.published").count() == 1
    for name in ("website", "display", "microblog"):
        assert received(sandbox, name)


def test_a_repeated_task_does_nothing(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.sent
    assert deliver(ledger, settings, website.id, WORKER) is None
    assert len(received(sandbox, "website")) == 1
    assert row(ledger, website.id).attempts == 1


def test_a_delivery_held_under_a_live_lease_is_left_alone(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    with ledger.session() as session:
        session.execute(
            update(DeliveryRow).values(
                state=DeliveryState.sending, lease_until=utcnow() + timedelta(seconds=30)
            )
        )
    assert deliver(ledger, settings, website.id, WORKER) is None
    assert received(sandbox, "website") == []


def test_a_temporary_error_schedules_a_retry_then_succeeds(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    microblog = approved(ledger, settings, channels=["microblog"])[0]
    inject(sandbox, "microblog", mode="status", status=503, retry_after=1)
    assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.retrying
    waiting = row(ledger, microblog.id)
    assert waiting.next_attempt_at > utcnow() + timedelta(seconds=0.5)  # Retry-After honoured
    assert deliver(ledger, settings, microblog.id, WORKER) is None  # not due yet
    make_due(ledger, microblog.id)
    assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.sent
    assert row(ledger, microblog.id).attempts == 2
    assert len(received(sandbox, "microblog")) == 1


def test_the_retry_budget_ends_in_dead(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    microblog = approved(ledger, settings, channels=["microblog"])[0]
    inject(sandbox, "microblog", mode="status", status=500, count=settings.max_attempts)
    for _ in range(settings.max_attempts):
        make_due(ledger, microblog.id)
        state = deliver(ledger, settings, microblog.id, WORKER)
    assert state is DeliveryState.dead
    final = row(ledger, microblog.id)
    assert f"gave up after {settings.max_attempts} attempts" in final.last_error
    with ledger.session() as session:
        assert session.query(ItemRow).one().state is ItemState.failed


def test_waits_the_peer_imposes_spend_no_attempt(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """A rate limit with a time to come back is pacing, not failure: twenty of them kill nothing."""
    microblog = approved(ledger, settings, channels=["microblog"])[0]
    inject(sandbox, "microblog", mode="status", status=429, retry_after=1, count=20)
    for _ in range(20):
        make_due(ledger, microblog.id)
        assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.retrying
        assert row(ledger, microblog.id).attempts == 0
    make_due(ledger, microblog.id)
    assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.sent
    assert row(ledger, microblog.id).attempts == 1
    with ledger.session() as session:
        waits = session.query(EventRow).filter_by(delivery_id=microblog.id, name="delivery.waiting").count()
    assert waits == 20


def test_the_default_budget_outlasts_an_outage(ledger: Ledger, sandbox: Sandbox, settings: Settings) -> None:
    """Twenty failed tries (a site down for many minutes) leave a warning retrying, not dead."""
    default_attempts = Settings.model_fields["max_attempts"].default
    defaults = settings.model_copy(update={"max_attempts": default_attempts, "circuit_failures": 1000})
    assert defaults.budget("website").attempts >= 48
    website = approved(ledger, defaults, channels=["website"])[0]
    inject(sandbox, "website", mode="status", status=503, count=20)
    for _ in range(20):
        make_due(ledger, website.id)
        assert deliver(ledger, defaults, website.id, WORKER) is DeliveryState.retrying
    make_due(ledger, website.id)
    assert deliver(ledger, defaults, website.id, WORKER) is DeliveryState.sent
    # And the schedule itself spans hours: even the shortest draws of the backoff add up to over 1.5 h.
    plain = Settings(retry_base_seconds=2.0, retry_max_seconds=300.0, max_attempts=default_attempts)
    shortest = sum(
        min(plain.retry_max_seconds, plain.retry_base_seconds * 2 ** (n - 1)) / 2
        for n in range(1, plain.budget("website").attempts)
    )
    assert shortest > 1.5 * 3600


def test_a_permanent_error_fails_at_once_with_the_reason(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    microblog = approved(ledger, settings, channels=["microblog", "website"])
    broken = revoked(settings)
    states = {d.channel: deliver(ledger, broken, d.id, WORKER) for d in microblog}
    assert states == {"microblog": DeliveryState.failed, "website": DeliveryState.sent}
    failed = next(row(ledger, d.id) for d in microblog if d.channel == "microblog")
    assert "21332" in failed.last_error and failed.attempts == 1
    assert "revoked" not in failed.last_error
    with ledger.session() as session:
        assert session.query(ItemRow).one().state is ItemState.partially_published


def test_a_lost_answer_is_reconciled_by_lookup_not_resent(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    inject(sandbox, "website", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.unknown
    make_due(ledger, website.id)
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.sent
    posts = requests.get(f"{sandbox.urls['website']}/_sandbox/posts", timeout=5).json()
    assert len(posts) == 1
    assert len(received(sandbox, "website")) == 1  # one create, no second write
    with ledger.session() as session:
        sent = session.query(EventRow).filter_by(name="delivery.sent").one()
    assert sent.detail["found_by_lookup"] is True


def test_a_lapsed_lease_is_swept_and_looked_up(
    ledger: Ledger, settings: Settings, sandbox: Sandbox, broker: outbox.Broker
) -> None:
    """A worker killed mid-send leaves `sending` with a lease; after it lapses the sweeper re-enqueues."""
    website = approved(ledger, settings, channels=["website"])[0]
    from channels import build_channel
    from channels.base import Payload

    build_channel("website", settings).send(
        Payload("website", "site", website.payload), website.idempotency_key
    )
    with ledger.session() as session:  # the worker died after sending, before recording
        session.execute(
            update(DeliveryRow).values(
                state=DeliveryState.sending, attempts=1, lease_until=utcnow() - timedelta(seconds=1)
            )
        )
    assert (website.id, "urgent") in outbox.due(ledger, settings, broker)
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.sent
    assert len(received(sandbox, "website")) == 1


def test_a_tampered_payload_is_not_sent(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    with ledger.session() as session:
        session.execute(update(DeliveryRow).values(payload={**website.payload, "title": "changed"}))
    assert deliver(ledger, settings, website.id, WORKER) is None
    assert row(ledger, website.id).state is DeliveryState.failed
    assert received(sandbox, "website") == []


def test_a_forged_payload_with_a_recomputed_plain_digest_is_not_sent(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Whoever can edit the ledger can recompute a SHA-256; not the keyed pin, whose key is elsewhere."""
    import hashlib
    import json

    website = approved(ledger, settings, channels=["website"])[0]
    forged = {**website.payload, "title": "FAKE ALERT / EVACUATE NOW"}
    canonical = json.dumps(forged, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    with ledger.session() as session:
        session.execute(
            update(DeliveryRow).values(
                payload=forged, payload_digest=hashlib.sha256(canonical.encode()).hexdigest()
            )
        )
    assert deliver(ledger, settings, website.id, WORKER) is None
    assert "approval pin" in row(ledger, website.id).last_error
    assert received(sandbox, "website") == []


def test_an_unknown_delivery_id_is_dropped(ledger: Ledger, settings: Settings) -> None:
    assert deliver(ledger, settings, 999, WORKER) is None


def test_the_sweeper_finds_pending_deliveries_never_enqueued(
    ledger: Ledger, settings: Settings, broker: outbox.Broker
) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["website"])))
    approval.approve(ledger, settings, item_id, "陈刚", broker)
    with ledger.session() as session:
        deliveries = session.query(DeliveryRow).filter_by(item_id=item_id).all()
    assert outbox.due(ledger, settings, broker) == []  # just enqueued
    with ledger.session() as session:
        session.execute(
            update(DeliveryRow).values(enqueued_at=None, created_at=utcnow() - timedelta(seconds=10))
        )
    assert outbox.due(ledger, settings, broker) == [(deliveries[0].id, "urgent")]


def test_revoked_credentials_raise_a_channel_alert(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    microblog = approved(ledger, settings, channels=["microblog"])[0]
    assert deliver(ledger, revoked(settings), microblog.id, WORKER) is DeliveryState.failed
    with ledger.session() as session:
        alert = session.query(EventRow).filter_by(name="channel.alert").one()
    assert alert.detail["channel"] == "microblog" and "21332" in alert.detail["error"]


def test_a_status_posted_before_its_answer_was_lost_is_found_not_failed(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    microblog = approved(ledger, settings, channels=["microblog"])[0]
    inject(sandbox, "microblog", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.unknown
    make_due(ledger, microblog.id)
    assert deliver(ledger, settings, microblog.id, WORKER) is DeliveryState.sent
    shares = [r for r in received(sandbox, "microblog") if r["action"] == "share"]
    assert len(shares) == 1
    assert row(ledger, microblog.id).provider_id == shares[0]["id"]


def test_a_routine_message_waits_for_a_warning_to_end(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    warning = approved(ledger, settings, channels=["display"])
    for d in warning:
        assert deliver(ledger, settings, d.id, WORKER) is DeliveryState.sent
    tip = approved(
        ledger,
        settings,
        channels=["display"],
        kind="safety_tip",
        severity=None,
        urgency=None,
        certainty=None,
        title="冬季用电安全",
    )
    assert deliver(ledger, settings, tip[0].id, WORKER) is DeliveryState.retrying
    waiting = row(ledger, tip[0].id)
    assert "preempted" in waiting.last_error
    assert waiting.next_attempt_at > utcnow() + timedelta(hours=20)  # the warning runs a day
    shown = requests.get(f"{sandbox.urls['display']}/signs/{tip[0].target}/message", timeout=5).json()
    assert shown["priority"] == 200


TIP = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None, "topics": ["safety"]}


def lose_sms_answer(ledger: Ledger, settings: Settings, sandbox: Sandbox, **changes: Any) -> DeliveryRow:
    sms = approved(ledger, settings, channels=["sms"], **changes)[0]
    inject(sandbox, "sms", mode="lost", seconds=3, path="/cgi-bin/sendsms")
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.unknown
    make_due(ledger, sms.id)
    return sms


def test_an_unknown_sms_warning_is_repeated_and_the_ledger_says_so(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sms = lose_sms_answer(ledger, settings, sandbox)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.sent
    assert len(received(sandbox, "sms")) == 2 * len(numbers(ledger, sms))  # the policy allowed a repeat
    with ledger.session() as session:
        sent = session.query(EventRow).filter_by(name="delivery.sent", delivery_id=sms.id).one()
    assert sent.detail["how"] == "repeated"


def test_an_unknown_routine_sms_is_not_repeated(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    sms = lose_sms_answer(ledger, settings, sandbox, **TIP)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed
    assert len(received(sandbox, "sms")) == len(numbers(ledger, sms))  # sent once, never again
    assert "policy for a safety_tip is not to repeat" in row(ledger, sms.id).last_error
    with ledger.session() as session:
        failed = session.query(EventRow).filter_by(name="delivery.failed", delivery_id=sms.id).one()
    assert failed.detail["policy"] == "do not repeat"


def test_delivery_reports_settle_an_unknown_sms_without_a_repeat(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    from dispatcher import subscribers

    sms = lose_sms_answer(ledger, settings, sandbox)
    phone = numbers(ledger, sms)[0]
    with ledger.session() as session:
        subscribers.apply_report(session, sms.idempotency_key, phone, 8)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.sent
    assert len(received(sandbox, "sms")) == len(numbers(ledger, sms))
    with ledger.session() as session:
        sent = session.query(EventRow).filter_by(name="delivery.sent", delivery_id=sms.id).one()
    assert sent.detail["how"] == "reports"


def test_a_channel_budget_in_attempts(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    tight = settings.model_copy(
        update={"retry_budgets": {"microblog": RetryBudget(attempts=2, seconds=3600)}}
    )
    microblog = approved(ledger, tight, channels=["microblog"])[0]
    inject(sandbox, "microblog", mode="status", status=503, count=5)
    assert deliver(ledger, tight, microblog.id, WORKER) is DeliveryState.retrying
    make_due(ledger, microblog.id)
    assert deliver(ledger, tight, microblog.id, WORKER) is DeliveryState.dead


def test_a_channel_budget_in_time(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    tight = settings.model_copy(update={"retry_budgets": {"microblog": RetryBudget(attempts=50, seconds=60)}})
    microblog = approved(ledger, tight, channels=["microblog"])[0]
    with ledger.session() as session:  # approved two minutes ago
        session.execute(update(DeliveryRow).values(created_at=utcnow() - timedelta(minutes=2)))
    inject(sandbox, "microblog", mode="status", status=503)
    assert deliver(ledger, tight, microblog.id, WORKER) is DeliveryState.dead
    assert "gave up after 1 attempts" in row(ledger, microblog.id).last_error


def test_redrive_gives_dead_deliveries_a_new_budget_and_names_the_operator(
    ledger: Ledger, sandbox: Sandbox, settings: Settings
) -> None:
    from dispatcher.outbox import redrive

    settings = settings.model_copy(update={"circuit_failures": 50})  # about budgets, not circuits

    microblog = approved(ledger, settings, channels=["microblog", "website"])
    dead = next(d for d in microblog if d.channel == "microblog")
    website = next(d for d in microblog if d.channel == "website")
    deliver(ledger, settings, website.id, WORKER)
    inject(sandbox, "microblog", mode="status", status=500, count=settings.max_attempts)
    for _ in range(settings.max_attempts):
        make_due(ledger, dead.id)
        deliver(ledger, settings, dead.id, WORKER)
    with ledger.session() as session:
        assert session.query(ItemRow).one().state is ItemState.partially_published
    assert redrive(ledger, None, "运维 李雷", channel="microblog") == [dead.id]
    with ledger.session() as session:
        event = session.query(EventRow).filter_by(name="delivery.redriven").one()
        assert session.query(ItemRow).one().state is ItemState.approved
    assert event.actor == "运维 李雷" and event.detail["previous_attempts"] == settings.max_attempts
    assert deliver(ledger, settings, dead.id, WORKER) is DeliveryState.sent
    with ledger.session() as session:
        assert session.query(ItemRow).one().state is ItemState.published
    assert redrive(ledger, None, "运维 李雷") == []


def test_doubt_survives_a_temporary_error_until_it_is_settled(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found by the fault suite: an in-doubt SMS whose repeat met a 429 was later sent blindly."""
    sms = lose_sms_answer(ledger, settings, sandbox)  # the first send's answer is lost
    inject(sandbox, "sms", mode="status", status=429, retry_after=1)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.unknown  # not "retrying"
    make_due(ledger, sms.id)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.sent
    with ledger.session() as session:
        sent = session.query(EventRow).filter_by(name="delivery.sent", delivery_id=sms.id).one()
    assert sent.detail["how"] == "repeated"  # the second text to each phone is on the record


def test_a_stray_task_does_not_cut_an_unknown_outcome_s_wait(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    inject(sandbox, "website", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.unknown
    assert deliver(ledger, settings, website.id, WORKER) is None  # not due yet
    assert row(ledger, website.id).attempts == 1


def test_a_sign_in_local_control_makes_the_warning_wait_with_an_alert(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    deliveries = approved(ledger, settings, channels=["display"])
    first = next(d for d in deliveries if d.target == "BJ-CY-001")
    control = f"{sandbox.urls['display']}/_sandbox/signs/BJ-CY-001/control"
    requests.post(control, json={"mode": "local"}, timeout=5).raise_for_status()
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.retrying
    assert row(ledger, first.id).attempts == 0
    with ledger.session() as session:
        alert = session.query(EventRow).filter_by(name="channel.alert", delivery_id=first.id).one()
    assert "local control" in alert.detail["error"]
    requests.post(control, json={"mode": "central"}, timeout=5).raise_for_status()
    make_due(ledger, first.id)
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.sent


def lapse(ledger: Ledger, delivery_id: int) -> None:
    set_past(ledger, delivery_id, "lease_until")


def test_a_worker_killed_between_claim_and_request_left_nothing_in_doubt(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """The attempt died before its request left (no ``delivery.requesting``): the routine text is sent,
    not failed by the do-not-repeat policy."""
    sms = approved(ledger, settings, channels=["sms"], **TIP)[0]
    assert claim(ledger, settings, sms.id, "killed-worker", lambda name: name == "sms") is not None
    lapse(ledger, sms.id)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.sent
    assert len(received(sandbox, "sms")) == len(numbers(ledger, sms))


def killed_after_its_request(ledger: Ledger, settings: Settings) -> DeliveryRow:
    """A routine SMS whose worker recorded ``delivery.requesting`` and then died (its lease lapsed)."""
    sms = approved(ledger, settings, channels=["sms"], **TIP)[0]
    taken = claim(ledger, settings, sms.id, "killed-worker", lambda name: name == "sms")
    assert taken is not None
    with ledger.session() as session:
        record(
            session, "delivery.requesting", actor="killed-worker", delivery_id=sms.id, attempt=taken.attempt
        )
    lapse(ledger, sms.id)
    return sms


def test_a_worker_killed_after_its_request_left_leaves_the_text_in_doubt(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sms = killed_after_its_request(ledger, settings)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed
    assert "not to repeat" in row(ledger, sms.id).last_error


def test_an_operator_redrives_a_failed_delivery_with_a_reason(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sms = lose_sms_answer(ledger, settings, sandbox, **TIP)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed
    with pytest.raises(RefusedError, match="reason"):
        outbox.redrive(ledger, None, "运维 李雷", failed=True)
    assert outbox.redrive(ledger, None, "运维 李雷") == []  # dead only, by default
    with pytest.raises(RefusedError, match="--item or --channel"):
        outbox.redrive(ledger, None, "运维 李雷", failed=True, reason="checked with the carrier")
    redriven = outbox.redrive(
        ledger, None, "运维 李雷", failed=True, reason="checked with the carrier", item_id=sms.item_id
    )
    assert redriven == [sms.id]
    with ledger.session() as session:
        event = session.query(EventRow).filter_by(name="delivery.redriven", delivery_id=sms.id).one()
    assert event.detail["reason"] == "checked with the carrier" and event.detail["previous_state"] == "failed"
    assert row(ledger, sms.id).state is DeliveryState.pending


def expire(ledger: Ledger, item_id: int) -> None:
    """The item's expiry moves into the past, as time passing would (the document, not the payloads)."""
    with ledger.session() as session:
        revision = session.query(RevisionRow).filter_by(item_id=item_id).one()
        revision.document = {**revision.document, "expires": (utcnow() - timedelta(seconds=36)).isoformat()}


def test_an_item_that_expired_while_it_waited_is_never_sent(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    deliveries = approved(ledger, settings)
    expire(ledger, deliveries[0].item_id)
    for d in deliveries:
        assert deliver(ledger, settings, d.id, WORKER) is None
    with ledger.session() as session:
        assert {d.state for d in session.query(DeliveryRow)} == {DeliveryState.expired}
        assert session.query(ItemRow).one().state is ItemState.expired
        assert session.query(EventRow).filter_by(name="delivery.expired").count() == len(deliveries)
    assert all(received(sandbox, name) == [] for name in ("website", "sms", "display", "microblog"))


def test_a_wait_behind_a_warning_ends_at_the_items_own_expiry(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """A safety tip behind a sign's year-long warning waits until its own expiry, then ends expired."""
    year = (utcnow() + timedelta(days=365)).isoformat()
    warning = next(
        d for d in approved(ledger, settings, channels=["display"], expires=year) if d.target == "BJ-CY-001"
    )
    assert deliver(ledger, settings, warning.id, WORKER) is DeliveryState.sent
    soon = (utcnow() + timedelta(hours=2)).isoformat()
    tip = next(
        d
        for d in approved(ledger, settings, channels=["display"], expires=soon, **TIP)
        if d.target == "BJ-CY-001"
    )
    assert deliver(ledger, settings, tip.id, WORKER) is DeliveryState.retrying
    assert row(ledger, tip.id).next_attempt_at <= utcnow() + timedelta(hours=2)
    expire(ledger, tip.item_id)
    make_due(ledger, tip.id)
    assert deliver(ledger, settings, tip.id, WORKER) is None
    assert row(ledger, tip.id).state is DeliveryState.expired


def test_a_create_that_outlives_the_timeout_is_waited_for_not_doubled(
    ledger: Ledger, sandbox: Sandbox, settings: Settings
) -> None:
    """The server acts after the client gave up (2 s timeout, 3 s of work): the retry's lookup finds
    nothing yet, and the delivery waits out the processing window instead of creating a second post."""
    slow = settings.model_copy(update={"processing_window": 20})
    website = approved(ledger, slow, channels=["website"])[0]
    inject(sandbox, "website", mode="delay", seconds=3, method="POST", path="/wp-json/wp/v2/posts")
    assert deliver(ledger, slow, website.id, WORKER) is DeliveryState.unknown
    make_due(ledger, website.id)
    assert deliver(ledger, slow, website.id, WORKER) is DeliveryState.unknown  # not found yet: waits
    assert "processing window" in row(ledger, website.id).last_error
    wait_until(lambda: site_posts(sandbox), what="the slow create to land")
    make_due(ledger, website.id)
    assert deliver(ledger, slow, website.id, WORKER) is DeliveryState.sent
    assert len(site_posts(sandbox)) == 1 and row(ledger, website.id).provider_id == str(
        site_posts(sandbox)[0]["id"]
    )


def test_a_second_copy_found_by_lookup_is_removed_on_the_record(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    website = approved(ledger, settings, channels=["website"])[0]
    auth = (settings.website.username, settings.website.app_password.get_secret_value())
    body = {k: v for k, v in website.payload.items() if k != "link"}
    for _ in range(2):  # two copies landed (a slow create after its retry)
        requests.post(f"{sandbox.urls['website']}/wp-json/wp/v2/posts", json=body, auth=auth, timeout=5)
    assert deliver(ledger, settings, website.id, WORKER) is DeliveryState.sent
    live = [p for p in site_posts(sandbox) if p["status"] != "trash"]
    assert len(live) == 1 and row(ledger, website.id).provider_id == str(live[0]["id"])
    with ledger.session() as session:
        removed = session.query(EventRow).filter_by(name="delivery.duplicate_removed").one()
    assert removed.detail["kept"] == str(live[0]["id"])


def test_a_second_lost_answer_opens_its_own_processing_window(
    ledger: Ledger, sandbox: Sandbox, settings: Settings
) -> None:
    """Waits and re-drives reuse attempt numbers: the window counts from the request now in doubt,
    never from an earlier claim that happened to carry the same number."""
    quick = settings.model_copy(update={"processing_window": 4})
    website = approved(ledger, quick, channels=["website"])[0]
    inject(sandbox, "website", mode="reset", method="POST", path="/wp-json/wp/v2/posts")  # nothing lands
    assert deliver(ledger, quick, website.id, WORKER) is DeliveryState.unknown
    make_due(ledger, website.id)
    assert deliver(ledger, quick, website.id, WORKER) is DeliveryState.unknown  # waits the window out
    ledger.shift = timedelta(seconds=4.2)  # the window passes on the flow's clock
    # The window is over: this attempt sends, and its create outlives the client (acts after 3 s).
    inject(sandbox, "website", mode="delay", seconds=3, method="POST", path="/wp-json/wp/v2/posts")
    make_due(ledger, website.id)
    assert deliver(ledger, quick, website.id, WORKER) is DeliveryState.unknown
    make_due(ledger, website.id)
    assert deliver(ledger, quick, website.id, WORKER) is DeliveryState.unknown  # a new window, not none
    assert "processing window" in row(ledger, website.id).last_error
    wait_until(lambda: site_posts(sandbox), what="the slow create to land")
    ledger.shift += timedelta(seconds=4.2)  # and the second window passes too
    make_due(ledger, website.id)
    assert deliver(ledger, quick, website.id, WORKER) is DeliveryState.sent
    assert len(site_posts(sandbox)) == 1


def test_after_a_redrive_an_attempt_killed_before_its_request_is_not_in_doubt(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    sms = killed_after_its_request(ledger, settings)
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed  # in doubt: policy
    outbox.redrive(ledger, None, "运维 李雷", failed=True, reason="confirmed not sent", item_id=sms.item_id)
    assert claim(ledger, settings, sms.id, "killed-again", lambda name: name == "sms") is not None
    lapse(ledger, sms.id)  # killed again, this time before the request: the old mark does not count
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.sent


def test_a_pinned_payload_copied_onto_another_delivery_is_refused(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    first = approved(ledger, settings, channels=["microblog"])[0]
    second = approved(ledger, settings, channels=["microblog"], title="另一条预警")[0]
    with ledger.session() as session:
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == second.id)
            .values(payload=first.payload, payload_digest=first.payload_digest)
        )
    assert deliver(ledger, settings, second.id, WORKER) is None
    assert "approval pin" in row(ledger, second.id).last_error


@pytest.mark.parametrize("change", ["add a number", "remove a number", "swap a number"])
def test_a_batch_whose_numbers_were_altered_in_the_ledger_is_refused(
    ledger: Ledger, settings: Settings, sandbox: Sandbox, change: str
) -> None:
    sms = approved(ledger, settings, channels=["sms"])[0]
    phones = numbers(ledger, sms)
    with ledger.session() as session:
        table = RecipientRow.__table__
        if change == "add a number":
            session.execute(insert(table).values(delivery_id=sms.id, phone="+8613900000999", state="pending"))
        elif change == "remove a number":
            session.execute(delete(table).where(table.c.phone == phones[-1]))
        else:
            session.execute(update(table).where(table.c.phone == phones[0]).values(phone="+8613900000999"))
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed
    assert "approved" in row(ledger, sms.id).last_error
    assert received(sandbox, "sms") == []
    with ledger.session() as session:  # refused before the request could leave: nothing in doubt
        names = [e.name for e in session.query(EventRow).filter_by(delivery_id=sms.id)]
    assert "delivery.requesting" not in names


def test_a_sign_message_with_under_a_minute_left_ends_expired(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    soon = (utcnow() + timedelta(seconds=40)).isoformat()
    sign = approved(ledger, settings, channels=["display"], expires=soon)[0]
    assert deliver(ledger, settings, sign.id, WORKER) is DeliveryState.expired
    assert received(sandbox, "display") == []


def test_a_worker_killed_while_settling_a_doubt_leaves_the_doubt(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found by the full fault suite: the claim settling an unknown SMS died before it decided; the next
    attempt must not take the text for never sent (it was: twenty phones got it twice)."""
    sms = lose_sms_answer(ledger, settings, sandbox, **TIP)
    make_due(ledger, sms.id)
    settling = claim(ledger, settings, sms.id, "killed-worker", lambda name: name == "sms")
    assert settling is not None and settling.in_doubt
    lapse(ledger, sms.id)  # killed before it asked anything
    assert deliver(ledger, settings, sms.id, WORKER) is DeliveryState.failed
    assert "not to repeat" in row(ledger, sms.id).last_error
    assert len(received(sandbox, "sms")) == len(numbers(ledger, sms))  # once, never twice
