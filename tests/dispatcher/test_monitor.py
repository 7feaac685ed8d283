"""Channel health: the rule, one alert per change under a flapping emulator, concurrent checks, the
alerts' routes (a signed webhook on a loopback receiver, the SMS emulator), overdue deliveries and the
page's numbers on a ledger built for them."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.wrappers import Request, Response

from channels import build_channel
from channels.base import Channel
from dispatcher import monitor
from dispatcher.ledger import (
    Action,
    ApprovalRow,
    ChannelHealthRow,
    CircuitRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    HealthChangeRow,
    ItemRow,
    ItemState,
    Ledger,
    OpsAlertRow,
    RevisionRow,
)
from dispatcher.serving import Running, serve_in_thread
from dispatcher.words import Health
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import merged, pointed_at, received

SECRET = "webhook secret for the test"
ONCALL = ["13800138000", "13900139000"]
T0 = datetime(2025, 3, 10, 2, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A loopback webhook endpoint recording every POST; answers with the statuses it is told first."""

    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    running: Running | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.posts.append((dict(request.headers), request.get_data()))
        status = self.answers.pop(0) if self.answers else 204
        return Response(status=status)(environ, start_response)

    @property
    def url(self) -> str:
        assert self.running is not None
        return f"http://127.0.0.1:{self.running.port}/hooks/dispatch"

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    hook.running = serve_in_thread(hook, "127.0.0.1", 0, "webhook-receiver")
    yield hook
    hook.running.stop()


@pytest.fixture
def alerting(values: dict[str, Any], sandbox: Sandbox, receiver: Receiver) -> Settings:
    """Every channel at the emulators, alerts to the receiver and two on-call phones."""
    return load_settings(
        **merged(
            values,
            pointed_at(sandbox),
            alerts={"webhook_url": receiver.url, "webhook_secret": SECRET, "oncall": ONCALL},
        )
    )


def watched(settings: Settings) -> tuple[Ledger, Callable[[str], Channel]]:
    """The ledger of ``settings`` and the adapters a check probes (the emulators the settings name)."""
    return Ledger(settings.ledger_url), lambda name: build_channel(name, settings)


def texts(sandbox: Sandbox) -> list[dict[str, Any]]:
    """What the SMS emulator delivered to the on-call phones."""
    return [
        entry for entry in received(sandbox, "sms") if entry["to"] in ("+8613800138000", "+8613900139000")
    ]


