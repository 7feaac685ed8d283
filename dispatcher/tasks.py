"""Everything that knows Celery: the app, its tasks, the signed serializer and the broker the outbox uses.

Nothing here runs at import. ``create_app(settings)`` builds an app for one process (a worker, or a
command that publishes); the tasks are thin wrappers that hand a delivery id to the flow
(``dispatcher.delivery``) and the beat its periodic ticks (``dispatcher.outbox.sweep``,
``dispatcher.watch.watch``, ``dispatcher.monitor``'s health checks and operator alerts with the morning
digest). Queues: ``urgent`` (warnings, on every channel), one queue per channel for everything else,
and ``control`` for the periodic work.
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
from functools import partial
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from celery import Celery, signals
from celery.worker.consumer import Consumer
from kombu import Queue
from kombu.serialization import register
from kombu.transport import sqlalchemy as sqlalchemy_transport
from kombu.transport import virtual
from kombu.utils.scheduling import FairCycle, round_robin_cycle
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from channels import REGISTRY, build_channel
from channels.base import Channel
from dispatcher import delivery, expiry, monitor, outbox, rotas, signing, watch
from dispatcher.approval import URGENT, URGENT_BULK, URGENT_LANES
from dispatcher.digest import run_digest_if_due
from dispatcher.ledger import Ledger, private_file, record
from settings import Settings

log = logging.getLogger(__name__)
DELIVER = "dispatcher.deliver"
SWEEP = "dispatcher.sweep"
WATCH = "dispatcher.watch"
MONITOR = "dispatcher.monitor"


def broker_connection(path: str) -> sqlite3.Connection:
    """A connection to the embedded broker's database: WAL, commits that do not wait for the disk."""
    connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def queues() -> tuple[str, ...]:
    """``urgent``, ``urgent-bulk`` (a warning's batches to subscribers), one queue per registered
    channel, and ``control``."""
    return (URGENT, URGENT_BULK, *REGISTRY, "control")


# ---------------------------------------------------------------------------------------------------
# Queue order: a worker takes from an urgent lane (``urgent``, ``urgent-bulk``) whenever
# a message waits there, the lanes in the order consumed, and from the other queues in turn. kombu's
# default turns through every queue alike, so behind a routine backlog a warning's deliveries took every
# other turn (bench/backlog.py, 2 cores, embedded broker: p99 3.3 s, urgent first 0.5 s); a worker of
# its own for ``urgent`` only added processes to share the two cores (p99 18 s).


def urgent_lane(queue: str) -> bool:
    return queue in URGENT_LANES


class UrgentFirst(round_robin_cycle):
    """Redis (``queue_order_strategy``): the urgent lanes first in every BRPOP, the rest in turn."""

    def update(self, it: Any) -> None:
        self.items[:] = sorted(it, key=lambda queue: not urgent_lane(queue))

    def rotate(self, last_used: Any) -> Any:
        return last_used if urgent_lane(last_used) else super().rotate(last_used)


class UrgentFirstPoll(FairCycle):  # type: ignore[misc]
    """The embedded broker: each poll asks the urgent lanes first, then the other queues in turn."""

    def get(self, callback: Any, **kwargs: Any) -> Any:
        for queue in [queue for queue in self.resources if urgent_lane(queue)]:
            try:
                return self.fun(queue, callback, **kwargs)
            except self.predicate:
                pass
        return super().get(callback, **kwargs)


class UrgentFirstChannel(sqlalchemy_transport.Channel):  # type: ignore[misc]
    """kombu's SQLAlchemy channel polling its queues in :class:`UrgentFirstPoll`'s order."""

    def _reset_cycle(self) -> None:
        self._cycle = UrgentFirstPoll(self._get_and_deliver, self._active_queues, Empty)


