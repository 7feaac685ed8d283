"""Items: what a press office publishes, validated before anything is written.

An item file is YAML or JSON holding one mapping. Every problem is reported with the field it is
in; nothing is stored until the whole document validates.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dispatcher import geometry
from dispatcher.errors import InvalidItemError
from dispatcher.people import checked_name, same_person


class Kind(StrEnum):
    warning = "warning"
    safety_tip = "safety_tip"
    release = "release"


class Severity(StrEnum):
    Extreme = "Extreme"
    Severe = "Severe"
    Moderate = "Moderate"
    Minor = "Minor"
    Unknown = "Unknown"


class Urgency(StrEnum):
    Immediate = "Immediate"
    Expected = "Expected"
    Future = "Future"
    Past = "Past"
    Unknown = "Unknown"


class Certainty(StrEnum):
    Observed = "Observed"
    Likely = "Likely"
    Possible = "Possible"
    Unlikely = "Unlikely"
    Unknown = "Unknown"


# First two digits of the GB/T 2260 administrative division codes: the provinces, autonomous regions,
# municipalities and special administrative regions.
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 "
    "71 81 82".split()
)
SHORT_TEXT_MAX = 120
ASCII_AREA = re.compile(r"[0-9]{6}")
WRITTEN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}")
# Characters that reorder or hide text: the bidi embeddings, overrides and isolates, and marks.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_SENTENCE_END = re.compile(r"(?<=[。！？!?.])")


class Item(BaseModel):
    """One piece of public information as submitted; immutable once approved."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    kind: Kind
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20000)
    short_text: str | None = Field(None, min_length=1, max_length=SHORT_TEXT_MAX)
    #: channel names (checked against the channel registry when the item is submitted); none: every one
    channels: list[str] | None = Field(None, min_length=1)
    #: where the item applies, as shapes (WGS 84 latitude, longitude): closed polygons of at least four
    #: points, and circles (centre and radius in km); signs with coordinates inside them are reached
    polygons: list[list[tuple[float, float]]] = Field(default_factory=list)
    circles: list[tuple[float, float, float]] = Field(default_factory=list)
    #: administrative division codes (GB/T 2260); may be left out only when shapes place the item
    areas: list[str] = Field(default_factory=list, validate_default=True)
    author: str = Field(min_length=1, max_length=100)
    department: str = Field(min_length=1, max_length=200)
    expires: AwareDatetime
    #: when an approved item goes out (it waits in the ledger until then); none: at approval
    publish_at: AwareDatetime | None = None
    event: str | None = Field(None, max_length=100)
    instruction: str | None = Field(None, max_length=2000)
    severity: Severity | None = None
    urgency: Urgency | None = None
    certainty: Certainty | None = None
    interpretation: str | None = Field(None, min_length=1, max_length=20000)
    topics: list[str] = Field(
        default_factory=list, description="Subscription topics; routine SMS reach their subscribers only."
    )

    @field_validator("polygons")
    @classmethod
    def _polygons(cls, polygons: list[list[tuple[float, float]]]) -> list[list[tuple[float, float]]]:
        for number, polygon in enumerate(polygons, 1):
            try:
                geometry.polygon_text(polygon)
            except geometry.GeometryError as exc:
                raise ValueError(f"polygon {number} {exc}") from None
        return polygons

    @field_validator("circles")
    @classmethod
    def _circles(cls, circles: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        for number, circle in enumerate(circles, 1):
            try:
                geometry.circle_text(circle)
            except geometry.GeometryError as exc:
                raise ValueError(f"circle {number}: {exc}") from None
        return circles

    @field_validator("areas")
    @classmethod
    def _area_codes(cls, areas: list[str], info: ValidationInfo) -> list[str]:
        if not areas and not (info.data.get("polygons") or info.data.get("circles")):
            raise ValueError(
                "must list at least 1 item (an administrative division code), unless a polygon or circle "
                "places the item"
            )
        bad = []
        for code in areas:
            if not ASCII_AREA.fullmatch(code):  # ASCII digits only: \d would take ١ or ０ too
                bad.append(f"{code!r} is not a 6-digit administrative division code")
            elif code[:2] not in PROVINCES:
                bad.append(f"{code!r} does not start with a province code")
        if bad:
            raise ValueError("; ".join(bad))
        return list(dict.fromkeys(areas))

    @field_validator("title", "short_text", "author", "department", "event")
    @classmethod
    def _one_line_of_visible_text(cls, value: str | None) -> str | None:
        if value is not None:
            _refuse_hidden_characters(value, allow="")
        return value

    @field_validator("body", "instruction", "interpretation")
    @classmethod
    def _visible_text(cls, value: str | None) -> str | None:
        if value is not None:
            _refuse_hidden_characters(value, allow="\n\r\t")
        return value

    @field_validator("author")
    @classmethod
    def _a_person(cls, author: str) -> str:
        return checked_name(author)

    @field_validator("expires", "publish_at", mode="before")
    @classmethod
    def _a_written_date(cls, value: Any) -> Any:
        # pydantic would read a number, or a string of digits, as a Unix timestamp: an item's expiry
        # is written as a date and time with its offset, so a slip of the keyboard is not a date.
        if isinstance(value, datetime) or value is None:
            return value
        if not isinstance(value, str) or not WRITTEN_DATE.match(value.strip()):
            raise ValueError("must be a date and time with its offset, like 2026-07-01T18:00:00+08:00")
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            if not re.fullmatch(r"[\w-]{1,40}", topic):
                raise ValueError(f"{topic!r} is not a topic name (letters, digits, _ or -, at most 40)")
        return list(dict.fromkeys(topics))

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[str] | None) -> list[str] | None:
        if channels is None:
            return None
        for name in channels:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,19}", name):  # the ledger keeps 20 characters
                raise ValueError(f"{name!r} is not a channel name (lower-case letters, digits and _)")
        return list(dict.fromkeys(channels))

    @model_validator(mode="after")
    def _kind_rules(self) -> Item:
        cap = {"severity": self.severity, "urgency": self.urgency, "certainty": self.certainty}
        if self.kind is Kind.warning:
            missing = [name for name, value in cap.items() if value is None]
            if missing:
                raise ValueError(f"a warning needs {', '.join(missing)}")
        elif any(value is not None for value in cap.values()):
            raise ValueError("severity, urgency and certainty belong to warnings only")
        if self.interpretation is not None and self.kind is not Kind.release:
            raise ValueError("only a release carries an interpretation")
        if self.publish_at is not None and self.publish_at >= self.expires:
            raise ValueError("publish_at must come before expires")
        return self

    @property
    def short(self) -> str:
        """The text for small channels: given, or derived from the title and the body."""
        if self.short_text:
            return self.short_text
        whole = f"{self.title}：{self.body}"
        if len(whole) <= SHORT_TEXT_MAX:
            return whole
        first = _SENTENCE_END.split(self.body, maxsplit=1)[0]
        lead = f"{self.title}：{first}"
        return lead if len(lead) <= SHORT_TEXT_MAX else self.title

    def is_expired(self, now: datetime) -> bool:
        return self.expires <= now