def changes_of(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    with ledger.session() as session:
        return [
            (c.channel, c.target, c.from_state, c.to_state)
            for c in session.scalars(select(HealthChangeRow).order_by(HealthChangeRow.id))
        ]


def alerts_of(ledger: Ledger) -> list[tuple[str, str, str]]:
    with ledger.session() as session:
        return [
            (a.source, a.route, a.state)
            for a in session.scalars(select(OpsAlertRow).order_by(OpsAlertRow.id))
        ]


def test_a_flapping_emulator_alerts_once_per_change_on_each_route(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger = Ledger(alerting.ledger_url)
    channels: dict[str, Channel] = {}

    def channel_for(name: str) -> Channel:
        return channels.setdefault(name, build_channel(name, alerting))

    now = T0

    def tick() -> list[monitor.Change]:
        nonlocal now
        now += timedelta(seconds=30)
        found = monitor.check(ledger, alerting, channel_for, now=now)
        monitor.send_alerts(ledger, alerting, channel_for, now=now)
        return found

    assert tick() == []  # every channel healthy at first sight: nothing to tell
    for _ in range(2):
        sandbox.pause("website")
        down = [tick() for _ in range(4)]  # one probe interval, then three more failing probes
        assert [[(c.channel, c.to_state) for c in found] for found in down] == [
            [("website", "down")],
            [],
            [],
            [],
        ]
        sandbox.resume("website")
        up = [tick() for _ in range(3)]
        assert [[(c.channel, c.to_state) for c in found] for found in up] == [
            [("website", "healthy")],
            [],
            [],
        ]

    assert (
        changes_of(ledger)
        == [
            ("website", "*", "healthy", "down"),
            ("website", "*", "down", "healthy"),
        ]
        * 2
    )
    hooks = receiver.bodies()
    assert [(b["channel"], b["from"], b["to"]) for b in hooks] == [
        ("website", "healthy", "down"),
        ("website", "down", "healthy"),
    ] * 2
    phoned = texts(sandbox)
    assert len(phoned) == 4 * len(ONCALL)  # four changes, each texted once to each phone
    assert ["中断" in t["text"] for t in phoned[:: len(ONCALL)]] == [True, False, True, False]
    assert all(t["text"].startswith("【调度告警】website") for t in phoned)
    with ledger.session() as session:
        events = session.scalars(select(EventRow.name).where(EventRow.name.like("channel.%"))).all()
        assert events == ["channel.down", "channel.up"] * 2
        assert session.scalar(select(func.count()).where(EventRow.name == "alert.sent")) == 8
    ledger.dispose()


def test_the_webhook_is_signed_over_its_exact_body(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    monitor.check(ledger, alerting, channel_for, now=T0)
    sandbox.pause("display")
    try:
        monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    finally:
        sandbox.resume("display")
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30)) == 2
    [(headers, body)] = receiver.posts
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Dispatch-Signature"], expected)
    wrong = "sha256=" + hmac.new(b"another secret", body, hashlib.sha256).hexdigest()
    assert headers["X-Dispatch-Signature"] != wrong
    signed = json.loads(body)
    assert signed["to"] == "down" and signed["key"] == headers["Idempotency-Key"]
    assert signed["sent_at"] == (T0 + timedelta(seconds=30)).isoformat()  # a replay shows its age
    ledger.dispose()


def test_an_alert_text_goes_once_however_often_alerts_are_sent(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    monitor.check(ledger, alerting, channel_for, now=T0)
    sandbox.pause("microblog")
    monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    sandbox.resume("microblog")
    later = T0 + timedelta(seconds=31)
    assert monitor.send_alerts(ledger, alerting, channel_for, now=later) == 2
    assert monitor.send_alerts(ledger, alerting, channel_for, now=later) == 0
    # Another sender runs while this one is in the middle of sending (the beat and the page at once):
    # each alert is claimed by one of them.
    monitor.check(ledger, alerting, channel_for, now=later)  # back up: two more alerts
    other = Ledger(alerting.ledger_url)
    nested: list[int] = []

    class Meanwhile:
        def post(self, *args: Any, **kwargs: Any) -> requests.Response:
            if not nested:
                nested.append(monitor.send_alerts(other, alerting, channel_for, now=later))
            return requests.post(*args, **kwargs)

    assert monitor.send_alerts(ledger, alerting, channel_for, session=Meanwhile(), now=later) == 1
    assert nested == [1]  # the text: the webhook's alert was this sender's
    other.dispose()
    assert len(texts(sandbox)) == 2 * len(ONCALL)
    assert len(receiver.posts) == 2
    assert [state for _, _, state in alerts_of(ledger)] == ["sent"] * 4
    ledger.dispose()


def test_the_webhook_still_goes_while_the_sms_channel_is_down_and_the_text_follows(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    monitor.check(ledger, alerting, channel_for, now=T0)
    sandbox.pause("sms")
    [change] = monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    assert (change.channel, change.to_state) == ("sms", "down")
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30)) == 1
    assert [b["channel"] for b in receiver.bodies()] == ["sms"]
    assert alerts_of(ledger) == [
        (f"change:{change.id}", "webhook", "sent"),
        (f"change:{change.id}", "sms", "pending"),
    ]
    with ledger.session() as session:
        assert session.scalar(select(func.count()).where(EventRow.name == "alert.retrying")) == 1
    # Not due yet: the retry waits its backoff.
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(seconds=31)) == 0
    sandbox.resume("sms")
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(minutes=5)) == 1
    assert [t["to"] for t in texts(sandbox)] == ["+8613800138000", "+8613900139000"]
    ledger.dispose()


