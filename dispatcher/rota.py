"""Rotas: safety tips that broadcast themselves on an approved schedule, as pure arithmetic.

A rota file names its tips, when they go out (cadences) and in what order; this module reads it and
answers the scheduler's questions — which slots fall in a span of time, which tip a slot sends, when a
channel with quiet hours actually sends it, which local day a send counts against. It keeps no state,
opens no database and reads nothing but the rota file.

Every time is computed in the wall-clock time of the office's zone (``settings.time_zone``, an IANA
name): a tip at 10:00 goes out at 10:00 local time whatever the UTC offset that day. Where the zone
changes its clocks, a slot in the skipped hour does not happen and a slot in the repeated hour happens
once, at its first occurrence.

Cadences, in a rota's ``cadences`` list, are case-insensitive; each is one of:

- ``every day at HH:MM`` or ``daily at HH:MM``;
- weekdays and a time: ``mondays and thursdays at 18:30``, ``mondays, wednesdays and fridays at 09:00``,
  ``monday at 9:00``, ``every friday at 17:00``, ``weekdays at 08:30``, ``weekends at 10:00`` (day names
  singular or plural, or their first three letters; lists joined by commas, ``and`` or ``&``);
- in Chinese: ``每天 10:00``, ``每日 10:00``, ``每周一、周四 18:30``, ``工作日 08:30``, ``周末 10:00``;
- a cron line of five fields, ``minute hour day-of-month month day-of-week``, each ``*``, a number, a
  range ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; months and weekdays may be named
  by their first three letters; day-of-week 0 and 7 are both Sunday.

Any phrase may give several times (``every day at 10:00 and 18:30``). As in cron, when both
day-of-month and day-of-week are restricted, a day matches when *either* does (``0 9 1 * 1`` is the
first of each month and every Monday); a field counts as unrestricted when it starts with ``*``
(``*/2`` included), as in Vixie cron.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from dispatcher.errors import InvalidItemError
from dispatcher.items import BIDI_CONTROLS, Item, Kind, authored, parse_item, read_document
from dispatcher.people import checked_name
from dispatcher.words import digest_of

# -- cadences -------------------------------------------------------------------------------------

_WEEKDAY_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
#: day words of the English phrases → cron weekdays (0 Sunday … 6 Saturday)
_DAY_WORDS: dict[str, frozenset[int]] = {
    **{name: frozenset({number}) for number, name in enumerate(_WEEKDAY_NAMES)},
    **{name[:3]: frozenset({number}) for number, name in enumerate(_WEEKDAY_NAMES)},
    "tues": frozenset({2}),
    "thur": frozenset({4}),
    "thurs": frozenset({4}),
    "weekday": frozenset(range(1, 6)),
    "weekend": frozenset({0, 6}),
}
_CHINESE_DAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 0, "天": 0}
_EVERY_DAY = frozenset(range(7))

_LIST_SEPARATOR = re.compile(r"\s*(?:,|&|\band\b)\s*")
_CHINESE_SEPARATOR = re.compile(r"\s*[、，,和及与]\s*")
_CLOCK = re.compile(r"([0-9]{1,2})[:：]([0-9]{2})")
_EVERY_DAY_PHRASE = re.compile(r"(?:every day|everyday|daily) at (?P<times>.+)")
_DAYS_PHRASE = re.compile(r"(?:every |on )?(?P<days>[a-z][a-z ,&]*?) at (?P<times>.+)")
_CHINESE_PHRASE = re.compile(r"(?P<days>[^0-9]+?)\s*(?P<times>[0-9].*)")
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day-of-month", 1, 31, ()),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, tuple(name[:3] for name in _WEEKDAY_NAMES)),
)
_GRAMMAR = (
    "is neither a phrase like 'every day at 10:00', 'mondays and thursdays at 18:30' or '每周一、周四 18:30' "
    "nor a cron line of five fields (minute hour day-of-month month day-of-week)"
)


@dataclass(frozen=True, repr=False)
class Cadence:
    """When a rota sends, as cron's sets: a slot is each of ``times`` on each matching local day."""

    text: str
    #: (hour, minute) pairs, sorted
    times: tuple[tuple[int, int], ...]
    months: frozenset[int] = frozenset(range(1, 13))
    #: days of the month, 1–31
    days: frozenset[int] = frozenset(range(1, 32))
    #: days of the week as in cron: 0 Sunday, 1 Monday … 6 Saturday
    weekdays: frozenset[int] = _EVERY_DAY
    days_restricted: bool = False
    weekdays_restricted: bool = False

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Cadence({self.text!r})"

    def runs_on(self, day: date) -> bool:
        """Whether ``day`` (a local calendar day) has slots; cron's rule: restricted day-of-month and
        day-of-week fields match when either does."""
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = day.isoweekday() % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return by_date or by_weekday
        return by_date and by_weekday

    def occurrences(self, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
        """Every slot in [``start``, ``end``), in order, as aware datetimes in ``zone``.

        Slots are local wall-clock times: one that the zone skips (a clock moved forward) does not
        happen; one the zone repeats (a clock moved back) happens once, at its first occurrence."""
        first, last = _instant(start), _instant(end)
        found: list[datetime] = []
        day, last_day = first.astimezone(zone).date(), last.astimezone(zone).date()
        while day <= last_day:
            if self.runs_on(day):
                for hour, minute in self.times:
                    slot = _existing(datetime.combine(day, time(hour, minute)), zone)
                    if slot is not None and first <= _instant(slot) < last:
                        found.append(slot)
            day += timedelta(days=1)
        return found


def parse_cadence(text: str) -> Cadence:
    """A cadence from its text (a phrase or a cron line); ValueError saying what is wrong."""
    if not isinstance(text, str):
        raise ValueError("must be a text: a phrase like 'every day at 10:00' or a cron line")
    spoken = " ".join(text.split()).lower()
    if not spoken:
        raise ValueError("is empty")
    fields = spoken.split(" ")
    if re.fullmatch(r"[0-9*][0-9a-z*,/ -]*", spoken) and " at " not in spoken:
        if len(fields) != 5:
            raise ValueError(
                f"{text.strip()!r}: a cron line has five fields (minute hour day-of-month month "
                f"day-of-week), not {len(fields)}"
            )
        return _cron(text.strip(), fields)
    if match := _EVERY_DAY_PHRASE.fullmatch(spoken):
        return Cadence(text.strip(), _clock_times(match["times"], _LIST_SEPARATOR))
    if match := _DAYS_PHRASE.fullmatch(spoken):
        weekdays = _english_days(match["days"])
        return _weekly(text.strip(), weekdays, _clock_times(match["times"], _LIST_SEPARATOR))
    if re.search(r"[\u4e00-\u9fff]", spoken) and (match := _CHINESE_PHRASE.fullmatch(spoken)):
        weekdays = _chinese_days(match["days"])
        return _weekly(text.strip(), weekdays, _clock_times(match["times"], _CHINESE_SEPARATOR))
    raise ValueError(f"{text.strip()!r} {_GRAMMAR}")


def _weekly(text: str, weekdays: frozenset[int], times: tuple[tuple[int, int], ...]) -> Cadence:
    return Cadence(text, times, weekdays=weekdays, weekdays_restricted=weekdays != _EVERY_DAY)


def _clock_times(text: str, separator: re.Pattern[str]) -> tuple[tuple[int, int], ...]:
    times = set()
    for part in separator.split(text.strip()):
        match = _CLOCK.fullmatch(part)
        if not match:
            raise ValueError(f"{part!r} is not a time of day like 10:00 or 18:30")
        hour, minute = int(match[1]), int(match[2])
        if hour > 23 or minute > 59:
            raise ValueError(f"{part!r} is not a time of day (00:00 to 23:59)")
        times.add((hour, minute))
    return tuple(sorted(times))


def _english_days(text: str) -> frozenset[int]:
    weekdays: set[int] = set()
    for word in _LIST_SEPARATOR.split(text.strip()):
        word = word.removeprefix("every ").strip()
        days = _DAY_WORDS.get(word) or (_DAY_WORDS.get(word[:-1]) if word.endswith("s") else None)
        if days is None:
            raise ValueError(f"{word!r} is not a day of the week (monday…sunday, weekdays, weekends)")
        weekdays |= days
    return frozenset(weekdays)


def _chinese_days(text: str) -> frozenset[int]:
    text = text.strip().removeprefix("每")
    if text in ("天", "日"):  # 每天, 每日
        return _EVERY_DAY
    weekdays: set[int] = set()
    for word in _CHINESE_SEPARATOR.split(text):
        if word == "工作日":
            weekdays |= _DAY_WORDS["weekday"]
        elif word == "周末":
            weekdays |= _DAY_WORDS["weekend"]
        elif match := re.fullmatch(r"(?:周|星期|礼拜)?([一二三四五六日天])", word):
            weekdays.add(_CHINESE_DAYS[match[1]])  # 每周一、四: the later days may go without 周
        else:
            raise ValueError(f"{word!r} is not a day of the week (周一…周日, 工作日, 周末)")
    return frozenset(weekdays)


def _cron(text: str, fields: list[str]) -> Cadence:
    minutes, hours, days, months, weekdays = (
        _cron_field(value, *spec) for value, spec in zip(fields, _CRON_FIELDS, strict=True)
    )
    return Cadence(
        text,
        tuple((hour, minute) for hour in sorted(hours) for minute in sorted(minutes)),
        months=months,
        days=days,
        weekdays=frozenset(day % 7 for day in weekdays),  # 7 is Sunday too
        days_restricted=not fields[2].startswith("*"),
        weekdays_restricted=not fields[4].startswith("*"),
    )


def _cron_field(value: str, name: str, low: int, high: int, names: tuple[str, ...]) -> frozenset[int]:
    def number(word: str) -> int:
        if word in names:
            return names.index(word) + (1 if name == "month" else 0)
        if not word.isdigit() or not word.isascii():
            raise ValueError(f"{name} {word!r} is not a number")
        if not low <= int(word) <= high:
            raise ValueError(f"{name} {word} is out of range ({low}-{high})")
        return int(word)

    found: set[int] = set()
    for part in value.split(","):
        span, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or not step_text.isascii() or int(step_text) == 0:
                raise ValueError(f"{name} step {step_text!r} is not a whole number of at least 1")
            step = int(step_text)
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = number(first_text), number(last_text)
            if first > last:
                raise ValueError(f"{name} range {span!r} runs backwards")
        elif slash:
            raise ValueError(f"{name} {part!r}: a step needs * or a range before it (*/{step}, a-b/{step})")
        else:
            first = last = number(span)
        found.update(range(first, last + 1, step))
    return frozenset(found)


# -- local time -------------------------------------------------------------------------------------


def _instant(moment: datetime) -> datetime:
    """``moment`` in UTC: aware datetimes sharing a tzinfo compare by wall clock, ignoring DST folds."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; give an aware datetime")
    return moment.astimezone(UTC)


def _existing(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The naive local time ``wall`` in ``zone``, at its first occurrence; None when the zone skips it."""
    local = wall.replace(tzinfo=zone, fold=0)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall:
        return None
    return local


def _at_or_after(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first local time in ``zone`` at or after the naive ``wall`` time (past a skipped hour)."""
    for minutes in range(48 * 60):  # no zone has skipped more than a day
        local = _existing(wall + timedelta(minutes=minutes), zone)
        if local is not None:
            return local
    raise ValueError(f"{zone.key} has no time near {wall.isoformat()}")


def day_of(moment: datetime, zone: ZoneInfo) -> date:
    """The local calendar day ``moment`` falls on: the day a send counts against for a daily cap."""
    return _instant(moment).astimezone(zone).date()


def next_day_start(moment: datetime, zone: ZoneInfo) -> datetime:
    """Local midnight of the day after ``moment``'s (the first moment after it, where the zone skips
    midnight), aware in ``zone``: when a daily cap opens again."""
    return _at_or_after(datetime.combine(day_of(moment, zone) + timedelta(days=1), time()), zone)


# -- quiet hours ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuietHours:
    """A daily window of local time when a channel does not send, from ``start`` (quiet) to ``end``
    (open again); a window whose end comes before its start crosses midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"quiet hours from {self.start:%H:%M} to {self.end:%H:%M} are no window")

    def contains(self, moment: datetime, zone: ZoneInfo) -> bool:
        clock = _instant(moment).astimezone(zone).time()
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def next_open(self, moment: datetime, zone: ZoneInfo) -> datetime:
        """The first moment at or after ``moment`` outside quiet hours, aware in ``zone``."""
        local = _instant(moment).astimezone(zone)
        if not self.contains(local, zone):
            return local
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)  # quiet since this evening: open tomorrow morning
        return _at_or_after(datetime.combine(day, self.end), zone)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(text: str) -> QuietHours | None:
    """Quiet hours from ``21:00-08:00`` (local times, start to end); None for ``""`` or ``none``."""
    spoken = text.strip().lower()
    if spoken in ("", "none"):
        return None
    match = re.fullmatch(r"([0-9]{1,2}:[0-9]{2})\s*[-–~]\s*([0-9]{1,2}:[0-9]{2})", spoken)
    if not match:
        raise ValueError(f"{text.strip()!r} is not quiet hours like 21:00-08:00 (or none)")
    (start_hour, start_minute), (end_hour, end_minute) = (
        _clock_times(clock, _LIST_SEPARATOR)[0] for clock in match.groups()
    )
    start, end = time(start_hour, start_minute), time(end_hour, end_minute)
    if start == end:
        raise ValueError(f"{text.strip()!r} starts and ends at the same time")
    return QuietHours(start, end)