class Runtime:
    """What a worker process keeps between tasks: its settings, ledger engine and channel adapters.

    One per app; the ledger and the adapters are made in the process that uses them, since an engine
    or an HTTP connection must not cross the fork into the pool's children.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pid = 0
        self._ledger: Ledger | None = None
        self._channels: dict[str, Channel] = {}

    def _here(self) -> None:
        if self._pid != os.getpid():
            self._pid, self._ledger, self._channels = os.getpid(), None, {}

    @property
    def ledger(self) -> Ledger:
        self._here()
        if self._ledger is None:
            self._ledger = Ledger(self.settings.ledger_url)
        return self._ledger

    def channel(self, name: str) -> Channel:
        self._here()
        if name not in self._channels:
            self._channels[name] = build_channel(name, self.settings)
        return self._channels[name]

    def worker_name(self) -> str:
        return f"worker@{socket.gethostname()}:{os.getpid()}"

    def record_refusal(self, reason: str, message: Any) -> None:
        """A message the worker will not run (unsigned, undecodable, unknown task): log it and keep an
        event."""
        headers = getattr(message, "headers", None) or {}
        detail: dict[str, Any] = {
            "reason": reason[:300],
            "task": str(headers.get("task", ""))[:100],
            "content_type": str(getattr(message, "content_type", ""))[:100],
            "queue": str((getattr(message, "delivery_info", None) or {}).get("routing_key", ""))[:50],
        }
        log.error("task message refused: %s", detail)
        try:
            with self.ledger.session() as session:
                record(session, "task.refused", actor=self.worker_name(), **detail)
        except Exception:  # the ledger may be the thing that is broken; the log line stands
            log.exception("could not record the refused message in the ledger")

    def signed_for_another(self, task: str, signed_for: Any) -> bool:
        """True (and recorded) when the signed body was made for another task than the one running it."""
        if signed_for == task:
            return False
        self.record_refusal(f"a body signed for {str(signed_for)[:60]!r} arrived as {task!r}", None)
        return True


class _SlotQoS(virtual.QoS):
    """kombu's prefetch accounting, waking the transport's consumer whenever a slot frees."""

    def ack(self, delivery_tag: Any) -> None:
        super().ack(delivery_tag)
        self.channel.connection.slot_freed.set()

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)
        self.channel.connection.slot_freed.set()


class _WakingChannel(sqlalchemy_transport.Channel):
    QoS = _SlotQoS


class _WakingUrgentFirstChannel(UrgentFirstChannel):
    QoS = _SlotQoS


class EmbeddedTransport(sqlalchemy_transport.Transport):
    """kombu's SQLAlchemy transport, whose consumer wakes as soon as a task is acknowledged.

    kombu's consumer sleeps a whole polling interval whenever it finds nothing it may take, and with
    prefetch 1 and late acknowledgement that is also the case while every pool process is busy: a
    process that finished a task then waited for the next poll, although the queue was full (84 % of a
    pool process's time in the fan-out benchmark). Here the consumer sleeps until the interval ends or a
    slot frees, whichever is first. An empty queue is still polled once per interval, and the worker
    holds no more tasks than before: a warning is never queued behind routine tasks held in advance.
    The interval is a class attribute (kombu hands every transport option to ``create_engine``), so
    each app gets a subclass of its own: :func:`embedded_transport`.
    """

    Channel = _WakingChannel
    cycle: Any  # kombu's FairCycle over the channels, made by the transport's __init__

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.slot_freed = threading.Event()

    def drain_events(self, connection: Any, timeout: float | None = None, **_: Any) -> None:
        started = monotonic()
        while True:
            self.slot_freed.clear()  # before looking: an acknowledgement meanwhile is not missed
            try:
                self.cycle.get(self._deliver, timeout=timeout)
                return
            except Empty:
                waited = monotonic() - started
                if timeout is not None and waited >= timeout:
                    raise TimeoutError() from None
                left = self.polling_interval if timeout is None else timeout - waited
                self.slot_freed.wait(min(self.polling_interval, left))


def embedded_transport(polling_interval: float, urgent_first: bool = True) -> type[EmbeddedTransport]:
    """The embedded broker's transport, polling an empty queue every ``polling_interval`` seconds, the
    urgent lanes first (``urgent_first``) or every queue in turn."""
    channel = _WakingUrgentFirstChannel if urgent_first else _WakingChannel
    return type(
        "EmbeddedTransport", (EmbeddedTransport,), {"polling_interval": polling_interval, "Channel": channel}
    )


def runtime_of(app: Any) -> Runtime | None:
    return getattr(app, "dispatch_runtime", None)


class GuardedConsumer(Consumer):
    """Celery's consumer, recording in the ledger every message it cannot decode or trust."""

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        super().on_decode_error(message, exc)
        here = runtime_of(self.app)
        if here is not None:
            here.record_refusal(f"{type(exc).__name__}: {exc}", message)


def _unknown_task(sender: Any = None, name: str = "", message: Any = None, **_: Any) -> None:
    here = runtime_of(getattr(sender, "app", None))
    if here is not None:
        here.record_refusal(f"unknown task {name!r}", message)


def _rejected(sender: Any = None, message: Any = None, exc: Any = None, **_: Any) -> None:
    here = runtime_of(getattr(sender, "app", None))
    if here is not None:
        here.record_refusal(f"rejected: {exc!r}", message)


def create_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``: queues, routes, reliability settings, the tasks and the beat."""
    key = signing.signing_key(settings)
    # The beat keeps its schedule here, whatever the broker and ledger are.
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    # kombu keeps serializers in one registry per process; registering again under the same name
    # replaces the entry, so the key is that of the last app made (one per process in practice).
    register(
        signing.SERIALIZER,
        signing.encoder(key),
        signing.decoder(key),
        content_type=signing.CONTENT_TYPE,
        content_encoding="utf-8",
    )
    broker_url, transport = settings.broker_url, None
    transport_options: dict[str, object] = {}
    if settings.embedded_broker:
        private_file(Path(settings.broker_url.removeprefix("sqla+sqlite:///")))
        # kombu polls an empty SQL queue once a second by default, which caps it near 130 tasks/s; our
        # transport polls at the configured interval and wakes when a task is acknowledged. A URL's
        # prefix (sqla+) would override the transport given, so the app gets the bare database URL.
        broker_url = settings.broker_url.removeprefix("sqla+")
        transport = embedded_transport(
            settings.broker_polling_interval, urgent_first=settings.queue_order == "urgent_first"
        )
        # Each published message is a commit; with SQLite's default rollback journal every commit
        # waits for the disk (25 ms each here: 1,000 tasks took 26 s to publish). In WAL mode with
        # synchronous=NORMAL a commit does not wait; a power cut may lose the last messages, which
        # the ledger's sweeper publishes again (the ledger, not the broker, is the truth).
        transport_options["creator"] = partial(
            broker_connection, settings.broker_url.removeprefix("sqla+sqlite:///")
        )
    elif settings.broker_url.startswith(("redis://", "rediss://")):
        # Redis hands an unacknowledged task to another worker after this long; keep it well above
        # any delivery's lease so a slow send is not run twice by the broker.
        transport_options["visibility_timeout"] = max(3600, settings.lease_seconds * 10)
        if settings.queue_order == "urgent_first":
            transport_options["queue_order_strategy"] = "dispatcher.tasks:UrgentFirst"
    app = Celery("dispatcher", broker=broker_url)
    app.conf.update(
        broker_transport=transport,
        task_queues=[Queue(name) for name in queues()],
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
                "task": SWEEP,
                "kwargs": signing.bound(SWEEP),
                "schedule": settings.sweep_interval,
                "options": {"queue": "control", "expires": settings.sweep_interval * 5},
            },
            "watch": {
                "task": WATCH,
                "kwargs": signing.bound(WATCH),
                "schedule": settings.display.watch_interval,
                "options": {"queue": "control", "expires": settings.display.watch_interval},
            },
            "monitor": {
                "task": MONITOR,
                "kwargs": signing.bound(MONITOR),
                "schedule": settings.monitor.probe_interval,
                "options": {"queue": "control", "expires": settings.monitor.probe_interval},
            },
        },
        beat_schedule_filename=str(settings.var_dir / "beat-schedule"),
    )
    here = Runtime(settings)
    app.dispatch_runtime = here  # type: ignore[attr-defined]
    broker = CeleryBroker(app, settings)
    signals.task_unknown.connect(_unknown_task, weak=False, dispatch_uid="dispatch-unknown-task")
    signals.task_rejected.connect(_rejected, weak=False, dispatch_uid="dispatch-rejected")

    @app.task(name=DELIVER, ignore_result=True, shared=False)
    def deliver(delivery_id: Any, signed_for: Any = None) -> str | None:
        if here.signed_for_another(DELIVER, signed_for):
            return None
        if not isinstance(delivery_id, int) or isinstance(delivery_id, bool):
            here.record_refusal(f"deliver task with a malformed delivery id {str(delivery_id)[:50]!r}", None)
            return None
        try:
            state = delivery.deliver(here.ledger, settings, delivery_id, here.worker_name(), here.channel)
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

    @app.task(name=WATCH, ignore_result=True, shared=False)
    def watch_targets(signed_for: Any = None) -> int:
        if here.signed_for_another(WATCH, signed_for):
            return 0
        report = watch.watch(here.ledger, settings, here.channel, broker, here.worker_name())
        return len(report.lost)

    @app.task(name=MONITOR, ignore_result=True, shared=False)
    def monitor_channels(signed_for: Any = None) -> int:
        if here.signed_for_another(MONITOR, signed_for):
            return 0
        changes = monitor.check(here.ledger, settings, here.channel)
        run_digest_if_due(here.ledger, settings, here.ledger.now())
        monitor.send_alerts(here.ledger, settings, here.channel)  # the changes' and the digest's alerts
        return len(changes)

    @app.task(name=SWEEP, ignore_result=True, shared=False)
    def sweep(signed_for: Any = None) -> int:
        if here.signed_for_another(SWEEP, signed_for):
            return 0
        count = outbox.sweep(here.ledger, settings, broker)
        expiry.end_expired(here.ledger, settings, broker)  # an item's end comes by itself, at its expiry
        rotas.run_due(here.ledger, settings, broker)  # a rota's slots become items when due
        return count

    return app


class CeleryBroker:
    """The outbox's :class:`~dispatcher.outbox.Broker` on a Celery app."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._engine: Engine | None = None

    def publish(self, work: list[tuple[int, str]]) -> list[int]:
        sent: list[int] = []
        try:
            with self.app.producer_or_acquire() as producer:
                for delivery_id, queue in work:
                    self.app.send_task(
                        DELIVER,
                        args=[delivery_id],
                        kwargs=signing.bound(DELIVER),
                        queue=queue,
                        producer=producer,
                    )
                    sent.append(delivery_id)
        except Exception as exc:  # the broker is down: the sweeper will pick these up
            log.warning("enqueue stopped after %d of %d: %s", len(sent), len(work), exc)
        return sent

    def depths(self, queues: set[str]) -> dict[str, int | None]:
        depths: dict[str, int | None] = {}
        try:
            with self.app.connection_for_read() as connection:
                channel = connection.default_channel
                for queue in queues:
                    try:
                        depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                    except Exception:  # the queue was never declared: nothing waits in it
                        depths[queue] = 0
        except Exception as exc:  # the broker is down: enqueueing would fail anyway
            log.warning("cannot read the queues: %s", exc)
            return dict.fromkeys(queues)
        return depths

    def tidy(self) -> None:
        if self.settings.embedded_broker:
            self.purge_acknowledged()

    def purge_acknowledged(self) -> int:
        """Delete the embedded broker's consumed rows, which kombu marks invisible and never deletes."""
        if self._engine is None:
            url = self.settings.broker_url.removeprefix("sqla+")
            self._engine = create_engine(url, connect_args={"timeout": 30})
        try:
            with self._engine.begin() as connection:
                return connection.execute(text("DELETE FROM kombu_message WHERE visible = 0")).rowcount
        except OperationalError as exc:  # no table before the first message, or the broker is busy
            log.debug("broker purge skipped: %s", exc)
            return 0


def broker_for(settings: Settings) -> CeleryBroker:
    """The broker a command publishes to (a Celery app for ``settings``)."""
    return CeleryBroker(create_app(settings), settings)
