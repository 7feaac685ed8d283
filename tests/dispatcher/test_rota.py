from __future__ import annotations

import json
import random
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from dispatcher.errors import InvalidItemError
from dispatcher.items import Kind
from dispatcher.rota import (
    Order,
    QuietHours,
    Rota,
    day_of,
    file_digest,
    load_rota,
    next_day_start,
    parse_cadence,
    parse_quiet_hours,
    parse_rota,
    preview,
    slots,
    tip_for,
)
from tests.support import changed

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rota.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
#: a Monday
MONDAY = datetime(2026, 6, 1, tzinfo=SHANGHAI)

ROTA: dict[str, Any] = {
    "name": "防汛安全提示",
    "department": "北京市应急管理局",
    "author": "张敏",
    "cadences": ["every day at 10:00"],
    "order": "same",
    "expires_after": "1d",
    "defaults": {"channels": ["website", "sms"], "areas": ["110000"], "topics": ["safety"]},
    "tips": [
        {"title": "汛期出行安全提示", "body": "汛期出行请关注预警信息。"},
        {"title": "地下空间防汛提示", "body": "地下空间进水请立即撤离。", "topics": ["safety", "flood"]},
        {"title": "燃气使用安全提示", "body": "闻到燃气异味请开窗通风。", "channels": ["website"]},
    ],
}


def rota_doc(**changes: Any) -> dict[str, Any]:
    """A valid rota document with ``changes`` applied (None removes a field)."""
    return changed(ROTA, changes)


def rota_of(tip_count: int, order: str = "shuffled", name: str = "轮播") -> Rota:
    tips = [
        {"title": f"安全提示第{number}条", "body": f"第{number}条提示的正文。"} for number in range(tip_count)
    ]
    return parse_rota(rota_doc(tips=tips, order=order, name=name))


def problems_of(doc: Any) -> dict[str, str]:
    with pytest.raises(InvalidItemError) as caught:
        parse_rota(doc, "rota.yaml")
    return dict(caught.value.problems)


