"""The Celery app: queues, routes, reliability settings and the sweeper's beat schedule.

Queues: ``urgent`` (warnings, on every channel), one queue per channel for everything else, and
``control`` for the sweeper. Run a worker with ``dispatch worker`` (``--beat`` adds the one
scheduler; run exactly one of those). The broker is ``DISPATCH_BROKER_URL``: by default kombu's
SQLAlchemy transport on SQLite under ``var/``; a ``redis://`` or ``amqp://`` URL switches it.
"""

from __future__ import annotations

from pathlib import Path

from celery import Celery
from kombu import Queue
from kombu.transport import sqlalchemy as sqlalchemy_transport

from dispatcher import signing
from dispatcher.ledger import private_file
from settings import Settings, get_settings

CHANNEL_QUEUES = ("website", "sms", "display", "microblog")
QUEUES = ("urgent", *CHANNEL_QUEUES, "control")


def create_app(settings: Settings) -> Celery:
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    signing.install(settings)
    app = Celery("dispatcher", broker=settings.broker_url, include=["dispatcher.tasks"])
    transport_options: dict[str, object] = {}
    if settings.embedded_broker:
        private_file(Path(settings.broker_url.removeprefix("sqla+sqlite:///")))
        # kombu polls an empty SQL queue once a second by default, which caps it near 130 tasks/s.
        # The SQLAlchemy transport hands its transport options to create_engine(), so the interval
        # cannot travel as an option: it is a class attribute of the transport.
        sqlalchemy_transport.Transport.polling_interval = settings.broker_polling_interval
        transport_options["connect_args"] = {"timeout": 30}
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        # Redis hands an unacknowledged task to another worker after this long; keep it well above
        # any delivery's lease so a slow send is not run twice by the broker.
        transport_options["visibility_timeout"] = max(3600, settings.lease_seconds * 10)
    app.conf.update(
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="control",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer=signing.SERIALIZER,
        accept_content=[signing.CONTENT_TYPE],
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_concurrency=settings.worker_concurrency,
        worker_hijack_root_logger=False,
        # Records every message it refuses (unsigned, undecodable) in the ledger, besides the log.
        worker_consumer="dispatcher.tasks:GuardedConsumer",
        beat_schedule={
            "sweep": {
                "task": "dispatcher.sweep",
                "kwargs": signing.bound("dispatcher.sweep"),
                "schedule": settings.sweep_interval,
                "options": {"queue": "control", "expires": settings.sweep_interval * 5},
            },
            "watch-signs": {
                "task": "dispatcher.watch_signs",
                "kwargs": signing.bound("dispatcher.watch_signs"),
                "schedule": settings.display.watch_interval,
                "options": {"queue": "control", "expires": settings.display.watch_interval},
            },
        },
        beat_schedule_filename=str(settings.var_dir / "beat-schedule"),
    )
    return app


app = create_app(get_settings())
