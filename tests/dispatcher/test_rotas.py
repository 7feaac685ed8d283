"""Rotas through the ledger, on the flow's own clock (``ledger.shift``): nothing here sleeps.

A week of a rota with two cadences, a slot missed beyond the grace period, a scheduler restarted in the
middle of a slot and two schedulers at once, pause, resume and retire, a new version approved while the
old one runs; quiet hours and the daily cap of routine texts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from dispatcher import approval, outbox, rotas
from dispatcher.delivery import deliver
from dispatcher.errors import RefusedError
from dispatcher.items import parse_item
from dispatcher.ledger import (
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
    RotaSlotRow,
    SmsCapRow,
)
from settings import Settings
from tests.support import item_doc

SHANGHAI = ZoneInfo("Asia/Shanghai")
#: a Monday
MONDAY = datetime(2031, 3, 3, tzinfo=SHANGHAI)

ROTA: dict[str, Any] = {
    "name": "防汛安全提示",
    "department": "朝阳区应急管理局",
    "author": "张敏",
    "cadences": ["every day at 10:00", "mondays and thursdays at 18:30"],
    "order": "same",
    "expires_after": "1d",
    "defaults": {"channels": ["website", "sms"], "areas": ["110105"], "topics": ["safety"]},
    "tips": [
        {"title": "汛期出行提示", "body": "汛期出行请关注预警信息，避开积水路段。"},
        {"title": "地下空间防汛提示", "body": "暴雨时请远离地下车库和地下通道。"},
        {"title": "居家防汛提示", "body": "检查门窗和排水设施，准备应急物品。"},
    ],
}


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    return sandboxed


def write_rota(tmp_path: Path, name: str = "rota.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**ROTA, **changes}, allow_unicode=True), encoding="utf-8")
    return path


def at(ledger: Ledger, moment: datetime) -> None:
    """Move the flow's clock to ``moment``."""
    ledger.shift = moment - datetime.now(UTC)


def running(ledger: Ledger, tmp_path: Path, start: datetime = MONDAY, **changes: Any) -> int:
    """A rota submitted and approved at ``start``; its id."""
    at(ledger, start)
    done = rotas.submit(ledger, write_rota(tmp_path, **changes))
    rotas.approve(ledger, done.rota_id, "陈刚")
    return done.rota_id


def slots(ledger: Ledger, rota_id: int) -> list[RotaSlotRow]:
    with ledger.session() as session:
        return list(
            session.scalars(
                select(RotaSlotRow).where(RotaSlotRow.rota_id == rota_id).order_by(RotaSlotRow.slot_at)
            )
        )


def titles(ledger: Ledger, rota_id: int) -> list[str]:
    with ledger.session() as session:
        return [
            session.get_one(ItemRow, s.item_id).title
            for s in session.scalars(
                select(RotaSlotRow)
                .where(RotaSlotRow.rota_id == rota_id, RotaSlotRow.item_id.is_not(None))
                .order_by(RotaSlotRow.slot_at)
            )
        ]


