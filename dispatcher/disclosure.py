"""The quarterly disclosure report: what the office published in a quarter, where, how well and how fast.

Read from the ledger only (nothing is written), for the days of a quarter (``2026Q4``) or any span of
days, bounded in the office's time zone (``DISPATCH_TIME_ZONE``): 1 October 00:00 to 1 January 00:00,
Beijing time, for 2026Q4 in Beijing. What it counts, and how:

- **items**: items first approved in the period (as the disclosure ledger export counts them), by kind
  and by department;
- **deliveries**: the deliveries that put an approved revision on a target (publish, update, follow-up;
  not the takedowns a withdrawal or an expiry sends), of every revision approved in the period, by
  channel and by the state they are in now. The **success rate** is landed / attempted: *landed* is a
  delivery in ``sent``; *attempted* is one that reached an end after trying its target — ``sent``,
  ``failed``, ``dead``, or ``expired`` after at least one try. ``superseded``, ``cancelled`` and an
  ``expired`` never tried are the office's or the clock's decision, not the channel's failing, and deliveries
  still on their way (pending, sending, retrying, unknown) have no outcome yet: neither is counted;
- **time to publication**: for each revision approved in the period (an item's first approval and each
  correction), from its approval to its first delivery's ``sent_at`` on any channel; per channel, to its
  first ``sent_at`` on that channel. The median and the 95th percentile are by **nearest rank**: the
  p-th percentile of n sorted values is the value at rank ⌈p/100 · n⌉ (so the median of an even number
  of values is the lower middle one), always one of the measured values, never interpolated;
- **corrections**: revisions after the first approved in the period; **withdrawals**: ``item.withdrawn``
  events in the period.

Shown as tables in a terminal (``dispatch report``), as JSON, and as one self-contained HTML page with
its charts drawn here as inline SVG (no script, no outside asset) that a disclosure office can publish
or print.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import func, select

from dispatcher import exports
from dispatcher.errors import InvalidItemError
from dispatcher.ledger import (
    SHOWING,
    ApprovalRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    Ledger,
    RevisionRow,
)
from settings import Settings

#: the HTML page's template, under the templates directory
TEMPLATE = "report/quarterly.html.j2"
#: the states in which a delivery has an outcome the channel answers for (``expired`` only once tried)
ENDED = (DeliveryState.sent, DeliveryState.failed, DeliveryState.dead)
#: the order the states are shown in
STATES = tuple(DeliveryState)
#: the latency histogram's bounds in seconds (a last bar holds what took longer), and their labels
LATENCY_BOUNDS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 3600)


def nearest_rank(ordered: list[float], percent: float) -> float | None:
    """The ``percent``-th percentile of sorted values by nearest rank (the value at rank ⌈p/100·n⌉,
    the first for p = 0); None for no values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Latency:
    """Seconds from approval to publication, one per revision (or per revision and channel)."""

    seconds: tuple[float, ...] = ()

    @property
    def median(self) -> float | None:
        return nearest_rank(sorted(self.seconds), 50)

    @property
    def p95(self) -> float | None:
        return nearest_rank(sorted(self.seconds), 95)

    def histogram(self) -> list[tuple[str, int]]:
        """How many took up to each bound (not cumulative), and longer than the last."""
        counts = [0] * (len(LATENCY_BOUNDS) + 1)
        for value in self.seconds:
            counts[next((i for i, b in enumerate(LATENCY_BOUNDS) if value <= b), len(LATENCY_BOUNDS))] += 1
        labels = [f"≤{duration_text(b)}" for b in LATENCY_BOUNDS] + [f">{duration_text(LATENCY_BOUNDS[-1])}"]
        return list(zip(labels, counts, strict=True))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": len(self.seconds),
            "median_seconds": self.median,
            "p95_seconds": self.p95,
            "histogram": [{"bucket": label, "count": count} for label, count in self.histogram()],
        }