def quiet_hours_of(windows: dict[str, str]) -> dict[str, QuietHours]:
    """Per channel, the quiet hours ``DISPATCH_QUIET_HOURS`` names (channels with ``none`` left out)."""
    return {
        channel: found for channel, text in windows.items() if (found := parse_quiet_hours(text)) is not None
    }


# -- the rota file ----------------------------------------------------------------------------------


class Order(StrEnum):
    """The order of the tips within each round."""

    #: the file's order, round after round
    same = "same"
    #: every round a new order of all the tips
    shuffled = "shuffled"


_DURATION = re.compile(r"([0-9]{1,4})\s*([hdw])")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}
_LONGEST_LIFE = timedelta(days=366)


def _a_cadence(value: Any) -> Cadence:
    if isinstance(value, Cadence):
        return value
    return parse_cadence(value)


def _a_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        duration = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip().lower())):
        duration = int(match[1]) * _UNITS[match[2]]
    else:
        raise ValueError("must be a duration like 12h, 1d or 7d (hours, days or weeks)")
    if not timedelta(0) < duration <= _LONGEST_LIFE:
        raise ValueError("must be more than nothing and at most 366 days")
    if duration % timedelta(hours=1):
        raise ValueError("must be a whole number of hours")
    return duration


def _visible_line(value: str) -> str:
    """Control and bidirectional-override characters would reach the operator's terminal and the ledger."""
    for position, ch in enumerate(value):
        if ch in BIDI_CONTROLS or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0:
            raise ValueError(f"contains the invisible character U+{ord(ch):04X} at position {position}")
    return value


