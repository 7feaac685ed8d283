"""Rate limits and circuit breakers, shared through the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from dispatcher.circuits import not_closed
from dispatcher.delivery import deliver
from dispatcher.ledger import CircuitRow, DeliveryRow, DeliveryState, EventRow, Ledger, utcnow
from dispatcher.ratelimits import take
from settings import Settings, SettingsError, load_settings, parse_rate
from tests.support import FakeChannel, approved, make_due

WORKER = "test-worker"


@pytest.mark.parametrize(
    ("text", "expected"), [("20/s", (20, 20)), ("30/h", (30, 30 / 3600)), ("6/m", (6, 0.1))]
)
def test_rates_parse(text: str, expected: tuple[float, float]) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["fast", "0/s", "10/d"])
def test_a_bad_rate_stops_the_settings_naming_the_variable(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(text)
    with pytest.raises(SettingsError, match="DISPATCH_RATE_LIMITS: .*sms"):
        load_settings(rate_limits={"sms": text})


def test_a_bucket_refills_at_its_rate(ledger: Ledger) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    limits = {"sms": "2/s"}
    with ledger.session() as session:
        assert take(session, limits, "sms", "batch-001", start) == 0
        assert take(session, limits, "sms", "batch-002", start) == 0
        assert take(session, limits, "sms", "batch-003", start) == pytest.approx(0.5)
        assert take(session, limits, "sms", "batch-003", start + timedelta(seconds=0.5)) == 0
        assert take(session, limits, "website", "site", start) == 0  # no limit for the website


def test_a_rate_limited_delivery_waits_without_spending_an_attempt(
    ledger: Ledger, settings: Settings
) -> None:
    fake = FakeChannel()
    limited = settings.model_copy(update={"rate_limits": {"display": "1/h"}})
    first, second = approved(ledger, limited, channels=["display"])
    assert deliver(ledger, limited, first.id, WORKER, fake.named) is DeliveryState.sent
    assert deliver(ledger, limited, second.id, WORKER, fake.named) is None
    assert fake.asked("send") == [first.idempotency_key]  # the second never reached the peer
    with ledger.session() as session:
        waiting = session.get(DeliveryRow, second.id)
    assert waiting.state is DeliveryState.retrying and waiting.attempts == 0
    assert "rate limited" in waiting.last_error
    assert waiting.next_attempt_at > utcnow() + timedelta(minutes=50)


def test_a_failing_target_opens_its_circuit_and_a_trial_closes_it(ledger: Ledger, settings: Settings) -> None:
    fake = FakeChannel()
    breaker = settings.model_copy(update={"circuit_failures": 2, "circuit_cooldown": 60})
    microblog = approved(ledger, breaker, channels=["microblog"])[0]
    fake.fail_temporarily(times=2)
    deliver(ledger, breaker, microblog.id, WORKER, fake.named)
    make_due(ledger)
    deliver(ledger, breaker, microblog.id, WORKER, fake.named)
    with ledger.session() as session:
        circuit = session.get(CircuitRow, ("microblog", "sandbox"))
        assert circuit.state == "open"
        assert session.query(EventRow).filter_by(name="circuit.opened").count() == 1
    make_due(ledger)
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is None  # resting: no attempt
    assert len(fake.asked("send")) == 2  # … and nothing asked of the peer
    with ledger.session() as session:
        assert session.get(DeliveryRow, microblog.id).attempts == 2
        session.execute(update(CircuitRow).values(open_until=utcnow() - timedelta(seconds=1)))
    make_due(ledger)
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.sent  # the trial
    assert len(fake.asked("send")) == 3 and list(fake.landed) == [microblog.idempotency_key]
    with ledger.session() as session:
        assert session.get(CircuitRow, ("microblog", "sandbox")).state == "closed"
        assert session.query(EventRow).filter_by(name="circuit.closed").count() == 1


def test_a_failed_trial_opens_the_circuit_again(ledger: Ledger, settings: Settings) -> None:
    fake = FakeChannel()
    breaker = settings.model_copy(update={"circuit_failures": 1})
    microblog = approved(ledger, breaker, channels=["microblog"])[0]
    fake.fail_temporarily(times=2)
    deliver(ledger, breaker, microblog.id, WORKER, fake.named)
    with ledger.session() as session:
        session.execute(update(CircuitRow).values(open_until=utcnow() - timedelta(seconds=1)))
    make_due(ledger)
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.retrying
    with ledger.session() as session:
        circuit = session.get(CircuitRow, ("microblog", "sandbox"))
    assert circuit.state == "open" and circuit.open_until > utcnow()
    assert fake.asked("send") == [microblog.idempotency_key] * 2 and not fake.landed


def test_waits_the_peer_imposes_open_no_circuit(ledger: Ledger, settings: Settings) -> None:
    """A peer pacing us (429 with Retry-After, a sign busy with a warning) is not failing."""
    fake = FakeChannel()
    breaker = settings.model_copy(update={"circuit_failures": 1})
    microblog = approved(ledger, breaker, channels=["microblog"])[0]
    fake.fail_temporarily(times=3, code=429, retry_after=1, wait=True)
    for _ in range(3):
        assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.retrying
        make_due(ledger)
    assert len(fake.asked("send")) == 3
    with ledger.session() as session:
        assert session.query(EventRow).filter_by(name="circuit.opened").count() == 0
        assert session.get(DeliveryRow, microblog.id).attempts == 0


def test_a_permanent_refusal_is_the_items_problem_and_opens_no_circuit(
    ledger: Ledger, settings: Settings
) -> None:
    fake = FakeChannel()
    breaker = settings.model_copy(update={"circuit_failures": 1})
    microblog = approved(ledger, breaker, channels=["microblog"])[0]
    fake.fail_permanently()
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.failed
    with ledger.session() as session:
        assert not_closed(session) == []
        assert session.query(EventRow).filter_by(name="circuit.opened").count() == 0


def test_a_lost_answer_opens_the_circuit_and_the_trial_looks_it_up_instead_of_sending_again(
    ledger: Ledger, settings: Settings
) -> None:
    fake = FakeChannel()
    breaker = settings.model_copy(update={"circuit_failures": 1})
    microblog = approved(ledger, breaker, channels=["microblog"])[0]
    fake.lose_answers()
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.unknown
    with ledger.session() as session:
        assert session.get(CircuitRow, ("microblog", "sandbox")).state == "open"
        session.execute(update(CircuitRow).values(open_until=utcnow() - timedelta(seconds=1)))
    make_due(ledger)
    assert deliver(ledger, breaker, microblog.id, WORKER, fake.named) is DeliveryState.sent
    assert fake.asked("send") == [microblog.idempotency_key]  # once: the trial found it
    assert fake.asked("lookup") == [microblog.idempotency_key]
    with ledger.session() as session:
        assert session.get(CircuitRow, ("microblog", "sandbox")).state == "closed"


def test_channels_lists_open_circuits(ledger: Ledger, settings: Settings) -> None:
    from click.testing import CliRunner

    from dispatcher.cli import cli

    with ledger.session() as session:
        session.add(
            CircuitRow(
                channel="display",
                target="BJ-CY-001",
                state="open",
                failures=5,
                open_until=utcnow() + timedelta(minutes=1),
                last_error="504",
            )
        )
    result = CliRunner().invoke(cli, ["channels"], obj=settings)
    assert "circuits not closed" in result.stdout and "BJ-CY-001" in result.stdout
