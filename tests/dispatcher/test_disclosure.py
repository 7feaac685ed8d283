"""The quarterly disclosure report: counts, success rates, nearest-rank percentiles, the quarter's bounds
in the office's zone, and the HTML page (escaped, its SVG charts drawn)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from dispatcher import approval
from dispatcher.disclosure import (
    LATENCY_BOUNDS,
    Latency,
    compile_report,
    duration_text,
    nearest_rank,
    quarter_days,
    quarterly,
    render_html,
)
from dispatcher.errors import InvalidItemError
from dispatcher.items import parse_item
from dispatcher.ledger import (
    Action,
    ApprovalRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RevisionRow,
)
from settings import Settings
from tests.dispatcher.test_migrations import postgres, postgres_url  # noqa: F401  (fixtures)
from tests.support import item_doc

BEIJING = ZoneInfo("Asia/Shanghai")
HOSTILE = '<script>alert("x")</script>&局'


def beijing(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=BEIJING)  # type: ignore[arg-type, misc]


#: a delivery to write: (channel, target, state, attempts, seconds from approval to sent_at or None)
Planned = tuple[str, str, DeliveryState, int, float | None]


def approved(ledger: Ledger, at: datetime, deliveries: list[Planned], **changes: object) -> int:
    """An item submitted through the flow, then approved at ``at`` with ``deliveries`` in the states
    given. The rows are written here: approvals are append-only and stamped with the wall clock, and
    these approvals lie in a quarter of the test's choosing."""
    item_id = approval.submit(ledger, parse_item(item_doc(**changes)))
    approve_at(ledger, item_id, 1, at, deliveries)
    return item_id


def approve_at(ledger: Ledger, item_id: int, number: int, at: datetime, deliveries: list[Planned]) -> None:
    with ledger.session() as session:
        item = session.get_one(ItemRow, item_id)
        revision = session.scalars(
            select(RevisionRow).where(RevisionRow.item_id == item_id, RevisionRow.number == number)
        ).one()
        session.add(
            ApprovalRow(
                revision_id=revision.id, approver="王强" if number > 1 else "陈刚", decision="approved", at=at
            )
        )
        item.state, item.live_revision_id = ItemState.approved, revision.id
        for channel, target, state, attempts, after in deliveries:
            session.add(
                DeliveryRow(
                    revision_id=revision.id,
                    item_id=item_id,
                    channel=channel,
                    target=target,
                    queue=channel,
                    action=Action.publish if number == 1 else Action.update,
                    idempotency_key=f"{revision.id}:{channel}:{target}",
                    payload={},
                    payload_digest="0" * 64,
                    state=state,
                    attempts=attempts,
                    sent_at=at + timedelta(seconds=after) if after is not None else None,
                )
            )


@pytest.fixture
def quarter(ledger: Ledger) -> dict[str, int]:
    return plant_quarter(ledger)


def plant_quarter(ledger: Ledger) -> dict[str, int]:
    """A ledger whose 2026Q4 is known to the second:

    - ``last``: a warning approved 2026-12-31 23:30 Beijing (in Q4): site sent after 30 s, sign 001
      after 90 s, sign 002 dead after 5 tries; corrected at 23:50 (site updated after 10 s);
    - ``first``: a release of a hostile department approved 2026-10-01 00:00 Beijing (in Q4): site
      failed at the first try; withdrawn on 15 November;
    - ``tip``: a warning of the same department approved 2026-10-02 (in Q4): site sent after 600 s,
      both signs superseded before any try;
    - ``next``: approved 2027-01-01 00:10 Beijing and ``before``: 2026-09-30 23:59:59 (neither in Q4).
    """
    sent, dead, failed = DeliveryState.sent, DeliveryState.dead, DeliveryState.failed
    last = approved(
        ledger,
        beijing(2026, 12, 31, 23, 30),
        [
            ("website", "site", sent, 1, 30),
            ("display", "BJ-CY-001", sent, 1, 90),
            ("display", "BJ-CY-002", dead, 5, None),
        ],
    )
    approval.revise(ledger, last, parse_item(item_doc(author="李娜", channels=["website"], body="更正。")))
    approve_at(ledger, last, 2, beijing(2026, 12, 31, 23, 50), [("website", "site", sent, 1, 10)])

    first = approved(
        ledger,
        beijing(2026, 10, 1, 0, 0),
        [("website", "site", failed, 1, None)],
        channels=["website"],
        department=HOSTILE,
        kind="release",
        title="关于调整防汛应急响应等级的通知",
        event=None,
        severity=None,
        urgency=None,
        certainty=None,
        short_text=None,
    )
    with ledger.session() as session:
        session.get_one(ItemRow, first).state = ItemState.withdrawn
        session.add(
            EventRow(
                at=beijing(2026, 11, 15, 9, 0),
                name="item.withdrawn",
                actor="王强",
                item_id=first,
                detail={"reason": "误发", "revision": 1},
            )
        )

    superseded = DeliveryState.superseded
    tip = approved(
        ledger,
        beijing(2026, 10, 2, 8, 0),
        [
            ("website", "site", sent, 1, 600),
            ("display", "BJ-CY-001", superseded, 0, None),
            ("display", "BJ-CY-002", superseded, 0, None),
        ],
        department=HOSTILE,
    )
    # Not showing the item: a takedown's delivery is not a publication and is not counted.
    with ledger.session() as session:
        revision = session.scalars(select(RevisionRow).where(RevisionRow.item_id == tip)).one()
        session.add(
            DeliveryRow(
                revision_id=revision.id,
                item_id=tip,
                channel="website",
                target="site",
                queue="website",
                action=Action.withdraw,
                idempotency_key="takedown",
                payload={},
                payload_digest="0" * 64,
                state=DeliveryState.failed,
                attempts=1,
            )
        )

    later = approved(
        ledger, beijing(2027, 1, 1, 0, 10), [("website", "site", sent, 1, 5)], department="海淀区"
    )
    before = approved(
        ledger, beijing(2026, 9, 30, 23, 59, 59), [("website", "site", sent, 1, 5)], department="海淀区"
    )
    return {"last": last, "first": first, "tip": tip, "next": later, "before": before}