CadenceText = Annotated[Cadence, PlainValidator(_a_cadence), PlainSerializer(str, return_type=str)]
#: written 12h, 1d or 2w; kept in hours in the canonical form, so 1d and 24h are the same rota
Lifetime = Annotated[
    timedelta,
    PlainValidator(_a_duration),
    PlainSerializer(lambda life: f"{int(life.total_seconds()) // 3600}h", return_type=str),
]
RotaName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), AfterValidator(_visible_line)
]
Department = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_visible_line)
]
Person = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_visible_line),
    AfterValidator(checked_name),
]


class Defaults(BaseModel):
    """Fields every tip takes unless it gives its own."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    channels: list[str] | None = None
    areas: list[str] | None = None
    topics: list[str] | None = None


class Tip(BaseModel):
    """One tip as written; the rules of a safety-tip :class:`Item` are checked on the item it makes."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    title: str
    body: str
    short_text: str | None = None
    #: none: the rota's defaults (an empty list is a choice of its own: no topics)
    topics: list[str] | None = None
    channels: list[str] | None = None
    areas: list[str] | None = None


#: Fields a tip may take from the rota's defaults.
_DEFAULTED = ("channels", "areas", "topics")


class _TipProblems(ValueError):
    """Tips that make no valid item, each problem with its field path (``tips.2.areas``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))
        self.problems = problems


class Rota(BaseModel):
    """An approved rota: tips, when they go out, in what order, and how long each stays valid."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    name: RotaName
    department: Department
    author: Person
    cadences: list[CadenceText] = Field(min_length=1)
    order: Order = Order.same
    #: how long each tip stays valid once sent (the item's ``expires`` is the send time plus this)
    expires_after: Lifetime
    defaults: Defaults = Field(default_factory=Defaults)
    tips: list[Tip] = Field(min_length=1)

    @model_validator(mode="after")
    def _tips_make_items(self) -> Rota:
        problems = _tip_problems(enumerate(self.tips), self.defaults, self.department, self.author)
        if problems:
            raise _TipProblems(problems)
        return self

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the rota's canonical JSON form: a comment, a key order or the file's layout does
        not change it; any change of what the rota sends, when or how does."""
        return digest_of(self.model_dump(mode="json"))

    def item_for(self, tip_index: int, at: datetime) -> Item:
        """The safety-tip item that tip ``tip_index`` is when sent at ``at``: expiring ``expires_after``
        later, by the rota's author and department, with the defaults for what the tip leaves out."""
        if not 0 <= tip_index < len(self.tips):
            raise IndexError(f"the rota has tips 0 to {len(self.tips) - 1}, not {tip_index}")
        fields = _item_fields(
            self.tips[tip_index], self.defaults, self.department, self.author, at, self.expires_after
        )
        return Item.model_validate(fields)


