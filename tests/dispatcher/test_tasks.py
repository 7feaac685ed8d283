"""The Celery task wrappers: bad input and a ledger that cannot be written."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError

from dispatcher import tasks
from dispatcher.ledger import EventRow, Ledger
from sandbox.server import Sandbox
from settings import Settings


@pytest.fixture
def here(
    settings: Settings, sandbox: Sandbox, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> tasks.Runtime:
    runtime = tasks.Runtime(settings)
    monkeypatch.setattr(tasks, "_runtime", runtime)
    return runtime


def test_a_malformed_or_unknown_delivery_id_is_recorded_and_dropped(here: tasks.Runtime) -> None:
    assert tasks.deliver.run("12; DROP TABLE deliveries", signed_for="dispatcher.deliver") is None
    assert tasks.deliver.run(424242, signed_for="dispatcher.deliver") is None
    with here.ledger.session() as session:
        names = [e.name for e in session.query(EventRow).order_by(EventRow.id)]
    assert "task.refused" in names and "task.unknown_delivery" in names


def test_a_full_ledger_is_logged_and_the_worker_goes_on(
    here: tasks.Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Isolates the task wrapper: the core raises what SQLite raises on a full disk."""
    import sqlite3

    def full(*_args: object, **_kwargs: object) -> None:
        raise OperationalError(
            "UPDATE deliveries …", None, sqlite3.OperationalError("database or disk is full")
        )

    monkeypatch.setattr(tasks.delivery, "deliver", full)
    with caplog.at_level(logging.ERROR, logger="dispatcher.tasks"):
        assert tasks.deliver.run(7, signed_for="dispatcher.deliver") is None  # the worker goes on
    assert (
        "delivery 7: the ledger is unavailable (database or disk is full); it will be retried" in caplog.text
    )


@pytest.mark.parametrize(
    ("task", "signed_for"),
    [
        (tasks.sweep, "dispatcher.deliver"),  # a deliver body put under the sweeper's name
        (tasks.watch_signs, "dispatcher.sweep"),
        (tasks.deliver, None),  # a body signed before task names were bound
    ],
)
def test_a_signed_body_runs_only_as_the_task_it_was_signed_for(
    here: tasks.Runtime, monkeypatch: pytest.MonkeyPatch, task: object, signed_for: object
) -> None:
    ran: list[object] = []
    monkeypatch.setattr(tasks.fanout, "sweep", lambda *a: ran.append(a) or 0)
    monkeypatch.setattr(tasks.signwatch, "watch_signs", lambda *a: ran.append(a))
    monkeypatch.setattr(tasks.delivery, "deliver", lambda *a: ran.append(a))
    args = [7] if task is tasks.deliver else []
    task.run(*args, signed_for=signed_for)  # type: ignore[attr-defined]
    assert ran == []
    with here.ledger.session() as session:
        refused = session.query(EventRow).filter_by(name="task.refused").one()
    assert "signed for" in refused.detail["reason"]