def _refuse_hidden_characters(text: str, allow: str) -> None:
    """Control and bidirectional-override characters reach every channel and the operator's terminal:
    they can hide or reorder what a reader sees. Refused, with the first one named."""
    for position, ch in enumerate(text):
        if ch in allow:
            continue
        if unicodedata.category(ch) == "Cc" or ch in BIDI_CONTROLS:
            raise ValueError(
                f"contains the invisible character U+{ord(ch):04X} "
                f"({unicodedata.name(ch, 'control')}) at position {position}"
            )


def area_prefix(area: str) -> str:
    """What every division inside ``area`` starts with (``110100`` → ``1101``; ``110000`` → ``11``)."""
    prefix = area
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return prefix


def covers(area: str, inner: str) -> bool:
    """Whether division ``area`` contains division ``inner`` (``110000`` covers ``110105``)."""
    return inner.startswith(area_prefix(area))


def authored(data: dict[str, Any], author: str | None, source: str) -> dict[str, Any]:
    """``data`` with ``author`` as its author: the user who submits a document is its author on the
    record, whom the four-eyes rule checks. A document may leave ``author`` out; one naming someone else
    is refused, naming the field. Without ``author`` (the flow's own callers), ``data`` as it is."""
    if author is None:
        return data
    named = data.get("author")
    if named in (None, ""):
        return {**data, "author": author}
    if not isinstance(named, str):
        raise InvalidItemError(source, [("author", "must be a name (text)")])
    if not same_person(named, author):
        raise InvalidItemError(
            source,
            [
                (
                    "author",
                    f"names {named[:100]!r}, but {author} submits it; leave author out, or let them submit",
                )
            ],
        )
    return data


def parse_item(data: Any, source: str = "item", *, author: str | None = None) -> Item:
    """Validate a decoded document, raising :class:`InvalidItemError` naming every bad field.

    With ``author`` (the user who submits it), the document may leave ``author`` out; if it names
    someone else, it is refused: the author on the record is the user, whom the four-eyes rule checks."""
    if not isinstance(data, dict):
        raise InvalidItemError(source, [("(document)", "must be a mapping of fields")])
    data = authored(data, author, source)
    try:
        return Item.model_validate(data)
    except RecursionError:
        raise InvalidItemError(source, [("(document)", "is nested too deeply to be an item")]) from None
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = ".".join(str(part) for part in err["loc"]) or "(item)"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            problems.append((field, message))
        raise InvalidItemError(source, problems) from None


class PlainLoader(yaml.BaseLoader):
    """YAML without aliases: an item or a rota never needs one, and a few hundred bytes of aliases
    repeating each other unfold into gigabytes (a "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not taken in items or rotas", event.start_mark
            )
        return super().compose_node(parent, index)


def read_document(text: str, source: str, *, as_json: bool, whole: str = "(file)") -> Any:
    """A JSON or YAML document decoded, not yet validated; an :class:`InvalidItemError` naming ``whole``
    when it cannot be parsed. The items and rotas read from files and from request bodies both."""
    try:
        if as_json:
            return json.loads(text)
        # BaseLoader keeps every scalar a string, so "expires" is parsed by pydantic (which insists on
        # an offset) rather than by YAML (which would accept a naive timestamp), and no YAML 1.1
        # surprise ("no" as false, 10:00 as 600) reaches a rota.
        return yaml.load(text, Loader=PlainLoader)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidItemError(source, [(whole, f"cannot be parsed: {exc}")]) from None
    except RecursionError:
        raise InvalidItemError(source, [(whole, "is nested too deeply to be read")]) from None


def load_item(path: Path, *, author: str | None = None) -> Item:
    """Read an item from a ``.yaml``/``.yml`` or ``.json`` file (``author``: see :func:`parse_item`)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidItemError(source, [("(file)", "no such file")]) from None
    except UnicodeDecodeError:
        raise InvalidItemError(source, [("(file)", "is not UTF-8 text")]) from None
    data = read_document(text, source, as_json=path.suffix.lower() == ".json")
    return parse_item(data, source, author=author)