@dataclass(frozen=True)
class ChannelLine:
    """One channel's deliveries in the period: how many in each state, and how fast they went out."""

    channel: str
    states: dict[str, int]
    landed: int
    attempted: int
    latency: Latency

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def rate(self) -> float | None:
        """landed / attempted, None when nothing was attempted."""
        return self.landed / self.attempted if self.attempted else None

    def to_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "deliveries": self.total,
            "states": self.states,
            "landed": self.landed,
            "attempted": self.attempted,
            "success_rate": self.rate,
            "latency": self.latency.to_json(),
        }


@dataclass(frozen=True)
class Report:
    """The disclosure report of one period (local dates, both included)."""

    label: str
    start: date
    end: date
    zone: str
    by_kind: dict[str, int]
    by_department: dict[str, int]
    channels: list[ChannelLine]
    latency: Latency
    corrections: list[dict[str, Any]] = field(default_factory=list)
    withdrawals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(self.by_kind.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.label,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "time_zone": self.zone,
            "items": self.items,
            "items_by_kind": self.by_kind,
            "items_by_department": self.by_department,
            "channels": [line.to_json() for line in self.channels],
            "latency": self.latency.to_json(),
            "corrections": self.corrections,
            "withdrawals": self.withdrawals,
        }


QUARTER = re.compile(r"(\d{4})Q([1-4])")


def quarter_days(quarter: str) -> tuple[date, date]:
    """The first and last day of a quarter written ``YYYYQn`` (``2026Q4``: 2026-10-01 to 2026-12-31)."""
    found = QUARTER.fullmatch(quarter.strip().upper())
    if found is None:
        raise InvalidItemError(
            repr(quarter),
            [("--quarter", "is not a quarter: YYYYQn, a year and 1 to 4, like 2026Q4")],
            what="period",
        )
    year, number = int(found[1]), int(found[2])
    if not 1970 <= year <= 9998:  # the ledger's times, and a day after the quarter's last, must exist
        raise InvalidItemError(
            repr(quarter), [("--quarter", "the year must be from 1970 to 9998")], what="period"
        )
    first = date(year, 3 * number - 2, 1)
    following = date(year + 1, 1, 1) if number == 4 else date(year, 3 * number + 1, 1)
    return first, following - timedelta(days=1)


def quarterly(ledger: Ledger, settings: Settings, quarter: str) -> Report:
    """The report of a quarter (``2026Q4``), its days in the office's time zone."""
    start, end = quarter_days(quarter)
    return compile_report(ledger, settings, start, end, quarter.strip().upper())


