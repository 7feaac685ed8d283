"""The Celery task wrappers: bad input and a ledger that cannot be written."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection, Queue
from kombu.message import Message
from sqlalchemy.exc import OperationalError

from dispatcher import tasks
from dispatcher.ledger import EventRow, Ledger
from sandbox.server import Sandbox
from settings import PROJECT_DIR, Settings, load_settings


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    """Every test here talks to the emulators."""
    return sandboxed


@pytest.fixture
def app(settings: Settings, sandbox: Sandbox, ledger: Ledger) -> Celery:
    return tasks.create_app(settings)


@pytest.fixture
def here(app: Celery) -> tasks.Runtime:
    runtime = tasks.runtime_of(app)
    assert runtime is not None
    return runtime


def test_importing_the_worker_module_writes_nothing(tmp_path: Path) -> None:
    """``import worker`` (and the task module) creates no directory, key or app."""
    import subprocess
    import sys

    code = "import worker, dispatcher.tasks; import celery; assert celery.current_app.main != 'dispatcher'"
    env = {**os.environ, "DISPATCH_VAR_DIR": str(tmp_path / "var"), "PYTHONPATH": str(PROJECT_DIR)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tmp_path, timeout=60)
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_or_unknown_delivery_id_is_recorded_and_dropped(app: Celery, here: tasks.Runtime) -> None:
    deliver = app.tasks[tasks.DELIVER]
    assert deliver.run("12; DROP TABLE deliveries", signed_for="dispatcher.deliver") is None
    assert deliver.run(424242, signed_for="dispatcher.deliver") is None
    with here.ledger.session() as session:
        names = [e.name for e in session.query(EventRow).order_by(EventRow.id)]
    assert "task.refused" in names and "task.unknown_delivery" in names


def test_a_full_ledger_is_logged_and_the_worker_goes_on(
    app: Celery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Isolates the task wrapper: the core raises what SQLite raises on a full disk."""
    import sqlite3

    def full(*_args: object, **_kwargs: object) -> None:
        raise OperationalError(
            "UPDATE deliveries …", None, sqlite3.OperationalError("database or disk is full")
        )

    monkeypatch.setattr(tasks.delivery, "deliver", full)
    with caplog.at_level(logging.ERROR, logger="dispatcher.tasks"):
        assert app.tasks[tasks.DELIVER].run(7, signed_for="dispatcher.deliver") is None  # it goes on
    assert (
        "delivery 7: the ledger is unavailable (database or disk is full); it will be retried" in caplog.text
    )


@pytest.mark.parametrize(
    ("task", "signed_for"),
    [
        (tasks.SWEEP, "dispatcher.deliver"),  # a deliver body put under the sweeper's name
        (tasks.WATCH, "dispatcher.sweep"),
        (tasks.MONITOR, "dispatcher.watch"),
        (tasks.DELIVER, None),  # a body signed before task names were bound
    ],
)
def test_a_signed_body_runs_only_as_the_task_it_was_signed_for(
    app: Celery, here: tasks.Runtime, monkeypatch: pytest.MonkeyPatch, task: str, signed_for: object
) -> None:
    ran: list[object] = []
    monkeypatch.setattr(tasks.outbox, "sweep", lambda *a: ran.append(a) or 0)
    monkeypatch.setattr(tasks.watch, "watch", lambda *a: ran.append(a))
    monkeypatch.setattr(tasks.delivery, "deliver", lambda *a: ran.append(a))
    monkeypatch.setattr(tasks.monitor, "check", lambda *a, **k: [ran.append(a)][:0])
    args = [7] if task == tasks.DELIVER else []
    app.tasks[task].run(*args, signed_for=signed_for)
    assert ran == []
    with here.ledger.session() as session:
        refused = session.query(EventRow).filter_by(name="task.refused").one()
    assert "signed for" in refused.detail["reason"]


def test_the_app_makes_the_var_dir_its_beat_needs_whatever_the_broker(tmp_path: Path) -> None:
    """Found in review: with Redis and every secret set, nothing else made var/, and the beat's
    schedule file could not be opened."""
    settings = load_settings(
        var_dir=tmp_path / "var",
        broker_url="redis://127.0.0.1:9/0",
        task_signing_key="k",
        payload_key="p",
        api={"token": "t"},
    )
    assert not (tmp_path / "var").exists()
    app = tasks.create_app(settings)
    assert (tmp_path / "var").is_dir() and app.conf.beat_schedule_filename.startswith(str(tmp_path / "var"))


def test_the_embedded_broker_takes_the_next_task_once_one_is_acknowledged(tmp_path: Path) -> None:
    """With prefetch 1 and late acknowledgement the consumer may take nothing while a task runs; once
    it is acknowledged, the next is taken then, not at the next poll (here 30 s away)."""
    transport = tasks.embedded_transport(polling_interval=30.0)
    taken: list[Message] = []
    with Connection(f"sqlite:///{tmp_path / 'broker.sqlite'}", transport=transport) as connection:
        queue = Queue("work")
        with connection.Producer() as producer:
            for n in (1, 2):
                producer.publish({"n": n}, routing_key="work", declare=[queue], serializer="json")
        consumer = connection.Consumer(queue, callbacks=[lambda _body, message: taken.append(message)])
        consumer.qos(prefetch_count=1)
        with consumer:
            connection.drain_events(timeout=10)
            assert [m.payload for m in taken] == [{"n": 1}]
            threading.Timer(0.2, taken[0].ack).start()
            started = time.monotonic()
            connection.drain_events(timeout=60)
            assert [m.payload for m in taken] == [{"n": 1}, {"n": 2}]
            assert time.monotonic() - started < 15, "the consumer slept until its next poll"


def test_an_app_on_the_embedded_broker_uses_its_transport_at_the_configured_interval(
    settings: Settings,
) -> None:
    app = tasks.create_app(settings.model_copy(update={"broker_polling_interval": 0.25}))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, tasks.EmbeddedTransport)
        assert connection.transport.polling_interval == 0.25


def test_the_beat_checks_channel_health_every_probe_interval(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tasks.create_app(settings)
    entry = app.conf.beat_schedule["monitor"]
    assert entry["task"] == tasks.MONITOR and entry["schedule"] == settings.monitor.probe_interval
    assert entry["kwargs"] == {"signed_for": tasks.MONITOR}
    ran: list[str] = []
    monkeypatch.setattr(tasks.monitor, "check", lambda *a, **k: [ran.append("check")][:0])
    monkeypatch.setattr(tasks, "run_digest_if_due", lambda *a, **k: ran.append("digest"))
    monkeypatch.setattr(tasks.monitor, "send_alerts", lambda *a, **k: len([ran.append("alerts")]))
    app.tasks[tasks.MONITOR].run(signed_for=tasks.MONITOR)
    assert ran == ["check", "digest", "alerts"]