def local(day: date | datetime, hour: int, minute: int = 0, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


# -- the rota file ----------------------------------------------------------------------------------


def test_the_example_rota_loads_and_every_tip_makes_a_safety_tip() -> None:
    rota = load_rota(EXAMPLE)
    assert 6 <= len(rota.tips) <= 8
    assert len(rota.cadences) == 2
    assert rota.order is Order.shuffled
    assert rota.defaults.channels == ["website", "sms", "microblog"]
    at = local(MONDAY, 10)
    for index, tip in enumerate(rota.tips):
        item = rota.item_for(index, at)
        assert item.kind is Kind.safety_tip
        assert (item.title, item.author, item.department) == (tip.title, "张敏", "北京市应急管理局")
        assert item.expires == at + timedelta(days=1)
        assert item.channels == ["website", "sms", "microblog"]
        assert item.areas == ["110000"]
        assert "safety" in item.topics


def test_a_tip_takes_the_defaults_it_does_not_give_itself() -> None:
    rota = parse_rota(rota_doc(tips=[*ROTA["tips"], {"title": "无主题", "body": "正文。", "topics": []}]))
    at = local(MONDAY, 10)
    first, second, third, fourth = (rota.item_for(index, at) for index in range(4))
    assert (first.channels, first.topics) == (["website", "sms"], ["safety"])
    assert second.topics == ["safety", "flood"]
    assert third.channels == ["website"]
    assert fourth.topics == []  # an empty list is the tip's own choice, not a gap the defaults fill
    assert rota.tips[0].title == first.title


def test_a_tip_expires_after_its_lifetime_in_elapsed_time() -> None:
    rota = parse_rota(rota_doc(expires_after="12h"))
    assert rota.item_for(0, local(MONDAY, 10)).expires == local(MONDAY, 22)
    # across Berlin's spring change, 1d is 24 hours: 10:00 +01:00 → 11:00 +02:00
    daily = parse_rota(rota_doc())
    expires = daily.item_for(0, local(date(2026, 3, 28), 10, zone=BERLIN)).expires
    assert expires.astimezone(UTC) == datetime(2026, 3, 29, 9, tzinfo=UTC)
    with pytest.raises(IndexError):
        daily.item_for(3, local(MONDAY, 10))


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"tips": [ROTA["tips"][0], {"body": "没有标题。"}]}, "tips.1.title", "Field required"),
        ({"tips": [{"title": "", "body": "正文。"}]}, "tips.0.title", "at least 1 character"),
        ({"tips": [{"title": "提示", "body": "正文。", "areas": ["1101"]}]}, "tips.0.areas", "6-digit"),
        ({"tips": [{"title": "提示", "body": "正文。", "colour": "red"}]}, "tips.0.colour", "unknown field"),
        (
            {"tips": [{"title": "提示", "body": "正文。", "short_text": "长" * 121}]},
            "tips.0.short_text",
            "120",
        ),
        ({"tips": [{"title": "提示", "body": "正文。", "topics": ["a b"]}]}, "tips.0.topics", "topic name"),
        ({"tips": [{"title": "提\u202e示", "body": "正文。"}]}, "tips.0.title", "invisible"),
        ({"tips": []}, "tips", "at least 1 item"),
        ({"tips": None}, "tips", "Field required"),
        ({"cadences": ["every fortnight at 10:00"]}, "cadences.0", "'fortnight' is not a day of the week"),
        ({"cadences": ["every day at 10:00", "61 * * * *"]}, "cadences.1", "minute 61 is out of range"),
        ({"cadences": []}, "cadences", "at least 1 item"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"order": "random"}, "order", "'same' or 'shuffled'"),
        ({"expires_after": "1 month"}, "expires_after", "like 12h, 1d or 7d"),
        ({"expires_after": "0h"}, "expires_after", "more than nothing"),
        ({"expires_after": "400d"}, "expires_after", "at most 366 days"),
        ({"expires_after": "1.5d"}, "expires_after", "like 12h, 1d or 7d"),
        ({"defaults": {"areas": ["990000"]}}, "defaults.areas", "province"),
        ({"defaults": {"channels": ["Fax!"]}}, "defaults.channels", "not a channel name"),
        ({"defaults": {"language": "zh"}}, "defaults.language", "unknown field"),
        ({"author": "Іvan Petrov"}, "author", "look-alike alphabets"),
        ({"department": ""}, "department", "at least 1 character"),
        ({"name": "x" * 101}, "name", "at most 100"),
    ],
)
def test_a_refusal_names_the_field_and_its_problem(
    changes: dict[str, Any], field: str, fragment: str
) -> None:
    problems = problems_of(rota_doc(**changes))
    assert field in problems, problems
    assert fragment in problems[field]


def test_a_tip_without_areas_anywhere_is_refused_at_the_tip() -> None:
    problems = problems_of(rota_doc(defaults={"channels": ["website"]}))
    assert set(problems) == {"tips.0.areas", "tips.1.areas", "tips.2.areas"}


def test_one_reading_names_every_problem() -> None:
    doc = rota_doc(
        cadences=["every day at 25:00"],
        tips=[
            {"title": "好的提示", "body": "正文。"},
            {"body": "没有标题。"},
            {"title": "坏的地区", "body": "正文。", "areas": ["990000"]},
        ],
    )
    problems = problems_of(doc)
    assert set(problems) == {"cadences.0", "tips.1.title", "tips.2.areas"}
    assert "not a time of day" in problems["cadences.0"]


def test_a_bad_default_is_named_once_at_the_default() -> None:
    problems = problems_of(rota_doc(defaults={"areas": ["990000"]}))
    assert list(problems) == ["defaults.areas"]


def test_a_rota_that_is_no_mapping_or_no_file_is_refused() -> None:
    assert "(document)" in problems_of(["not", "a", "mapping"])
    with pytest.raises(InvalidItemError) as caught:
        load_rota(Path("no-such-rota.yaml"))
    assert caught.value.problems == [("(file)", "no such file")]


