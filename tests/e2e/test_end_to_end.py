"""An approved item, fanned out by a real worker process through a real broker to the emulators."""

from __future__ import annotations

import os
import signal
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from dispatcher.ledger import TERMINAL, DeliveryRow, EventRow, ItemRow, ItemState, Ledger
from dispatcher.tasks import broker_for
from sandbox.server import Sandbox
from settings import Settings
from tests.support import WARNING, approved, faults_left, inject, numbers, received, site_posts, wait_until

pytestmark = pytest.mark.e2e


def deliveries(ledger: Ledger, item_id: int, **where: str) -> list[DeliveryRow]:
    with ledger.session() as session:
        return session.query(DeliveryRow).filter_by(item_id=item_id, **where).all()


def wait_terminal(ledger: Ledger, item_id: int, timeout: float = 90) -> list[DeliveryRow]:
    def terminal() -> list[DeliveryRow]:
        rows = deliveries(ledger, item_id)
        return rows if rows and all(r.state in TERMINAL for r in rows) else []

    try:
        return wait_until(terminal, timeout, "every delivery in a terminal state")
    except AssertionError:
        states = [(r.channel, r.target, r.state.value) for r in deliveries(ledger, item_id)]
        pytest.fail(f"not terminal after {timeout}s: {states}")


def check_exactly_once(ledger: Ledger, sandbox: Sandbox, item_id: int) -> None:
    rows = wait_terminal(ledger, item_id)
    assert {r.state.value for r in rows} == {"sent"}, [(r.channel, r.last_error) for r in rows]
    pinned = {(r.channel, r.target): r.payload for r in rows}
    with ledger.session() as session:
        assert session.get(ItemRow, item_id).state is ItemState.published
        sent_events = Counter(e.delivery_id for e in session.query(EventRow).filter_by(name="delivery.sent"))
    assert set(sent_events.values()) == {1}

    channels = {channel for channel, _ in pinned}

    posts = site_posts(sandbox)
    assert len(posts) == (1 if "website" in channels else 0)
    if posts:
        website = pinned[("website", "site")]
        assert (posts[0]["title"]["raw"], posts[0]["content"]["raw"]) == (
            website["title"],
            website["content"],
        )

    sms = received(sandbox, "sms")
    if "sms" in channels:
        batch = pinned[("sms", "batch-001")]
        row = next(r for r in rows if r.channel == "sms")
        assert sorted(m["to"] for m in sms) == sorted(numbers(ledger, row))  # each phone exactly once
        assert {m["text"] for m in sms} == {batch["text"]}
    else:
        assert sms == []

    signs = received(sandbox, "display")
    assert Counter(m["sign"] for m in signs) == (
        {"BJ-CY-001": 1, "BJ-CY-002": 1} if "display" in channels else {}
    )
    for message in signs:
        assert message["multi"] == pinned[("display", message["sign"])]["multi"]

    statuses = received(sandbox, "microblog")
    expected = [pinned[("microblog", "sandbox")]["text"]] if "microblog" in channels else []
    assert [s["status"] for s in statuses] == expected


def publish(ledger: Ledger, settings: Settings, **changes: Any) -> int:
    """Approve a warning (with ``changes``) and enqueue its deliveries: one for each of its channels'
    targets, every channel reached, so a check of what was sent leaves none out."""
    rows = approved(ledger, settings, broker=broker_for(settings), **changes)
    assert {r.channel for r in rows} == set(changes.get("channels", WARNING["channels"]))
    return rows[0].item_id


def test_embedded_broker(
    sandbox: Sandbox, sandboxed: Settings, ledger: Ledger, worker_env: dict[str, str], run_worker: Callable
) -> None:
    run_worker(worker_env)
    item_id = publish(ledger, sandboxed)
    check_exactly_once(ledger, sandbox, item_id)


def test_redis_broker(
    sandbox: Sandbox,
    sandboxed: Settings,
    ledger: Ledger,
    redis_url: str,
    worker_env: dict[str, str],
    run_worker: Callable,
) -> None:
    run_worker({**worker_env, "DISPATCH_BROKER_URL": redis_url})
    item_id = publish(ledger, sandboxed.model_copy(update={"broker_url": redis_url}))
    check_exactly_once(ledger, sandbox, item_id)