def test_a_quarter_is_its_days_and_anything_else_is_refused() -> None:
    assert quarter_days("2026Q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert quarter_days("2027q1") == (date(2027, 1, 1), date(2027, 3, 31))
    assert quarter_days("2028Q1") == (date(2028, 1, 1), date(2028, 3, 31))
    assert quarter_days("2026Q2") == (date(2026, 4, 1), date(2026, 6, 30))
    for bad in ("2026Q5", "2026Q0", "2026-Q4", "26Q4", "Q4", "", "2026Q4x"):
        with pytest.raises(InvalidItemError) as caught:
            quarter_days(bad)
        assert "--quarter" in str(caught.value) and caught.value.exit_code == 2


def test_percentiles_are_by_nearest_rank() -> None:
    ten = [float(n) for n in range(1, 11)]
    assert nearest_rank(ten, 50) == 5.0  # the lower middle of an even count, never 5.5
    assert nearest_rank(ten, 95) == 10.0  # ⌈9.5⌉ = 10
    assert nearest_rank(ten, 90) == 9.0
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0  # ⌈2.5⌉ = 3, not rounded to 2
    assert nearest_rank([1.0, 2.0, 3.0, 4.0, 5.0], 41) == 3.0  # ⌈2.05⌉ = 3
    assert nearest_rank([float(n) for n in range(1, 21)], 95) == 19.0
    assert nearest_rank([float(n) for n in range(1, 102)], 95) == 96.0  # ⌈95.95⌉ = 96
    assert nearest_rank([7.0], 50) == nearest_rank([7.0], 95) == 7.0
    assert nearest_rank([3.0, 4.0], 0) == 3.0
    assert nearest_rank([], 50) is None
    odd = Latency((30.0, 10.0, 600.0))
    assert (odd.median, odd.p95) == (30.0, 600.0)


def test_the_latency_histogram_puts_each_value_under_its_bound() -> None:
    spread = Latency((0.5, 1.0, 1.5, 60.0, 61.0, 3600.0, 3601.0))
    counts = dict(spread.histogram())
    assert len(counts) == len(LATENCY_BOUNDS) + 1
    assert counts["≤1 s"] == 2 and counts["≤2 s"] == 1 and counts["≤1 min"] == 1
    assert counts["≤2 min"] == 1 and counts["≤1 h"] == 1 and counts[">1 h"] == 1
    assert sum(counts.values()) == 7


def test_durations_read_as_people_read_them() -> None:
    assert [duration_text(s) for s in (None, 2.5, 42, 60, 185, 3600, 3720)] == [
        "–",
        "2.5 s",
        "42 s",
        "1 min",
        "3 min 05 s",
        "1 h",
        "1 h 02 min",
    ]


def test_the_quarter_counts_items_deliveries_rates_and_times(
    ledger: Ledger, settings: Settings, quarter: dict[str, int]
) -> None:
    report = quarterly(ledger, settings, "2026q4")
    assert (report.label, report.start, report.end) == ("2026Q4", date(2026, 10, 1), date(2026, 12, 31))
    # 23:30 on New Year's Eve and 00:00 on 1 October, Beijing, are in; 00:10 on New Year's Day and
    # 23:59:59 on 30 September are not (in UTC both of the latter are still/already other days).
    assert report.items == 3
    assert report.by_kind == {"warning": 2, "release": 1}
    assert report.by_department == {HOSTILE: 2, "朝阳区应急管理局": 1}

    lines = {line.channel: line for line in report.channels}
    assert set(lines) == {"website", "display"}
    site, signs = lines["website"], lines["display"]
    # site: last (sent), its correction (sent), first (failed), tip (sent)
    assert site.states == {"sent": 3, "failed": 1} and (site.landed, site.attempted) == (3, 4)
    assert site.rate == 0.75
    # signs: last's 001 sent, 002 dead; tip's two superseded before a try (not attempted)
    assert signs.states == {"sent": 1, "dead": 1, "superseded": 2}
    assert (signs.landed, signs.attempted, signs.rate) == (1, 2, 0.5)

    # Each approved revision once, to its first send anywhere: last 30 s, its correction 10 s, tip 600 s
    # (first never went out).
    assert report.latency.seconds == (10.0, 30.0, 600.0)
    assert (report.latency.median, report.latency.p95) == (30.0, 600.0)
    assert site.latency.seconds == (10.0, 30.0, 600.0) and signs.latency.seconds == (90.0,)

    assert [(c["item"], c["revision"], c["approver"]) for c in report.corrections] == [
        (quarter["last"], 2, "王强")
    ]
    assert report.corrections[0]["approved_at"] == "2026-12-31T23:50:00+08:00"
    assert [(w["item"], w["by"], w["reason"]) for w in report.withdrawals] == [
        (quarter["first"], "王强", "误发")
    ]
    assert report.withdrawals[0]["withdrawn_at"] == "2026-11-15T09:00:00+08:00"

    as_json = report.to_json()
    assert as_json["period"] == "2026Q4" and as_json["items"] == 3
    assert as_json["channels"][1]["success_rate"] == 0.75 and as_json["latency"]["median_seconds"] == 30.0


def test_the_next_quarter_holds_what_came_after_midnight_in_beijing(
    ledger: Ledger, settings: Settings, quarter: dict[str, int]
) -> None:
    report = quarterly(ledger, settings, "2027Q1")
    assert report.items == 1 and report.by_department == {"海淀区": 1}
    assert report.latency.seconds == (5.0,) and report.corrections == [] and report.withdrawals == []
    # A span of days works the same way: 30 September alone holds the one approved a second before Q4.
    day = compile_report(ledger, settings, date(2026, 9, 30), date(2026, 9, 30))
    assert day.items == 1 and day.label == "2026-09-30–2026-09-30"


def test_the_page_is_one_escaped_file_with_its_charts(
    ledger: Ledger, settings: Settings, quarter: dict[str, int]
) -> None:
    page = render_html(quarterly(ledger, settings, "2026Q4"), settings)
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    assert (
        "<script" not in page
        and "src=" not in page
        and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&amp;局" in page
    assert "朝阳区应急管理局" in page and "2026Q4" in page
    report = quarterly(ledger, settings, "2026Q4")
    approved = re.search(r"items approved</th><td class=\"n\">([^<]*)</td>", page)
    assert approved is not None and approved[1] == str(report.items)  # a number, not a method's repr

    def bars(chart: str) -> int:
        found = re.search(rf'<svg id="chart-{chart}".*?</svg>', page, re.S)
        assert found, chart
        return found.group(0).count('<rect class="bar"')

    assert bars("kinds") == 2 and bars("departments") == 2 and bars("channels") == 2
    assert bars("latency") == len(LATENCY_BOUNDS) + 1
    # the busiest department's bar is the longest: the chart's lengths follow the counts
    departments = re.search(r'<svg id="chart-departments".*?</svg>', page, re.S)
    assert departments
    widths = [float(w) for w in re.findall(r'<rect class="bar"[^>]*width="([\d.]+)"', departments.group(0))]
    assert widths[0] == 2 * widths[1]


def test_the_same_report_from_a_postgresql_ledger(
    postgres_url: str,  # noqa: F811
    settings: Settings,
) -> None:
    ledger = Ledger(postgres_url)
    try:
        plant_quarter(ledger)
        report = quarterly(ledger, settings, "2026Q4")
    finally:
        ledger.dispose()
    assert report.items == 3 and report.by_department == {HOSTILE: 2, "朝阳区应急管理局": 1}
    assert report.latency.seconds == (10.0, 30.0, 600.0)
    assert [(line.channel, line.landed, line.attempted) for line in report.channels] == [
        ("display", 1, 2),
        ("website", 3, 4),
    ]
    assert len(report.corrections) == 1 and len(report.withdrawals) == 1


@pytest.mark.parametrize("quarter", ["0000Q1", "0001Q1", "9999Q4", "1969Q4"])
def test_a_quarter_outside_the_ledgers_years_is_refused(quarter: str) -> None:
    with pytest.raises(InvalidItemError, match="the year must be from 1970 to 9998"):
        quarter_days(quarter)