def test_the_digest_follows_meaning_not_layout(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    rota = load_rota(EXAMPLE)
    assert len(rota.digest) == 64
    assert file_digest(EXAMPLE) == rota.digest

    # the same rota with its keys in another order, no comments, and 1d written as 24h
    data = yaml.load(text, Loader=yaml.BaseLoader)
    data["expires_after"] = "24h"
    relaid = tmp_path / "relaid.yaml"
    relaid.write_text(yaml.safe_dump(dict(reversed(data.items())), allow_unicode=True), encoding="utf-8")
    assert file_digest(relaid) == rota.digest

    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("汛期出行安全提示", "汛期出行提示"), encoding="utf-8")
    assert file_digest(edited) != rota.digest


# -- cadences ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "weekdays", "times"),
    [
        ("every day at 10:00", set(range(7)), [(10, 0)]),
        ("Daily at 7:05", set(range(7)), [(7, 5)]),
        ("every day at 10:00 and 18:30", set(range(7)), [(10, 0), (18, 30)]),
        ("mondays and thursdays at 18:30", {1, 4}, [(18, 30)]),
        ("Mondays, Wednesdays and Fridays at 09:00", {1, 3, 5}, [(9, 0)]),
        ("monday at 9:00", {1}, [(9, 0)]),
        ("every friday at 17:00", {5}, [(17, 0)]),
        ("tue & thu at 12:00", {2, 4}, [(12, 0)]),
        ("weekdays at 08:30", {1, 2, 3, 4, 5}, [(8, 30)]),
        ("weekends at 10:00", {0, 6}, [(10, 0)]),
        ("每天 10:00", set(range(7)), [(10, 0)]),
        ("每日10：00", set(range(7)), [(10, 0)]),
        ("每周一、周四 18:30", {1, 4}, [(18, 30)]),
        ("每周一、三、五 9:00", {1, 3, 5}, [(9, 0)]),
        ("星期日 20:00", {0}, [(20, 0)]),
        ("工作日 08:30", {1, 2, 3, 4, 5}, [(8, 30)]),
        ("周末 10:00和16:00", {0, 6}, [(10, 0), (16, 0)]),
    ],
)
def test_a_phrase_is_days_of_the_week_and_times(text: str, weekdays: set[int], times: list) -> None:
    cadence = parse_cadence(text)
    assert cadence.weekdays == weekdays
    assert list(cadence.times) == times
    assert str(cadence) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty"),
        ("sometimes", "neither a phrase"),
        ("every day at 24:00", "not a time of day"),
        ("every day at noon", "not a time of day"),
        ("mondays at 9", "not a time of day"),
        ("blursdays at 10:00", "not a day of the week"),
        ("每月一日 10:00", "not a day of the week"),
        ("30 7 * *", "five fields"),
        ("30 7 * * 1-5 extra", "five fields"),
        ("60 * * * *", "minute 60 is out of range (0-59)"),
        ("0 24 * * *", "hour 24 is out of range"),
        ("0 9 0 * *", "day-of-month 0 is out of range (1-31)"),
        ("0 9 * 13 *", "month 13 is out of range"),
        ("0 9 * * 8", "day-of-week 8 is out of range (0-7)"),
        ("0 9 * * 5-1", "runs backwards"),
        ("*/0 * * * *", "step '0'"),
        ("5/15 * * * *", "a step needs * or a range"),
        ("x * * * *", "neither a phrase"),
        ("0 9 * * funday", "not a number"),
    ],
)
def test_a_bad_cadence_says_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_cadence(text)
    assert fragment in str(caught.value)


def test_a_week_of_two_phrases_gives_nine_slots_at_local_times() -> None:
    rota = parse_rota(rota_doc(cadences=["every day at 10:00", "mondays and thursdays at 18:30"]))
    week = slots(rota, MONDAY, MONDAY + timedelta(days=7), SHANGHAI)
    expected = [local(MONDAY + timedelta(days=day), 10) for day in range(7)]
    expected += [local(MONDAY, 18, 30), local(date(2026, 6, 4), 18, 30)]
    assert week == sorted(expected)
    assert all(slot.tzinfo is SHANGHAI for slot in week)
    assert [slot.isoformat() for slot in week][:2] == [
        "2026-06-01T10:00:00+08:00",
        "2026-06-01T18:30:00+08:00",
    ]


