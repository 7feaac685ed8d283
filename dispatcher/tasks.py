"""Celery tasks: thin wrappers that hand a delivery id to the core and the sweeper its tick."""

from __future__ import annotations

import logging
import os
import socket

from dispatcher import delivery, fanout
from dispatcher.ledger import Ledger
from settings import get_settings
from worker import app

log = logging.getLogger(__name__)
_ledgers: dict[int, Ledger] = {}


def ledger() -> Ledger:
    """One ledger per process: an engine must not cross a fork into the worker's children."""
    pid = os.getpid()
    if pid not in _ledgers:
        _ledgers.clear()
        _ledgers[pid] = Ledger(get_settings().ledger_url)
    return _ledgers[pid]


@app.task(name="dispatcher.deliver", ignore_result=True)
def deliver(delivery_id: int) -> str | None:
    if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
        log.error("deliver task with a malformed delivery id %r; dropped", delivery_id)
        return None
    worker = f"worker@{socket.gethostname()}:{os.getpid()}"
    state = delivery.deliver(ledger(), get_settings(), delivery_id, worker)
    return state.value if state else None


@app.task(name="dispatcher.sweep", ignore_result=True)
def sweep() -> int:
    return fanout.sweep(ledger(), get_settings())
