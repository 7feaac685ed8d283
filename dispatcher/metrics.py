"""Prometheus metrics, read from the ledger when scraped.

Every number is counted in the ledger at scrape time by one collector (no counter kept in a process), so
every process that serves ``/metrics`` — an API behind a balancer, a worker's side port — tells the same
truth, and a restart loses nothing. The counts are a handful of ``GROUP BY`` queries; no delivery row is
loaded into Python:

- ``dispatch_items{state}`` — items by their state now;
- ``dispatch_deliveries{channel,kind,state}`` — deliveries by their state now (a gauge, not a counter of
  outcomes: a re-drive moves a ``dead`` delivery back to ``pending``, and a counter must never go down);
- ``dispatch_deliveries_waiting{channel}`` — deliveries not yet sent and not given up: pending, sending
  (claimed) or retrying;
- ``dispatch_attempts_total{channel}`` — tries at a target: the ``delivery.claimed`` events of the
  append-only log, so it only ever grows (a delivery's own ``attempts`` is reset by a re-drive and given
  back when a peer says "wait");
- ``dispatch_approval_to_sent_seconds{channel,kind}`` — a histogram of the time from a revision's
  approval to each of its deliveries' ``sent_at``, over the whole ledger, bucketed in SQL with ``CASE``:
  the buckets are then cumulative over all time as Prometheus expects of a histogram (``rate()`` and
  ``histogram_quantile()`` work), where a window of the last days would make counts fall as old sends
  leave it;
- ``dispatch_queue_depth{queue}`` — messages waiting in each broker queue, from the callable the face
  passes (the broker is the tasks' business; this module does not know it); a queue the broker could not
  answer for is left out rather than shown as 0;
- ``dispatch_circuit_state{channel,target}`` — 0 closed, 1 half open, 2 open, for every circuit on record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from dispatcher.ledger import (
    SHOWING,
    ApprovalRow,
    CircuitRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
)
from settings import Settings

#: the Content-Type the text format is served with
CONTENT_TYPE = CONTENT_TYPE_LATEST
#: upper bounds (seconds) of the approval-to-sent histogram's buckets; +Inf is added
BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)
#: a circuit's state as a number
CIRCUIT = {"closed": 0, "half_open": 1, "open": 2}
#: not yet sent and not given up
WAITING = (DeliveryState.pending, DeliveryState.sending, DeliveryState.retrying)

#: what reads the broker's queues: {queue: messages waiting, or None when the broker did not answer}
Depths = Callable[[], dict[str, int | None]]


def seconds_between(session: Session, earlier: Any, later: Any) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as SQL of the ledger's database."""
    if session.get_bind().dialect.name == "sqlite":
        # julianday counts whole milliseconds inside; rounding to them keeps 30 s exactly 30
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return cast(func.extract("epoch", later - earlier), Float)