def test_the_span_is_half_open_and_may_be_given_in_another_zone() -> None:
    cadence = parse_cadence("every day at 10:00")
    # 02:00 UTC is 10:00 in Shanghai: the start is in, the end is out
    start = datetime(2026, 6, 1, 2, tzinfo=UTC)
    found = cadence.occurrences(start, start + timedelta(days=2), SHANGHAI)
    assert found == [local(MONDAY, 10), local(date(2026, 6, 2), 10)]
    with pytest.raises(ValueError, match="no time zone"):
        cadence.occurrences(datetime(2026, 6, 1), datetime(2026, 6, 2), SHANGHAI)


def test_cron_on_weekday_mornings_gives_five_slots_a_week() -> None:
    found = parse_cadence("30 7 * * 1-5").occurrences(MONDAY, MONDAY + timedelta(days=7), SHANGHAI)
    assert found == [local(MONDAY + timedelta(days=day), 7, 30) for day in range(5)]


def test_cron_steps_over_a_range_of_hours() -> None:
    found = parse_cadence("*/15 9-10 * * *").occurrences(MONDAY, MONDAY + timedelta(days=1), SHANGHAI)
    assert [(slot.hour, slot.minute) for slot in found] == [(h, m) for h in (9, 10) for m in (0, 15, 30, 45)]
    stepped = parse_cadence("0 8-20/4 * * *").occurrences(MONDAY, MONDAY + timedelta(days=1), SHANGHAI)
    assert [slot.hour for slot in stepped] == [8, 12, 16, 20]
    listed = parse_cadence("0,30 12 * * *").occurrences(MONDAY, MONDAY + timedelta(days=1), SHANGHAI)
    assert [slot.minute for slot in listed] == [0, 30]


def test_cron_day_of_month_and_day_of_week_restricted_together_match_either() -> None:
    july = local(date(2026, 7, 1), 0)  # a Wednesday
    month = (july, local(date(2026, 8, 1), 0))
    either = parse_cadence("0 9 1 * 1").occurrences(*month, SHANGHAI)
    assert [slot.day for slot in either] == [1, 6, 13, 20, 27]  # the 1st, and every Monday
    only_date = parse_cadence("0 9 1 * *").occurrences(*month, SHANGHAI)
    assert [slot.day for slot in only_date] == [1]
    only_monday = parse_cadence("0 9 * * mon").occurrences(*month, SHANGHAI)
    assert [slot.day for slot in only_monday] == [6, 13, 20, 27]
    # a field starting with * counts as unrestricted (as in Vixie cron): every 10th day that is a Friday
    stepped = parse_cadence("0 9 */10 * 5").occurrences(*month, SHANGHAI)
    assert [slot.day for slot in stepped] == [31]


def test_cron_day_of_week_seven_is_sunday_and_names_are_read() -> None:
    week = (MONDAY, MONDAY + timedelta(days=7))
    sundays = [
        parse_cadence(text).occurrences(*week, SHANGHAI) for text in ("0 9 * * 0", "0 9 * * 7", "0 9 * * SUN")
    ]
    assert sundays[0] == sundays[1] == sundays[2] == [local(date(2026, 6, 7), 9)]
    assert parse_cadence("0 9 * * 5-7").occurrences(*week, SHANGHAI)[0].day == 5
    assert parse_cadence("0 9 * jul *").occurrences(*week, SHANGHAI) == []
    assert len(parse_cadence("0 9 * jun *").occurrences(*week, SHANGHAI)) == 7


def test_two_cadences_on_the_same_minute_make_one_slot() -> None:
    rota = parse_rota(rota_doc(cadences=["every day at 10:00", "0 10 * * *", "weekdays at 10:00"]))
    week = slots(rota, MONDAY, MONDAY + timedelta(days=7), SHANGHAI)
    assert week == [local(MONDAY + timedelta(days=day), 10) for day in range(7)]