def test_a_week_of_two_cadences_sends_one_item_per_slot_in_turn(
    ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    rota_id = running(ledger, tmp_path)
    # The scheduler runs a few seconds after each slot, and once more at random moments between
    times = []
    for day in range(7):
        for hour, minute in ((10, 0), (18, 30), (23, 0)):
            times.append(MONDAY + timedelta(days=day, hours=hour, minutes=minute, seconds=5))
    for moment in times:
        at(ledger, moment)
        rotas.run_due(ledger, settings)
    decided = slots(ledger, rota_id)
    local = [s.slot_at.astimezone(SHANGHAI) for s in decided]
    assert len(decided) == 9 and {s.state for s in decided} == {"sent"}
    assert [t.strftime("%a %H:%M") for t in local[:3]] == ["Mon 10:00", "Mon 18:30", "Tue 10:00"]
    assert sum(1 for t in local if t.strftime("%H:%M") == "18:30") == 2  # Monday and Thursday
    assert titles(ledger, rota_id) == [ROTA["tips"][n % 3]["title"] for n in range(9)]  # in turn, no repeat
    with ledger.session() as session:
        items = list(session.scalars(select(ItemRow).where(ItemRow.kind == "safety_tip")))
        assert {i.state for i in items} == {ItemState.approved} and len(items) == 9
        approved = session.scalars(
            select(EventRow).where(EventRow.name == "item.approved", EventRow.item_id == items[0].id)
        ).one()
    assert approved.actor == "陈刚" and approved.detail["basis"]["rota"] == rota_id


def test_a_slot_missed_beyond_the_grace_period_is_skipped_and_one_within_it_sent_late(
    ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    rota_id = running(ledger, tmp_path)
    at(ledger, MONDAY + timedelta(hours=18, minutes=40))  # everything was down from 09:00 to 18:40
    rotas.run_due(ledger, settings)
    first, second = slots(ledger, rota_id)
    assert (first.state, first.item_id) == ("skipped", None) and "grace" in (first.reason or "")
    assert second.state == "late" and second.item_id is not None
    assert titles(ledger, rota_id) == [ROTA["tips"][0]["title"]]  # a skipped slot uses no tip


def test_two_schedulers_at_once_make_one_item_per_slot(
    ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    rota_id = running(ledger, tmp_path)
    others = [Ledger(settings.ledger_url) for _ in range(3)]
    for other in others:
        other.shift = ledger.shift + timedelta(hours=10, seconds=5)
    threads = [threading.Thread(target=rotas.run_due, args=(other, settings)) for other in others]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for other in others:
        other.dispose()
    assert [s.state for s in slots(ledger, rota_id)] == ["sent"]
    with ledger.session() as session:
        assert session.query(ItemRow).filter_by(kind="safety_tip").count() == 1


def test_a_scheduler_stopped_in_the_middle_of_a_slot_finishes_it_once(
    ledger: Ledger, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rota_id = running(ledger, tmp_path)
    at(ledger, MONDAY + timedelta(hours=10, seconds=5))

    def stopped(*_args: Any, **_kwargs: Any) -> None:
        raise SystemExit("the scheduler's process stopped here")

    # The slot and its item are written; the process stops before approving it.
    monkeypatch.setattr(rotas, "_approve_item", stopped)
    with pytest.raises(SystemExit):
        rotas.run_due(ledger, settings)
    monkeypatch.undo()
    with ledger.session() as session:
        assert session.query(ItemRow).filter_by(kind="safety_tip").one().state is ItemState.submitted
    rotas.run_due(ledger, settings)  # restarted: the same slot, the same item, approved now
    with ledger.session() as session:
        item = session.query(ItemRow).filter_by(kind="safety_tip").one()
        assert item.state is ItemState.approved
    assert len(slots(ledger, rota_id)) == 1


def test_pause_resume_retire_and_a_new_version_each_on_the_record(
    ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    rota_id = running(ledger, tmp_path)
    with pytest.raises(RefusedError, match="nothing to review"):
        rotas.approve(ledger, rota_id, "王强")  # approved once: a second approval of it is refused
    rotas.change(ledger, settings, rota_id, "pause", "李娜", "汛期结束前暂停")
    at(ledger, MONDAY + timedelta(hours=10, seconds=5))
    assert rotas.run_due(ledger, settings) == []
    at(ledger, MONDAY + timedelta(hours=11))
    rotas.change(ledger, settings, rota_id, "resume", "李娜")
    assert [(s.state, s.reason) for s in slots(ledger, rota_id)] == [("skipped", "the rota was paused")]

    # A new file: until it is approved the approved version keeps running
    edited = {**ROTA["tips"][0], "title": "新版汛期出行提示"}
    rotas.submit(ledger, write_rota(tmp_path, "v2.yaml", tips=[edited]))
    at(ledger, MONDAY + timedelta(hours=18, minutes=30, seconds=5))
    rotas.run_due(ledger, settings)
    assert titles(ledger, rota_id)[-1] == ROTA["tips"][0]["title"]
    with pytest.raises(RefusedError, match="written by 张敏"):
        rotas.approve(ledger, rota_id, "张敏")
    rotas.approve(ledger, rota_id, "陈刚")
    at(ledger, MONDAY + timedelta(days=1, hours=10, seconds=5))
    rotas.run_due(ledger, settings)
    assert titles(ledger, rota_id)[-1] == "新版汛期出行提示"

    rotas.change(ledger, settings, rota_id, "retire", "李娜", "汛期结束")
    at(ledger, MONDAY + timedelta(days=2, hours=10, seconds=5))
    assert rotas.run_due(ledger, settings) == []
    with pytest.raises(RefusedError, match="retired"):
        rotas.change(ledger, settings, rota_id, "resume", "李娜")
    names = [e.name for e in _rota_events(ledger)]
    assert names.count("rota.approved") == 2 and "rota.paused" in names and "rota.retired" in names
    assert rotas.listing(ledger)[0]["state"] == "retired"


def _rota_events(ledger: Ledger) -> list[EventRow]:
    with ledger.session() as session:
        return list(
            session.scalars(select(EventRow).where(EventRow.name.like("rota.%")).order_by(EventRow.id))
        )


# -- quiet hours and the daily cap -------------------------------------------------------------------


def quiet(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"quiet_hours": {"sms": "21:00-08:00"}, **changes})


def test_a_routine_text_waits_out_quiet_hours_and_a_warning_does_not(
    ledger: Ledger, settings: Settings
) -> None:
    night = quiet(settings)
    at(ledger, datetime(2031, 3, 3, 21, 0, tzinfo=SHANGHAI))  # quiet from 21:00
    tip = approval.submit(ledger, parse_item(_tip()))
    approval.approve(ledger, night, tip, "陈刚")
    warning = approval.submit(
        ledger, parse_item(item_doc(channels=["sms"], expires="2031-03-10T00:00:00+08:00"))
    )
    approval.approve(ledger, night, warning, "陈刚")
    with ledger.session() as session:
        texts = {
            d.item_id: d.id for d in session.scalars(select(DeliveryRow).where(DeliveryRow.channel == "sms"))
        }
    assert deliver(ledger, night, texts[warning], "w") is DeliveryState.sent
    assert deliver(ledger, night, texts[tip], "w") is None
    with ledger.session() as session:
        waiting = session.get_one(DeliveryRow, texts[tip])
        assert waiting.state is DeliveryState.retrying and waiting.attempts == 0
        assert waiting.next_attempt_at.astimezone(SHANGHAI) == datetime(2031, 3, 4, 8, 0, tzinfo=SHANGHAI)
        assert "quiet hours" in (waiting.last_error or "")
    at(ledger, datetime(2031, 3, 3, 20, 59, tzinfo=SHANGHAI) + timedelta(hours=11, minutes=1))  # 08:00
    assert deliver(ledger, night, texts[tip], "w") is DeliveryState.sent


def _tip(**changes: Any) -> dict[str, Any]:
    return item_doc(
        kind="safety_tip",
        severity=None,
        urgency=None,
        certainty=None,
        channels=["sms"],
        topics=["safety"],
        expires=(datetime(2031, 3, 10, tzinfo=SHANGHAI)).isoformat(),
        **changes,
    )


@pytest.mark.parametrize("over", ["wait", "skip"])
def test_texts_over_a_phones_daily_cap_wait_for_the_next_day_or_are_skipped(
    ledger: Ledger, settings: Settings, over: str, broker: outbox.Broker
) -> None:
    capped = quiet(settings, sms=settings.sms.model_copy(update={"daily_cap": 1, "over_cap": over}))
    at(ledger, datetime(2031, 3, 3, 10, 0, tzinfo=SHANGHAI))
    first = approval.submit(ledger, parse_item(_tip(title="第一条提示")))
    approval.approve(ledger, capped, first, "陈刚")
    second = approval.submit(ledger, parse_item(_tip(title="第二条提示")))
    result = approval.approve(ledger, capped, second, "陈刚", broker)
    with ledger.session() as session:
        batches = list(session.scalars(select(DeliveryRow).where(DeliveryRow.item_id == second)))
        caps = list(session.scalars(select(SmsCapRow).where(SmsCapRow.item_id == second)))
        capped_event = session.scalars(
            select(EventRow).where(EventRow.item_id == second, EventRow.name == "item.capped")
        ).one()
    # The safety subscriber (one, who consented) had their one text today
    assert [(c.phone, c.day, c.outcome) for c in caps] == [
        ("+8613800138000", "2031-03-03", "deferred" if over == "wait" else "skipped")
    ]
    assert capped_event.detail["phones"] == 1 and any("routine texts" in note for note in result.notes)
    if over == "wait":
        (deferred,) = batches
        assert deferred.target == "deferred-001"
        assert deferred.next_attempt_at.astimezone(SHANGHAI) == datetime(2031, 3, 4, 8, 0, tzinfo=SHANGHAI)
        # Found in review: it was published at approval, and then waited for an empty queue. It waits in
        # the ledger, and the sweeper publishes it when its day comes.
        assert result.enqueued == 0 and deferred.enqueued_at is None
        assert deferred.id not in {i for i, _ in outbox.due(ledger, capped, broker)}
        at(ledger, datetime(2031, 3, 4, 8, 0, 1, tzinfo=SHANGHAI))
        assert deferred.id in {i for i, _ in outbox.due(ledger, capped, broker)}
    else:
        assert batches == []


def test_a_tip_the_channels_refuse_fails_its_slot_once_on_the_record(
    ledger: Ledger, settings: Settings, tmp_path: Path
) -> None:
    """Found in review: a tip a sign cannot show stopped every later sweep, its slot saying sent."""
    tips = [
        {
            "title": "雷雨天气安全提示",
            "body": "雷雨天气请勿在大树下避雨。",
            "short_text": "雷雨请勿在树下避雨☂",
        }
    ]
    rota_id = running(ledger, tmp_path, tips=tips, defaults={**ROTA["defaults"], "channels": ["display"]})
    at(ledger, MONDAY + timedelta(hours=10, seconds=5))
    rotas.run_due(ledger, settings)
    at(ledger, MONDAY + timedelta(hours=10, minutes=5))
    rotas.run_due(ledger, settings)  # not tried again
    (slot,) = slots(ledger, rota_id)
    assert slot.state == "failed" and "☂" in (slot.reason or "")
    with ledger.session() as session:
        assert session.get_one(ItemRow, slot.item_id).state is ItemState.rejected
        assert session.query(EventRow).filter_by(name="rota.slot_failed").count() == 1