def _item_fields(
    tip: Tip, defaults: Defaults, department: str, author: str, at: datetime, lifetime: timedelta
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "kind": Kind.safety_tip,
        "title": tip.title,
        "body": tip.body,
        "author": author,
        "department": department,
        # in elapsed time: 1d is 24 hours even across a change of the clocks
        "expires": (_instant(at) + lifetime).astimezone(at.tzinfo),
    }
    if tip.short_text is not None:
        fields["short_text"] = tip.short_text
    for name in _DEFAULTED:
        value = getattr(tip, name)
        if value is None:
            value = getattr(defaults, name)
        if value is not None:
            fields[name] = value
    return fields


def _tip_problems(
    tips: Iterable[tuple[int, Tip]], defaults: Defaults | None, department: str | None, author: str | None
) -> list[tuple[str, str]]:
    """What keeps each tip from making a valid item (sent now, valid a day), named by where the rota
    says it: the tip's own field (``tips.1.title``), the default it took (``defaults.areas``) or the
    rota's (``author``).

    A part of the rota that is invalid itself (None here) is replaced by a stand-in, and what it would
    cause is left to its own report."""
    rota_fields = {"author": author, "department": department}
    problems: dict[tuple[str, str], None] = {}
    for number, tip in tips:
        fields = _item_fields(
            tip,
            defaults or Defaults(),
            department or "部门",
            author or "作者",
            datetime.now(UTC),
            timedelta(days=1),
        )
        try:
            parse_item(fields, f"tips.{number}")
        except InvalidItemError as exc:
            for field, message in exc.problems:
                head = field.split(".", 1)[0]
                if head in rota_fields:
                    if rota_fields[head] is None:
                        continue
                    where = field
                elif head in _DEFAULTED and getattr(tip, head) is None:
                    if defaults is None:
                        continue
                    given = getattr(defaults, head) is not None
                    where = f"defaults.{field}" if given else f"tips.{number}.{field}"
                elif field.startswith("("):
                    where = f"tips.{number}"
                else:
                    where = f"tips.{number}.{field}"
                problems[(where, message)] = None
    return list(problems)