def test_a_local_time_the_clocks_skip_does_not_happen() -> None:
    # Berlin: 2026-03-29 02:00 CET becomes 03:00 CEST
    span = (local(date(2026, 3, 28), 0, zone=BERLIN), local(date(2026, 3, 31), 0, zone=BERLIN))
    for text in ("every day at 02:30", "30 2 * * *"):
        found = parse_cadence(text).occurrences(*span, BERLIN)
        assert [slot.isoformat() for slot in found] == [
            "2026-03-28T02:30:00+01:00",
            "2026-03-30T02:30:00+02:00",
        ]
    mornings = parse_cadence("every day at 10:00").occurrences(*span, BERLIN)
    assert [slot.isoformat() for slot in mornings] == [
        "2026-03-28T10:00:00+01:00",
        "2026-03-29T10:00:00+02:00",
        "2026-03-30T10:00:00+02:00",
    ]


def test_a_local_time_the_clocks_repeat_happens_once_at_its_first_occurrence() -> None:
    # Berlin: 2026-10-25 03:00 CEST becomes 02:00 CET, so 02:00-02:59 happens twice
    span = (local(date(2026, 10, 25), 0, zone=BERLIN), local(date(2026, 10, 26), 0, zone=BERLIN))
    found = parse_cadence("*/30 2 * * *").occurrences(*span, BERLIN)
    assert [slot.isoformat() for slot in found] == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00"]
    # a span starting between the two occurrences has none: the slot was the first one
    second_time = datetime(2026, 10, 25, 0, 45, tzinfo=UTC)  # 02:45 CEST, between the two 02:30s
    assert parse_cadence("30 2 * * *").occurrences(second_time, span[1], BERLIN) == []


def test_slots_over_a_year_are_computed_quickly() -> None:
    rota = parse_rota(rota_doc(cadences=["every day at 10:00", "*/5 * * * 1"]))
    started = clock.perf_counter()
    year = slots(rota, MONDAY, MONDAY + timedelta(days=365), SHANGHAI)
    # 53 Mondays of 288 five-minute slots, one of which is the day's 10:00
    assert len(year) == 365 + 53 * 287
    assert clock.perf_counter() - started < 5


# -- rotation ---------------------------------------------------------------------------------------


def test_same_order_goes_through_the_file_round_after_round() -> None:
    rota = rota_of(3, order="same")
    assert [tip_for(rota, n) for n in range(9)] == [0, 1, 2] * 3


def test_shuffled_order_sends_every_tip_once_a_round() -> None:
    rota = rota_of(8)
    rounds = [[tip_for(rota, r * 8 + place) for place in range(8)] for r in range(30)]
    assert all(sorted(one) == list(range(8)) for one in rounds)
    assert len({tuple(one) for one in rounds}) > 20  # a new order each round
    assert rounds[0] != list(range(8))


def test_shuffled_order_is_the_same_for_everyone_who_asks() -> None:
    first, second = load_rota(EXAMPLE), load_rota(EXAMPLE)
    assert first is not second
    assert [tip_for(first, n) for n in range(100)] == [tip_for(second, n) for n in range(100)]
    # the documented seed: round 0 is random.Random(f"{digest}/0")'s shuffle of the tips
    order = list(range(len(first.tips)))
    random.Random(f"{first.digest}/0").shuffle(order)
    assert [tip_for(first, n) for n in range(len(order))] == order
    other = rota_of(len(first.tips), name="另一个轮播")
    assert [tip_for(other, n) for n in range(40)] != [tip_for(first, n) for n in range(40)]


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_no_tip_is_sent_twice_in_a_row_across_rounds(count: int) -> None:
    rota = rota_of(count)
    sent = [tip_for(rota, n) for n in range(count * 300)]
    assert all(one != following for one, following in zip(sent, sent[1:], strict=False))
    if count == 2:
        assert sent == [sent[0], 1 - sent[0]] * 300  # two tips can only alternate