def test_tasks_lost_by_the_broker_are_recovered_by_the_sweeper(
    sandbox: Sandbox, sandboxed: Settings, ledger: Ledger, worker_env: dict[str, str], run_worker: Callable
) -> None:
    item_id = publish(ledger, sandboxed)  # no worker yet: the tasks wait in the broker
    broker = sandboxed.broker_url.removeprefix("sqla+sqlite:///")
    with sqlite3.connect(broker) as db:  # the broker loses every message
        assert db.execute("DELETE FROM kombu_message").rowcount == 5
    # The sweeper re-enqueues a delivery enqueued but never claimed once a lease has passed.
    run_worker({**worker_env, "DISPATCH_LEASE_SECONDS": "5"})
    check_exactly_once(ledger, sandbox, item_id)
    with ledger.session() as session:
        claims = session.query(EventRow).filter_by(name="delivery.claimed").count()
    assert claims == 5


def test_a_worker_killed_mid_send_loses_nothing_and_doubles_nothing(
    sandbox: Sandbox, sandboxed: Settings, ledger: Ledger, worker_env: dict[str, str], run_worker: Callable
) -> None:
    # Only channels that can look a send up: Kannel and Weibo cannot, so an SMS or a status whose
    # outcome a kill made unknown is sent again (the policy for those is explicit in a later change).
    # The website answers 3 s late, so the kill lands while the post is being created.
    inject(sandbox, "website", mode="delay", seconds=3, method="POST", path="/wp-json/wp/v2/posts")
    env = {**worker_env, "DISPATCH_LEASE_SECONDS": "5"}
    first = run_worker(env)
    item_id = publish(ledger, sandboxed, channels=["website", "display"])
    wait_until(lambda: faults_left(sandbox, "website") == 0, 60, "the create to reach the slow site")
    os.killpg(first.pid, signal.SIGKILL)  # the whole worker, pool and scheduler, at once
    first.wait(timeout=10)
    run_worker(env)
    check_exactly_once(ledger, sandbox, item_id)
    with ledger.session() as session:
        website = session.query(DeliveryRow).filter_by(item_id=item_id, channel="website").one()
        sent = session.query(EventRow).filter_by(name="delivery.sent", delivery_id=website.id).one()
    assert website.attempts == 2
    assert sent.detail["found_by_lookup"] is True


def test_an_unsigned_task_injected_into_the_broker_is_refused(
    sandbox: Sandbox,
    sandboxed: Settings,
    ledger: Ledger,
    worker_env: dict[str, str],
    run_worker: Callable,
    tmp_path,
) -> None:  # type: ignore[no-untyped-def]
    from celery import Celery

    item_id = publish(ledger, sandboxed, channels=["website"])
    broker = sandboxed.broker_url.removeprefix("sqla+sqlite:///")
    with sqlite3.connect(broker) as db:  # the real task is lost, so only the forged one is there
        db.execute("DELETE FROM kombu_message")
    with ledger.session() as session:
        delivery = session.query(DeliveryRow).filter_by(item_id=item_id).one()
    intruder = Celery("intruder", broker=sandboxed.broker_url)
    intruder.conf.task_serializer = "json"
    intruder.send_task("dispatcher.deliver", args=[delivery.id], queue="urgent")
    run_worker(worker_env)
    log = tmp_path / "worker.log"
    wait_until(
        lambda: "task message refused" in (log.read_text(errors="replace") if log.exists() else ""),
        20,
        "the worker to log the refusal",
    )

    def recorded() -> int:  # the worker logs the refusal first, then records it: wait for the record too
        with ledger.session() as session:
            return session.query(EventRow).filter_by(name="task.refused").count()

    wait_until(recorded, 20, "the worker to record the refusal")
    with ledger.session() as session:
        assert session.get(DeliveryRow, delivery.id).state.value == "pending"
        assert session.query(EventRow).filter_by(name="delivery.claimed").count() == 0
        refused = session.query(EventRow).filter_by(name="task.refused").one()
    assert refused.detail["task"] == "dispatcher.deliver" and "json" in refused.detail["content_type"]
    assert received(sandbox, "website") == []


def test_sigterm_lets_the_delivery_in_flight_finish(
    sandbox: Sandbox, sandboxed: Settings, ledger: Ledger, worker_env: dict[str, str], run_worker: Callable
) -> None:
    inject(sandbox, "website", mode="delay", seconds=2, method="POST", path="/wp-json/wp/v2/posts")
    worker = run_worker({**worker_env, "DISPATCH_WEBSITE__TIMEOUT": "10"})
    item_id = publish(ledger, sandboxed, channels=["website"])
    wait_until(lambda: faults_left(sandbox, "website") == 0, 60, "the create to reach the slow site")
    worker.send_signal(signal.SIGTERM)  # warm shutdown, while the post is being created
    assert worker.wait(timeout=60) == 0
    with ledger.session() as session:
        website = session.query(DeliveryRow).filter_by(item_id=item_id).one()
    assert website.state.value == "sent" and website.attempts == 1
    assert len(site_posts(sandbox)) == 1