def compile_report(
    ledger: Ledger, settings: Settings, start: date, end: date, label: str | None = None
) -> Report:
    """The report of the local days ``start`` to ``end`` (both included); see the module's docstring."""
    zone = ZoneInfo(settings.time_zone)
    since = datetime.combine(start, time.min, zone)
    until = datetime.combine(end + timedelta(days=1), time.min, zone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).isoformat(timespec="seconds")

    with ledger.session() as session:
        first_approval = exports.first_approvals()
        in_period = (first_approval.c.at >= since, first_approval.c.at < until)
        by_kind = _counted(
            session.execute(
                select(ItemRow.kind, func.count())
                .join(first_approval, first_approval.c.item_id == ItemRow.id)
                .where(*in_period)
                .group_by(ItemRow.kind)
            ).all()
        )
        by_department = _counted(
            session.execute(
                select(ItemRow.department, func.count())
                .join(first_approval, first_approval.c.item_id == ItemRow.id)
                .where(*in_period)
                .group_by(ItemRow.department)
            ).all()
        )
        # Every revision approved in the period: the first of an item and its corrections.
        approved = (
            select(ApprovalRow.revision_id, ApprovalRow.at)
            .where(ApprovalRow.decision == "approved", ApprovalRow.at >= since, ApprovalRow.at < until)
            .subquery()
        )
        showing = DeliveryRow.action.in_(list(SHOWING))
        tried = DeliveryRow.attempts > 0
        states: dict[str, dict[str, int]] = {}
        landed: dict[str, int] = {}
        attempted: dict[str, int] = {}
        for channel, state, was_tried, count in session.execute(
            select(DeliveryRow.channel, DeliveryRow.state, tried, func.count())
            .join(approved, approved.c.revision_id == DeliveryRow.revision_id)
            .where(showing)
            .group_by(DeliveryRow.channel, DeliveryRow.state, tried)
        ):
            line = states.setdefault(channel, {})
            line[state.value] = line.get(state.value, 0) + count
            if state in ENDED or (state is DeliveryState.expired and was_tried):
                attempted[channel] = attempted.get(channel, 0) + count
            if state is DeliveryState.sent:
                landed[channel] = landed.get(channel, 0) + count
        # The first send of each revision on each channel: a row per revision and channel, not per
        # delivery, however many signs or SMS batches the item went to.
        firsts: dict[int, float] = {}
        per_channel: dict[str, list[float]] = {}
        for revision_id, channel, approved_at, first_sent in session.execute(
            select(DeliveryRow.revision_id, DeliveryRow.channel, approved.c.at, func.min(DeliveryRow.sent_at))
            .join(approved, approved.c.revision_id == DeliveryRow.revision_id)
            .where(showing, DeliveryRow.sent_at.is_not(None))
            .group_by(DeliveryRow.revision_id, DeliveryRow.channel, approved.c.at)
        ):
            seconds = (first_sent - approved_at).total_seconds()
            per_channel.setdefault(channel, []).append(seconds)
            firsts[revision_id] = min(seconds, firsts.get(revision_id, seconds))
        corrections = [
            {
                "item": item.id,
                "revision": revision.number,
                "title": str(revision.document.get("title", item.title)),
                "department": item.department,
                "approved_at": local(review.at),
                "approver": review.approver,
            }
            for revision, item, review in session.execute(
                select(RevisionRow, ItemRow, ApprovalRow)
                .join(ItemRow, ItemRow.id == RevisionRow.item_id)
                .join(ApprovalRow, ApprovalRow.revision_id == RevisionRow.id)
                .where(
                    RevisionRow.number > 1,
                    ApprovalRow.decision == "approved",
                    ApprovalRow.at >= since,
                    ApprovalRow.at < until,
                )
                .order_by(ApprovalRow.at, RevisionRow.id)
            )
        ]
        withdrawals = [
            {
                "item": item.id,
                "title": item.title,
                "department": item.department,
                "withdrawn_at": local(event.at),
                "by": event.actor,
                "reason": event.detail.get("reason"),
            }
            for event, item in session.execute(
                select(EventRow, ItemRow)
                .join(ItemRow, ItemRow.id == EventRow.item_id)
                .where(EventRow.name == "item.withdrawn", EventRow.at >= since, EventRow.at < until)
                .order_by(EventRow.at, EventRow.id)
            )
        ]
    lines = [
        ChannelLine(
            channel=channel,
            states={
                state.value: states[channel][state.value]
                for state in STATES
                if state.value in states[channel]
            },
            landed=landed.get(channel, 0),
            attempted=attempted.get(channel, 0),
            latency=Latency(tuple(sorted(per_channel.get(channel, [])))),
        )
        for channel in sorted(states)
    ]
    return Report(
        label=label or f"{start.isoformat()}–{end.isoformat()}",
        start=start,
        end=end,
        zone=settings.time_zone,
        by_kind=by_kind,
        by_department=by_department,
        channels=lines,
        latency=Latency(tuple(sorted(firsts.values()))),
        corrections=corrections,
        withdrawals=withdrawals,
    )


def _counted(rows: Any) -> dict[str, int]:
    """(name, count) rows as a dict, the largest count first (ties by name)."""
    return {name: count for name, count in sorted(rows, key=lambda row: (-row[1], row[0]))}