def test_a_rotated_round_still_sends_every_tip_once() -> None:
    rota = rota_of(3)
    rotated = 0
    for r in range(1, 200):
        raw = list(range(3))
        random.Random(f"{rota.digest}/{r}").shuffle(raw)
        actual = [tip_for(rota, r * 3 + place) for place in range(3)]
        assert sorted(actual) == [0, 1, 2]
        if raw[0] == tip_for(rota, r * 3 - 1):
            assert actual == raw[1:] + raw[:1]
            rotated += 1
        else:
            assert actual == raw
    assert rotated > 0


def test_a_single_tip_is_every_slot_and_late_slots_are_answered() -> None:
    assert {tip_for(rota_of(1), n) for n in range(10)} == {0}
    rota = rota_of(8)
    started = clock.perf_counter()
    late = [tip_for(rota, 8 * 20_000 + place) for place in range(8)]
    assert sorted(late) == list(range(8))
    assert clock.perf_counter() - started < 5
    with pytest.raises(ValueError):
        tip_for(rota, -1)


# -- quiet hours, days ------------------------------------------------------------------------------


def test_quiet_hours_across_midnight_have_their_boundaries() -> None:
    quiet = parse_quiet_hours("21:00-08:00")
    assert quiet == QuietHours(time(21), time(8))
    day = MONDAY
    assert not quiet.contains(local(day, 20, 59), SHANGHAI)
    assert quiet.contains(local(day, 21), SHANGHAI)
    assert quiet.contains(local(day, 23, 59), SHANGHAI)
    assert quiet.contains(local(day, 0), SHANGHAI)
    assert quiet.contains(local(day, 7, 59), SHANGHAI)
    assert not quiet.contains(local(day, 8), SHANGHAI)
    assert not quiet.contains(local(day, 12), SHANGHAI)
    # a moment is read in the zone given, whatever zone it is written in: 13:30 UTC is 21:30 there
    assert quiet.contains(datetime(2026, 6, 1, 13, 30, tzinfo=UTC), SHANGHAI)


def test_quiet_hours_within_a_day() -> None:
    quiet = parse_quiet_hours("12:00-14:00")
    assert quiet is not None
    assert not quiet.contains(local(MONDAY, 11, 59), SHANGHAI)
    assert quiet.contains(local(MONDAY, 12), SHANGHAI)
    assert not quiet.contains(local(MONDAY, 14), SHANGHAI)
    assert not quiet.contains(local(MONDAY, 23), SHANGHAI)
    assert quiet.next_open(local(MONDAY, 13), SHANGHAI) == local(MONDAY, 14)
    assert quiet.next_open(local(MONDAY, 15), SHANGHAI) == local(MONDAY, 15)


def test_next_open_is_the_end_of_quiet_hours_or_the_moment_itself() -> None:
    quiet = parse_quiet_hours("21:00-08:00")
    assert quiet is not None
    tuesday = date(2026, 6, 2)
    assert quiet.next_open(local(MONDAY, 21, 30), SHANGHAI) == local(tuesday, 8)
    assert quiet.next_open(local(MONDAY, 21), SHANGHAI) == local(tuesday, 8)
    assert quiet.next_open(local(tuesday, 2), SHANGHAI) == local(tuesday, 8)
    assert quiet.next_open(local(tuesday, 8), SHANGHAI) == local(tuesday, 8)
    assert quiet.next_open(local(MONDAY, 20), SHANGHAI) == local(MONDAY, 20)
    opened = quiet.next_open(datetime(2026, 6, 1, 14, tzinfo=UTC), SHANGHAI)  # 22:00 in Shanghai
    assert opened.isoformat() == "2026-06-02T08:00:00+08:00"


def test_quiet_hours_ending_in_a_skipped_hour_open_when_the_clocks_jump() -> None:
    quiet = parse_quiet_hours("22:00-02:30")
    assert quiet is not None
    opened = quiet.next_open(local(date(2026, 3, 28), 23, zone=BERLIN), BERLIN)
    assert opened.isoformat() == "2026-03-29T03:00:00+02:00"