class LedgerCollector(Collector):
    """The dispatcher's metrics, counted in the ledger each time they are collected."""

    def __init__(self, ledger: Ledger, depths: Depths | None = None) -> None:
        self.ledger = ledger
        self.depths = depths

    def describe(self) -> list[Metric]:
        # Registering asks for the names; answering none spares a round of queries at registration.
        return []

    def collect(self) -> Iterator[Metric]:
        with self.ledger.session() as session:
            yield from self._items(session)
            yield from self._deliveries(session)
            yield self._attempts(session)
            yield self._latency(session)
            yield self._circuits(session)
        if self.depths is not None:
            yield self._queues(self.depths())

    def _items(self, session: Session) -> Iterator[Metric]:
        family = GaugeMetricFamily("dispatch_items", "Items by their state now.", labels=["state"])
        counts = {
            state: n
            for state, n in session.execute(select(ItemRow.state, func.count()).group_by(ItemRow.state))
        }
        for state in ItemState:
            family.add_metric([state.value], counts.get(state, 0))
        yield family

    def _deliveries(self, session: Session) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "dispatch_deliveries",
            "Deliveries by channel, kind and their state now.",
            labels=["channel", "kind", "state"],
        )
        waiting = GaugeMetricFamily(
            "dispatch_deliveries_waiting",
            "Deliveries not yet sent nor given up (pending, sending, retrying), by channel.",
            labels=["channel"],
        )
        per_channel: dict[str, int] = {}
        for channel, kind, state, count in session.execute(
            select(DeliveryRow.channel, ItemRow.kind, DeliveryRow.state, func.count())
            .join(ItemRow, ItemRow.id == DeliveryRow.item_id)
            .group_by(DeliveryRow.channel, ItemRow.kind, DeliveryRow.state)
            .order_by(DeliveryRow.channel, ItemRow.kind, DeliveryRow.state)
        ):
            by_state.add_metric([channel, kind, state.value], count)
            per_channel[channel] = per_channel.get(channel, 0) + (count if state in WAITING else 0)
        for channel, count in sorted(per_channel.items()):
            waiting.add_metric([channel], count)
        yield by_state
        yield waiting

    def _attempts(self, session: Session) -> Metric:
        family = CounterMetricFamily(
            "dispatch_attempts", "Tries at a target (claims of a delivery), by channel.", labels=["channel"]
        )
        for channel, count in session.execute(
            select(DeliveryRow.channel, func.count())
            .select_from(EventRow)
            .join(DeliveryRow, DeliveryRow.id == EventRow.delivery_id)
            .where(EventRow.name == "delivery.claimed")
            .group_by(DeliveryRow.channel)
            .order_by(DeliveryRow.channel)
        ):
            family.add_metric([channel], count)
        return family

    def _latency(self, session: Session) -> Metric:
        family = HistogramMetricFamily(
            "dispatch_approval_to_sent_seconds",
            "Seconds from a revision's approval to each of its deliveries being sent.",
            labels=["channel", "kind"],
        )
        seconds = seconds_between(session, ApprovalRow.at, DeliveryRow.sent_at)
        # Each bucket counts what took at most its bound: cumulative, as the text format wants.
        buckets = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in BUCKETS]
        rows = session.execute(
            select(DeliveryRow.channel, ItemRow.kind, func.count(), func.sum(seconds), *buckets)
            .join(ItemRow, ItemRow.id == DeliveryRow.item_id)
            .join(ApprovalRow, ApprovalRow.revision_id == DeliveryRow.revision_id)
            .where(
                ApprovalRow.decision == "approved",
                DeliveryRow.sent_at.is_not(None),
                DeliveryRow.action.in_(list(SHOWING)),
            )
            .group_by(DeliveryRow.channel, ItemRow.kind)
            .order_by(DeliveryRow.channel, ItemRow.kind)
        )
        for channel, kind, count, total, *counts in rows:
            family.add_metric(
                [channel, kind],
                [(str(float(bound)), int(n or 0)) for bound, n in zip(BUCKETS, counts, strict=True)]
                + [("+Inf", int(count))],
                sum_value=float(total or 0),
            )
        return family

    def _circuits(self, session: Session) -> Metric:
        family = GaugeMetricFamily(
            "dispatch_circuit_state",
            "A target's circuit breaker: 0 closed, 1 half open, 2 open.",
            labels=["channel", "target"],
        )
        for channel, target, state in session.execute(
            select(CircuitRow.channel, CircuitRow.target, CircuitRow.state).order_by(
                CircuitRow.channel, CircuitRow.target
            )
        ):
            family.add_metric([channel, target], CIRCUIT.get(state, 0))
        return family

    def _queues(self, depths: dict[str, int | None]) -> Metric:
        family = GaugeMetricFamily(
            "dispatch_queue_depth", "Messages waiting in each broker queue.", labels=["queue"]
        )
        for queue, depth in sorted(depths.items()):
            if depth is not None:
                family.add_metric([queue], depth)
        return family


def exposition(ledger: Ledger, settings: Settings, depths: Depths | None = None) -> bytes:
    """The metrics in Prometheus's text format, counted now: what ``GET /metrics`` answers (with
    :data:`CONTENT_TYPE`). ``depths`` reads the broker's queues (``lambda: broker.depths(queues)``);
    without it the queue depths are left out. ``settings`` are the serving process's; the counts come
    from the ledger alone."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger, depths))
    return generate_latest(registry)
