"""Celery tasks: thin wrappers that hand a delivery id to the core and the sweeper its tick."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import signals
from celery.worker.consumer import Consumer
from sqlalchemy.exc import OperationalError

from channels import build_channel
from channels.base import Channel
from dispatcher import delivery, fanout, signwatch
from dispatcher.ledger import Ledger, record
from settings import Settings, get_settings
from worker import app

log = logging.getLogger(__name__)


class Runtime:
    """What a worker process keeps between tasks: its ledger engine and its channel adapters.

    Built lazily in each process: an engine or an HTTP connection must not cross the fork into the
    pool's children.
    """

    def __init__(self, settings: Settings) -> None:
        self.pid = os.getpid()
        self.settings = settings
        self.ledger = Ledger(settings.ledger_url)
        self.channels: dict[str, Channel] = {}

    def channel(self, name: str) -> Channel:
        if name not in self.channels:
            self.channels[name] = build_channel(name, self.settings)
        return self.channels[name]


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        _runtime = Runtime(get_settings())
    return _runtime


def record_refusal(reason: str, message: Any) -> None:
    """A message the worker will not run (unsigned, undecodable, unknown task): log it and keep an event."""
    headers = getattr(message, "headers", None) or {}
    detail = {
        "reason": reason[:300],
        "task": str(headers.get("task", ""))[:100],
        "content_type": str(getattr(message, "content_type", ""))[:100],
        "queue": str((getattr(message, "delivery_info", None) or {}).get("routing_key", ""))[:50],
    }
    log.error("task message refused: %s", detail)
    try:
        with runtime().ledger.session() as session:
            record(
                session,
                "task.refused",
                actor=f"worker@{socket.gethostname()}:{os.getpid()}",
                reason=detail["reason"],
                task=detail["task"],
                content_type=detail["content_type"],
                queue=detail["queue"],
            )
    except Exception:  # the ledger may be the thing that is broken; the log line stands
        log.exception("could not record the refused message in the ledger")


class GuardedConsumer(Consumer):
    """Celery's consumer, recording in the ledger every message it cannot decode or trust."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        record_refusal(f"{type(exc).__name__}: {exc}", message)


@signals.task_unknown.connect
def _unknown_task(sender: Any = None, name: str = "", message: Any = None, exc: Any = None, **_: Any) -> None:
    record_refusal(f"unknown task {name!r}", message)


@signals.task_rejected.connect
def _rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    record_refusal(f"rejected: {exc!r}", message)


def signed_for_another(task: str, signed_for: Any) -> bool:
    """True (and recorded) when the signed body was made for another task than the one running it."""
    if signed_for == task:
        return False
    record_refusal(f"a body signed for {str(signed_for)[:60]!r} arrived as {task!r}", None)
    return True


@app.task(name="dispatcher.deliver", ignore_result=True)
def deliver(delivery_id: Any, signed_for: Any = None) -> str | None:
    if signed_for_another("dispatcher.deliver", signed_for):
        return None
    if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
        record_refusal(f"deliver task with a malformed delivery id {str(delivery_id)[:50]!r}", None)
        return None
    worker = f"worker@{socket.gethostname()}:{os.getpid()}"
    here = runtime()
    try:
        state = delivery.deliver(here.ledger, here.settings, delivery_id, worker, here.channel)
    except OperationalError as exc:
        # The ledger cannot be written (disk full, database locked for too long, server gone): no
        # event can record this, so the log says it; the delivery keeps its state and the sweeper
        # sends the task again once the ledger answers. The worker goes on with other tasks.
        log.error(
            "delivery %s: the ledger is unavailable (%s); it will be retried",
            delivery_id,
            str(exc.orig)[:200],
        )
        return None
    return state.value if state else None


@app.task(name="dispatcher.watch_signs", ignore_result=True)
def watch_signs(signed_for: Any = None) -> int:
    if signed_for_another("dispatcher.watch_signs", signed_for):
        return 0
    here = runtime()
    channel = here.channel("display")
    report = signwatch.watch_signs(here.ledger, here.settings, channel)  # type: ignore[arg-type]
    return len(report.resent)


@app.task(name="dispatcher.sweep", ignore_result=True)
def sweep(signed_for: Any = None) -> int:
    if signed_for_another("dispatcher.sweep", signed_for):
        return 0
    here = runtime()
    return fanout.sweep(here.ledger, here.settings)