def parse_rota(data: Any, source: str = "rota", *, author: str | None = None) -> Rota:
    """Validate a decoded rota document, raising :class:`InvalidItemError` naming every bad field by
    its path (``cadences.1``, ``tips.2.title``, ``defaults.areas``); ``author`` as for an item
    (:func:`dispatcher.items.authored`)."""
    if not isinstance(data, dict):
        raise InvalidItemError(source, [("(document)", "must be a mapping of fields")])
    data = authored(data, author, source)
    try:
        return Rota.model_validate(data)
    except RecursionError:
        raise InvalidItemError(source, [("(document)", "is nested too deeply to be a rota")]) from None
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        tips_checked = False
        for err in exc.errors(include_url=False):
            error = err.get("ctx", {}).get("error")
            if isinstance(error, _TipProblems):
                problems.extend(error.problems)
                tips_checked = True
                continue
            field = ".".join(str(part) for part in err["loc"]) or "(rota)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append((field, message))
        if not tips_checked:
            # The rota failed before its tips were made into items: make the tips that are whole, so
            # that one reading names every problem.
            problems.extend(_whole_tip_problems(data))
        raise InvalidItemError(source, list(dict.fromkeys(problems))) from None


def _whole_tip_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """The item problems of the tips of an invalid rota that are valid on their own."""

    def valid(kind: Any, value: Any) -> Any:
        try:
            return TypeAdapter(kind).validate_python(value)
        except ValidationError:
            return None

    raw_tips = data.get("tips")
    if not isinstance(raw_tips, list):
        return []
    tips = [(number, tip) for number, raw in enumerate(raw_tips) if (tip := valid(Tip, raw)) is not None]
    return _tip_problems(
        tips,
        valid(Defaults, data.get("defaults", {})),
        valid(Department, data.get("department")),
        valid(Person, data.get("author")),
    )