def test_a_webhook_that_refuses_for_good_fails_the_alert_and_a_busy_one_is_tried_again(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    with ledger.session() as session:
        monitor.queue_alerts(
            session, alerting, "change:test-1", {"json": {"n": 1}, "text": "t"}, T0, texted=False
        )
        monitor.queue_alerts(
            session, alerting, "change:test-2", {"json": {"n": 2}, "text": "t"}, T0, texted=False
        )
    receiver.answers = [503, 404]
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0) == 0
    assert monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(minutes=1)) == 1
    assert [state for _, _, state in alerts_of(ledger)] == ["sent", "failed"]
    with ledger.session() as session:
        names = session.scalars(select(EventRow.name).where(EventRow.name.like("alert.%"))).all()
    assert names == ["alert.retrying", "alert.failed", "alert.sent"]
    ledger.dispose()


# -- the rule, with probes that say what the test wants --------------------------------------------


class Scripted(Channel):
    """A channel whose probes answer as scripted (good when the script is out)."""

    name = "scripted"

    def __init__(self, answers: list[bool] | None = None, gate: threading.Barrier | None = None) -> None:
        super().__init__(public_url="http://127.0.0.1:9")
        self.answers = list(answers or [])
        self.gate = gate

    def probe(self) -> Health:
        if self.gate is not None:
            self.gate.wait(timeout=30)  # every checker has probed before any writes
        ok = self.answers.pop(0) if self.answers else True
        return Health(ok, "fine" if ok else "peer refused", 1.0)

    def targets(self, publication: Any) -> list[Any]:
        return []

    def render(self, publication: Any, target: Any, renderer: Any) -> Any:
        raise NotImplementedError

    def send(self, payload: Any, key: str) -> Any:
        raise NotImplementedError

    def retract(self, payload: Any, receipt: Any) -> None:
        raise NotImplementedError


def test_down_after_and_up_after_hold_a_flapping_probe(values: dict[str, Any]) -> None:
    settings = load_settings(**merged(values, monitor={"down_after": 2, "up_after": 2}))
    ledger = Ledger(settings.ledger_url)
    website = Scripted([True, False, True, False, False, False, True, False, True, True, True])
    others = Scripted()

    def channel_for(name: str) -> Channel:
        return website if name == "website" else others

    states = []
    for step in range(11):
        monitor.check(ledger, settings, channel_for, now=T0 + timedelta(seconds=30 * step))
        with ledger.session() as session:
            row = session.get(ChannelHealthRow, ("website", "*"))
            assert row is not None
            states.append(row.state)
    assert states == ["healthy"] * 4 + ["down"] * 5 + ["healthy"] * 2
    assert changes_of(ledger) == [("website", "*", "healthy", "down"), ("website", "*", "down", "healthy")]
    ledger.dispose()


