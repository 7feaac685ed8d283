"""Celery tasks: thin wrappers that hand a delivery id to the core and the sweeper its tick."""

from __future__ import annotations

import logging
import os
import socket

from channels import build_channel
from channels.base import Channel
from dispatcher import delivery, fanout, signwatch
from dispatcher.ledger import Ledger
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


@app.task(name="dispatcher.deliver", ignore_result=True)
def deliver(delivery_id: int) -> str | None:
    if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
        log.error("deliver task with a malformed delivery id %r; dropped", delivery_id)
        return None
    worker = f"worker@{socket.gethostname()}:{os.getpid()}"
    here = runtime()
    state = delivery.deliver(here.ledger, here.settings, delivery_id, worker, here.channel)
    return state.value if state else None


@app.task(name="dispatcher.watch_signs", ignore_result=True)
def watch_signs() -> int:
    here = runtime()
    channel = here.channel("display")
    report = signwatch.watch_signs(here.ledger, here.settings, channel)  # type: ignore[arg-type]
    return len(report.resent)


@app.task(name="dispatcher.sweep", ignore_result=True)
def sweep() -> int:
    here = runtime()
    return fanout.sweep(here.ledger, here.settings)