@pytest.mark.parametrize("text", ["", "none", " None "])
def test_no_quiet_hours(text: str) -> None:
    assert parse_quiet_hours(text) is None


@pytest.mark.parametrize("text", ["21:00", "21:00-25:00", "evenings", "08:00-08:00"])
def test_bad_quiet_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quiet_hours(text)
    with pytest.raises(ValueError):
        QuietHours(time(8), time(8))


def test_a_send_counts_against_its_local_day() -> None:
    late_utc = datetime(2026, 6, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 June in Shanghai
    assert day_of(late_utc, SHANGHAI) == date(2026, 6, 2)
    assert day_of(local(MONDAY, 23, 59), SHANGHAI) == date(2026, 6, 1)
    assert next_day_start(late_utc, SHANGHAI).isoformat() == "2026-06-03T00:00:00+08:00"
    assert next_day_start(local(date(2026, 3, 28), 12, zone=BERLIN), BERLIN).isoformat() == (
        "2026-03-29T00:00:00+01:00"
    )
    # Santiago skips midnight on 6 September 2026 (00:00 becomes 01:00)
    santiago = ZoneInfo("America/Santiago")
    assert next_day_start(local(date(2026, 9, 5), 12, zone=santiago), santiago).isoformat() == (
        "2026-09-06T01:00:00-03:00"
    )


# -- preview ----------------------------------------------------------------------------------------


def test_a_week_of_the_example_with_sms_quiet_at_night() -> None:
    rota = load_rota(EXAMPLE)
    quiet = {"sms": QuietHours(time(21), time(8))}
    entries = preview(rota, MONDAY, 7, SHANGHAI, quiet)
    assert [entry.at for entry in entries] == slots(rota, MONDAY, MONDAY + timedelta(days=7), SHANGHAI)
    assert len(entries) == 9  # every day at 10:00, and Tuesday and Friday at 21:30
    assert [entry.tip for entry in entries] == [tip_for(rota, n) for n in range(9)]
    evenings = 0
    for entry in entries:
        assert entry.title == rota.tips[entry.tip].title
        assert entry.channels == ["website", "sms", "microblog"]
        assert entry.per_channel["website"] == entry.per_channel["microblog"] == entry.at
        if entry.at.hour == 21:
            evenings += 1
            assert entry.at.minute == 30
            assert entry.per_channel["sms"] == local(entry.at + timedelta(days=1), 8)
        else:
            assert entry.per_channel["sms"] == entry.at
    assert evenings == 2

    document = json.loads(json.dumps([entry.to_json() for entry in entries]))
    evening = next(one for one in document if one["at"].endswith("T21:30:00+08:00"))
    assert evening["at"] == "2026-06-02T21:30:00+08:00"
    assert evening["sends"] == {
        "website": "2026-06-02T21:30:00+08:00",
        "sms": "2026-06-03T08:00:00+08:00",
        "microblog": "2026-06-02T21:30:00+08:00",
    }
    assert evening["title"] == rota.tips[evening["tip"]].title
    assert evening["channels"] == ["website", "sms", "microblog"]


def test_a_preview_continues_the_rota_from_the_slot_number_given() -> None:
    rota = load_rota(EXAMPLE)
    later = preview(rota, MONDAY, 2, SHANGHAI, first_slot_number=50)
    assert [entry.tip for entry in later] == [tip_for(rota, 50 + n) for n in range(len(later))]
    assert all(entry.per_channel == dict.fromkeys(entry.channels, entry.at) for entry in later)
    assert preview(rota, MONDAY, 0, SHANGHAI) == []


def test_a_tip_for_every_channel_shows_the_quiet_ones() -> None:
    rota = parse_rota(rota_doc(defaults={"areas": ["110000"]}, cadences=["every day at 22:00"]))
    quiet = {"sms": QuietHours(time(21), time(8))}
    entry = next(one for one in preview(rota, MONDAY, 1, SHANGHAI, quiet) if one.tip == 0)
    assert entry.channels == []
    assert entry.per_channel == {"sms": local(date(2026, 6, 2), 8)}