def duration_text(seconds: float | None) -> str:
    """A duration as people read it: ``42 s``, ``3 min 05 s``, ``1 h 02 min``; ``–`` for none."""
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 and whole != seconds else f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min" if whole % 60 == 0 else f"{whole // 60} min {whole % 60:02d} s"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours} h" if minutes == 0 else f"{hours} h {minutes:02d} min"


def rate_text(rate: float | None) -> str:
    """A success rate as a percentage with one decimal; ``–`` when nothing was attempted."""
    return "–" if rate is None else f"{rate * 100:.1f}%"


# -- the HTML page and its charts ------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One bar of a chart, placed: its rectangle, its label and its value's text and where they go."""

    label: str
    value: str
    x: float
    y: float
    width: float
    height: float
    label_x: float
    label_y: float
    value_x: float
    value_y: float


@dataclass(frozen=True)
class Chart:
    """An SVG chart's size and its bars (the template draws them)."""

    title: str
    width: int
    height: int
    bars: list[Bar]
    #: horizontal bars put labels above each bar; vertical ones under it
    horizontal: bool


def bar_chart(title: str, values: list[tuple[str, float, str]], width: int = 640) -> Chart:
    """Horizontal bars, one row per (label, value, value's text): the label on a line of its own above
    the bar, so a long department name never has to be cut."""
    row, bar, top = 40, 16, 8
    plot = width - 120  # room on the right for the value's text
    largest = max((value for _, value, _ in values), default=0) or 1
    bars = []
    for n, (label, value, text) in enumerate(values):
        y = top + n * row + 16
        length = max(1.0, plot * value / largest) if value else 0.0
        bars.append(
            Bar(label, text, 0, y, round(length, 1), bar, 0, y - 4, round(length + 6, 1), y + bar - 3)
        )
    return Chart(title, width, top + len(values) * row + 4, bars, True)


def column_chart(title: str, values: list[tuple[str, int]], width: int = 640, height: int = 220) -> Chart:
    """Vertical bars (a histogram), one column per (label, count), the count above each column."""
    bottom, top = height - 28, 18
    step = width / max(1, len(values))
    largest = max((count for _, count in values), default=0) or 1
    bars = []
    for n, (label, count) in enumerate(values):
        tall = (bottom - top) * count / largest
        x = n * step + step * 0.15
        bars.append(
            Bar(
                label,
                str(count),
                round(x, 1),
                round(bottom - tall, 1),
                round(step * 0.7, 1),
                round(tall, 1),
                round(n * step + step / 2, 1),
                bottom + 16,
                round(n * step + step / 2, 1),
                round(bottom - tall - 4, 1),
            )
        )
    return Chart(title, width, height, bars, False)


def charts(report: Report) -> dict[str, Chart]:
    """The page's charts: items by kind and by department, deliveries per channel, time to publication."""
    return {
        "kinds": bar_chart(
            "按类型统计的信息 · items by kind", [(k, n, str(n)) for k, n in report.by_kind.items()]
        ),
        "departments": bar_chart(
            "按部门统计的信息 · items by department",
            [(d, n, str(n)) for d, n in report.by_department.items()],
        ),
        "channels": bar_chart(
            "各渠道投递 · deliveries per channel (sent / all, success rate)",
            [
                (line.channel, line.total, f"{line.landed}/{line.total} · {rate_text(line.rate)}")
                for line in report.channels
            ],
        ),
        "latency": column_chart("从批准到发布的时间 · approval to publication", report.latency.histogram()),
    }


def render_html(report: Report, settings: Settings) -> str:
    """The report as one HTML page: its styles inline, its charts inline SVG, every text escaped."""
    environment = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(Path(settings.templates_dir)),
        autoescape=True,  # department names and titles are what people typed
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["duration"] = duration_text
    environment.filters["rate"] = rate_text
    return environment.get_template(TEMPLATE).render(
        report=report.to_json(), charts=charts(report), states=[state.value for state in STATES]
    )