def test_two_checks_at_once_record_a_change_once(values: dict[str, Any], receiver: Receiver) -> None:
    settings = load_settings(
        **merged(values, alerts={"webhook_url": receiver.url, "webhook_secret": SECRET, "oncall": ONCALL})
    )
    Ledger(settings.ledger_url).dispose()
    gate = threading.Barrier(2)
    monitor.check(Ledger(settings.ledger_url), settings, lambda name: Scripted(), now=T0)

    def checker() -> None:
        ledger = Ledger(settings.ledger_url)  # a process of its own, on the same file
        monitor.check(
            ledger,
            settings,
            lambda name: Scripted([name != "website"], gate if name == "website" else None),
            now=T0 + timedelta(seconds=30),
        )
        ledger.dispose()

    threads = [threading.Thread(target=checker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    ledger = Ledger(settings.ledger_url)
    assert changes_of(ledger) == [("website", "*", "healthy", "down")]
    assert [route for _, route, _ in alerts_of(ledger)] == ["webhook", "sms"]
    ledger.dispose()


def test_the_compare_and_set_refuses_a_change_read_before_another_was_written(settings: Settings) -> None:
    """Planted: two checkers both read ``healthy``; the second's change finds the row moved and records
    nothing (on SQLite the write lock orders whole checks, so the stale read is made by hand)."""
    ledger = Ledger(settings.ledger_url)
    monitor.check(ledger, settings, lambda name: Scripted(), now=T0)
    with ledger.session() as session:
        first = monitor.transition(session, settings, "website", "*", "healthy", "down", "first", T0)
    with ledger.session() as session:
        second = monitor.transition(session, settings, "website", "*", "healthy", "down", "stale", T0)
    assert first is not None and second is None
    assert changes_of(ledger) == [("website", "*", "healthy", "down")]
    ledger.dispose()


# -- a ledger built for the page's numbers ---------------------------------------------------------

_serial = iter(range(1, 10_000))


def planted(
    session: Any,
    *,
    kind: str = "warning",
    approved_at: datetime,
    channel: str = "website",
    target: str = "site",
    state: DeliveryState = DeliveryState.pending,
    sent_at: datetime | None = None,
    publish_at: datetime | None = None,
    next_attempt_at: datetime | None = None,
    attempts: int = 0,
) -> DeliveryRow:
    """An approved item of ``kind`` with one delivery in ``state``."""
    n = next(_serial)
    item = ItemRow(
        uid=f"u{n}", kind=kind, title=f"item {n}", author="a", department="d", state=ItemState.approved,
        created_at=approved_at,
    )  # fmt: skip
    session.add(item)
    session.flush()
    document = {"publish_at": publish_at.isoformat()} if publish_at else {}
    revision = RevisionRow(
        item_id=item.id, number=1, document=document, digest="0" * 64, created_at=approved_at
    )
    session.add(revision)
    session.flush()
    session.add(ApprovalRow(revision_id=revision.id, approver="b", decision="approved", at=approved_at))
    delivery = DeliveryRow(
        revision_id=revision.id, item_id=item.id, channel=channel, target=target, queue=channel,
        action=Action.publish, idempotency_key=f"k{n}", payload={}, payload_digest="0" * 64, state=state,
        sent_at=sent_at, created_at=approved_at, updated_at=sent_at or approved_at,
        next_attempt_at=next_attempt_at, attempts=attempts,
    )  # fmt: skip
    session.add(delivery)
    session.flush()
    return delivery


def test_overdue_is_counted_per_kind_from_approval_or_publish_at(settings: Settings) -> None:
    ledger = Ledger(settings.ledger_url)
    now = T0
    with ledger.session() as session:
        fresh = planted(session, kind="warning", approved_at=now - timedelta(seconds=100))
        late = planted(
            session, kind="warning", approved_at=now - timedelta(seconds=130), state=DeliveryState.retrying
        )
        release = planted(session, kind="release", approved_at=now - timedelta(seconds=1000))
        late_release = planted(session, kind="release", approved_at=now - timedelta(seconds=2000))
        scheduled = planted(
            session,
            kind="safety_tip",
            approved_at=now - timedelta(hours=5),
            publish_at=now - timedelta(seconds=100),
        )
        sent = planted(
            session,
            kind="warning",
            approved_at=now - timedelta(hours=1),
            state=DeliveryState.sent,
            sent_at=now,
        )
        ids = {d.id: name for d, name in [(fresh, "fresh"), (late, "late"), (release, "release"),
               (late_release, "late_release"), (scheduled, "scheduled"), (sent, "sent")]}  # fmt: skip
    with ledger.session() as session:
        found = monitor.overdue(session, settings, now)
    assert sorted(ids[entry["delivery"]] for entry in found) == ["late", "late_release"]
    [warning] = [entry for entry in found if ids[entry["delivery"]] == "late"]
    assert warning["late_seconds"] == 10.0 and warning["kind"] == "warning"
    # The scheduled tip is overdue once its deadline from publish_at passes.
    with ledger.session() as session:
        later = monitor.overdue(session, settings, now + timedelta(seconds=3600))
    assert "scheduled" in {ids[entry["delivery"]] for entry in later}
    snap = monitor.snapshot(ledger, settings, now=now)
    assert {entry["delivery"] for entry in snap["overdue"]} == {late.id, late_release.id}
    with ledger.session() as session:  # a text held by quiet hours, untried: waiting, not late
        held = planted(
            session, kind="release", approved_at=now - timedelta(hours=3), state=DeliveryState.retrying,
            next_attempt_at=now + timedelta(hours=8),
        )  # fmt: skip
        failing = planted(  # a warning in its retries' backoff: late
            session, kind="warning", approved_at=now - timedelta(hours=3), state=DeliveryState.retrying,
            next_attempt_at=now + timedelta(seconds=30), attempts=3,
        )  # fmt: skip
        found_now = {entry["delivery"] for entry in monitor.overdue(session, settings, now)}
        first = monitor.overdue(session, settings, now, limit=1)
    assert failing.id in found_now and held.id not in found_now
    assert first[0]["kind"] == "warning"  # warnings come first, however old the rest
    marked = {item["id"]: item["overdue"] for item in snap["items"]}
    assert marked[late.item_id] and not marked[fresh.item_id]
    ledger.dispose()


def test_the_snapshot_counts_rates_and_percentiles_exactly(settings: Settings) -> None:
    ledger = Ledger(settings.ledger_url)
    now = T0
    with ledger.session() as session:
        # Sent within the hour, 10, 20, 30, 40 and 100 s after approval; one 5 hours ago, 500 s after.
        for latency, ago in [(10, 60), (20, 120), (30, 180), (40, 240), (100, 300), (500, 5 * 3600)]:
            sent_at = now - timedelta(seconds=ago)
            row = planted(
                session,
                approved_at=sent_at - timedelta(seconds=latency),
                state=DeliveryState.sent,
                sent_at=sent_at,
            )
            session.add(
                EventRow(name="delivery.sent", actor="w", item_id=row.item_id, delivery_id=row.id, at=sent_at)
            )
        # Two retries within the hour; one failure two hours ago.
        for ago in (100, 200, 7200):
            session.add(
                EventRow(
                    name="delivery.retrying" if ago < 3600 else "delivery.failed",
                    actor="w",
                    item_id=row.item_id,
                    delivery_id=row.id,
                    at=now - timedelta(seconds=ago),
                )
            )
        planted(session, approved_at=now - timedelta(seconds=10))  # waiting
        planted(session, approved_at=now - timedelta(seconds=10), state=DeliveryState.sending)  # claimed
        dead = planted(
            session, approved_at=now - timedelta(hours=3), state=DeliveryState.dead, target="other"
        )
        session.add(
            CircuitRow(channel="website", target="other", state="open", failures=5, last_error="HTTP 503")
        )
    snap = monitor.snapshot(ledger, settings, now=now)
    [website] = [c for c in snap["channels"] if c["channel"] == "website"]
    assert website["success_rate"] == {"hour": 5 / 7, "day": 6 / 9}
    assert website["approval_to_sent"]["hour"] == {"count": 5, "median": 30.0, "p95": 100.0}
    # nearest rank, as the disclosure report counts: the 3rd of 6, not the mean of the 3rd and 4th
    assert website["approval_to_sent"]["day"] == {"count": 6, "median": 30.0, "p95": 500.0}
    assert website["waiting"] == 2
    targets = {t["target"]: t for t in website["targets"]}
    assert targets["other"]["circuit"] == "open" and targets["site"]["circuit"] == "closed"
    assert website["circuits_open"] == 1
    assert [d["delivery"] for d in snap["dead"]] == [dead.id]
    assert len(snap["items"]) == 9 and snap["items"][0]["channels"] == {"website": {"dead": 1}}
    ledger.dispose()


def test_percentiles_are_nearest_rank() -> None:
    assert monitor.percentile([], 0.95) is None
    assert monitor.percentile([3.0], 0.95) == 3.0
    values = [float(v) for v in range(1, 21)]
    assert monitor.percentile(values, 0.95) == 19.0
    assert monitor.percentile(values, 0.5) == 10.0


def test_a_target_is_down_while_its_circuit_is_open_and_degraded_by_failing_sends(settings: Settings) -> None:
    ledger = Ledger(settings.ledger_url)
    with ledger.session() as session:
        row = planted(session, approved_at=T0 - timedelta(minutes=5), channel="display", target="BJ-CY-001")
        for minute in range(4):
            session.add(
                EventRow(
                    name="delivery.retrying" if minute else "delivery.sent",
                    actor="w",
                    item_id=row.item_id,
                    delivery_id=row.id,
                    at=T0 - timedelta(minutes=minute + 1),
                )
            )
        session.add(
            CircuitRow(channel="display", target="BJ-CY-002", state="open", failures=5, last_error="x")
        )
    found = monitor.check(ledger, settings, lambda name: Scripted(), now=T0)
    assert sorted((c.channel, c.target, c.to_state) for c in found) == [
        ("display", "*", "degraded"),
        ("display", "BJ-CY-001", "degraded"),
        ("display", "BJ-CY-002", "down"),
    ]
    with ledger.session() as session:
        circuit = session.get(CircuitRow, ("display", "BJ-CY-002"))
        assert circuit is not None
        circuit.state = "closed"
    # The failures leave the window; the circuit closed: all healthy again, each once.
    found = monitor.check(ledger, settings, lambda name: Scripted(), now=T0 + timedelta(hours=1))
    assert sorted((c.target, c.from_state, c.to_state) for c in found) == [
        ("*", "degraded", "healthy"),
        ("BJ-CY-001", "degraded", "healthy"),
        ("BJ-CY-002", "down", "healthy"),
    ]
    ledger.dispose()


def test_one_sign_off_the_network_is_a_target_down_not_the_channel(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    monitor.check(ledger, alerting, channel_for, now=T0)
    signs = sandbox.urls["display"]
    requests.post(f"{signs}/_sandbox/signs/BJ-CY-001/offline", json={"offline": True}, timeout=5)
    monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    assert set(changes_of(ledger)) == {
        ("display", "BJ-CY-001", "unknown", "down"),
        ("display", "*", "healthy", "degraded"),
    }
    requests.post(f"{signs}/_sandbox/signs/BJ-CY-001/offline", json={"offline": False}, timeout=5)
    monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=60))
    assert changes_of(ledger)[2:] == [
        ("display", "BJ-CY-001", "down", "healthy"),
        ("display", "*", "degraded", "healthy"),
    ]
    # the sign's changes are texted (down, back); the channel's degradation only goes to the webhook
    assert sorted(route for _, route, _ in alerts_of(ledger)) == ["sms"] * 2 + ["webhook"] * 4
    ledger.dispose()


def test_texts_go_in_the_order_of_their_changes_when_an_earlier_one_waits(
    alerting: Settings, sandbox: Sandbox, receiver: Receiver
) -> None:
    ledger, channel_for = watched(alerting)
    monitor.check(ledger, alerting, channel_for, now=T0)
    sandbox.pause("sms")  # the gateway is down: the text of its going down waits for a retry
    monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(seconds=30))
    sandbox.resume("sms")
    sandbox.pause("website")  # the gateway is back, the site goes down: its text is due at once
    monitor.check(ledger, alerting, channel_for, now=T0 + timedelta(seconds=40))
    monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(seconds=40))
    assert texts(sandbox) == []  # behind the earlier text, which waits its backoff
    sandbox.resume("website")
    monitor.send_alerts(ledger, alerting, channel_for, now=T0 + timedelta(minutes=5))
    said = [t["text"].split()[0:2] for t in texts(sandbox)][::2]  # one of each pair of phones
    # in the order of the changes: the gateway down, the site down, the gateway back
    assert said == [["【调度告警】sms", "中断"], ["【调度告警】website", "中断"], ["【调度告警】sms", "恢复"]]
    ledger.dispose()
