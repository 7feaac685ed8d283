"""The worker process: builds the Celery app when asked, and runs it.

Importing this module does nothing. ``dispatch worker`` (or ``python worker.py``) loads the settings
once, builds the app (``dispatcher.tasks.create_app``) and runs a worker on every queue; ``--beat``
adds the one scheduler (run exactly one of those). The broker is ``DISPATCH_BROKER_URL``: by default
kombu's SQLAlchemy transport on SQLite under ``var/``; a ``redis://`` or ``amqp://`` URL switches it.
"""

from __future__ import annotations

import sys

from channels import REGISTRY, build_channel, check_names
from dispatcher.tasks import create_app, queues
from settings import Settings, load_settings


def run(
    settings: Settings,
    *,
    beat: bool = False,
    only: str | None = None,
    concurrency: int | None = None,
    loglevel: str = "INFO",
) -> None:
    """Run a worker until it is told to stop (SIGTERM: finish what is running, then exit).

    Every channel is built first, so a bad setting (a sign registry that does not parse, an account
    without its instance) stops the worker now, naming it, instead of failing every delivery later.
    The ledger is opened (and migrated) by each pool process when it first needs it, not here:
    opening it at this point, in this process or in one of its own, left the pool reading none of the
    deliveries the fault suite approved right after the worker started; the cause is not yet found."""
    check_names(settings)
    for name in REGISTRY:
        build_channel(name, settings)
    argv = ["worker", "-l", loglevel, "-Q", only or ",".join(queues())]
    if beat:
        argv.append("-B")
    if concurrency:
        argv += ["-c", str(concurrency)]
    create_app(settings).worker_main(argv)


if __name__ == "__main__":
    run(load_settings(), beat="--beat" in sys.argv[1:])