def load_rota(path: Path, *, author: str | None = None) -> Rota:
    """Read a rota from a YAML (or JSON) file (``author``: the user who submits it)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidItemError(source, [("(file)", "no such file")]) from None
    except UnicodeDecodeError:
        raise InvalidItemError(source, [("(file)", "is not UTF-8 text")]) from None
    data = read_document(text, source, as_json=Path(path).suffix.lower() == ".json")
    return parse_rota(data, source, author=author)


def file_digest(path: Path) -> str:
    """The digest of the rota in the file at ``path`` (its :attr:`Rota.digest`), to tell whether the
    file still holds the rota that was approved."""
    return load_rota(path).digest


# -- rotation ---------------------------------------------------------------------------------------


def tip_for(rota: Rota, slot_number: int) -> int:
    """The index of the tip the ``slot_number``-th slot of the rota's life sends (0-based).

    Slots go in rounds of one slot per tip, so every tip is sent once before any is sent again. With
    ``order: same`` each round is the file's order. With ``shuffled`` each round is a permutation drawn
    from ``random.Random(f"{digest}/{round}")``: the same for everyone who asks, so two schedulers
    agree. A round that would begin with the tip the round before ended with is rotated by one (its
    first tip moves to its end), so with two or more tips no tip is sent twice in a row."""
    if slot_number < 0:
        raise ValueError(f"slot numbers start at 0, not {slot_number}")
    count = len(rota.tips)
    round_number, place = divmod(slot_number, count)
    if rota.order is Order.same:
        return place
    return _round_order(rota.digest, count, round_number)[place]


@lru_cache(maxsize=256)
def _round_order(digest: str, count: int, round_number: int) -> tuple[int, ...]:
    """The shuffled order of round ``round_number``. Whether a round is rotated depends on how the one
    before ended, so the rounds are drawn from the first (a loop, not a recursion: a rota sending a
    few times a day reaches round 1000 within years)."""
    order: list[int] = []
    for number in range(round_number + 1):
        previous_last = order[-1] if order else None
        order = list(range(count))
        random.Random(f"{digest}/{number}").shuffle(order)
        if count > 1 and order[0] == previous_last:
            order = order[1:] + order[:1]
    return tuple(order)


# -- the schedule -----------------------------------------------------------------------------------


def slots(rota: Rota, start: datetime, end: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every slot of the rota in [``start``, ``end``), in order, aware in ``zone``; cadences that fall on
    the same minute make one slot."""
    union = {
        _instant(slot): slot for cadence in rota.cadences for slot in cadence.occurrences(start, end, zone)
    }
    return [union[moment] for moment in sorted(union)]


@dataclass(frozen=True)
class PreviewEntry:
    """One slot of a preview: when, which tip, and when each of its channels sends it."""

    at: datetime
    tip: int
    title: str
    #: the channels the tip names; empty when it names none (every channel: the core names none)
    channels: list[str]
    #: channel → when it sends: the slot, or the end of that channel's quiet hours
    per_channel: dict[str, datetime]

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "tip": self.tip,
            "title": self.title,
            "channels": list(self.channels),
            "sends": {channel: moment.isoformat() for channel, moment in self.per_channel.items()},
        }


def preview(
    rota: Rota,
    start: datetime,
    days: int,
    zone: ZoneInfo,
    quiet: dict[str, QuietHours] | None = None,
    first_slot_number: int = 0,
) -> list[PreviewEntry]:
    """What the rota would send from ``start`` for ``days`` local days, the first slot being slot
    number ``first_slot_number`` of the rota's life; ``quiet`` gives channels' quiet hours.

    A tip that names no channels goes to every channel: its entry lists none, and ``per_channel``
    holds only the channels with quiet hours (every other one sends at the slot). Daily caps are not
    applied: they depend on the subscriber store, which the caller holds."""
    if days < 0:
        raise ValueError(f"a preview covers 0 days or more, not {days}")
    quiet = quiet or {}
    local_start = _instant(start).astimezone(zone)
    end = _at_or_after(local_start.replace(tzinfo=None) + timedelta(days=days), zone)
    entries = []
    for offset, slot in enumerate(slots(rota, local_start, end, zone)):
        index = tip_for(rota, first_slot_number + offset)
        item = rota.item_for(index, slot)  # what would be sent: titles stripped, channels deduplicated
        named = list(item.channels or [])
        per_channel = {
            channel: quiet[channel].next_open(slot, zone) if channel in quiet else slot
            for channel in (named or list(quiet))
        }
        entries.append(PreviewEntry(slot, index, item.title, named, per_channel))
    return entries
