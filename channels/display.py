"""Electronic display signs, listed in a sign registry and driven by an HTTP sign controller.

Text is laid out in NTCIP 1203 MULTI markup (the Mark-Up Language for Transportation Information):
``[nl]`` starts a new line, ``[np]`` a new page, ``[ptXoY]`` sets the page on-time and off-time in
tenths of a second, and a literal bracket is written doubled (``[[``, ``]]``). Each sign has its own
lines, characters per line and maximum pages; text is wrapped and paginated to fit and never
truncated: if it needs more pages than the sign allows, approval refuses it for that sign.

The registry is a YAML file (``DISPATCH_DISPLAY__REGISTRY``)::

    signs:
      - id: BJ-CY-001            # unique sign id
        name: 建国路口           # where it stands
        area: "110105"           # 6-digit administrative division code
        lines: 2
        chars_per_line: 12
        max_pages: 4
        address: BJ-CY-001       # a URL, or an id joined to DISPATCH_DISPLAY__HTTP_BASE_URL/signs/

An item reaches every sign whose area lies inside one of the item's areas (``110000`` covers
``110105``). The HTTP driver speaks ``PUT <address>/message`` with the MULTI string, a priority and a
duration, ``GET <address>/message`` (what is shown now), ``GET <address>/messages`` (every message
it holds: the lookup), ``DELETE <address>/message/<id>`` and ``GET <address>/status``. The message
id is the delivery's idempotency key: a controller takes a repeated PUT of an id it holds as the same
message.
"""

from __future__ import annotations

import codecs
import re
import time
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from channels.base import Channel, Health, Payload, Publication, Receipt, Renderer, Target
from dispatcher.errors import (
    ChannelError,
    ConfigurationError,
    ContentError,
    PermanentChannelError,
    TemporaryChannelError,
)
from dispatcher.items import Kind, covers
from dispatcher.rendering import context_for
from settings import DisplaySettings

if TYPE_CHECKING:
    from channels.ntcip import NtcipSign

PRIORITY = {Kind.warning: 200, Kind.release: 100, Kind.safety_tip: 50}
_TOKEN = re.compile(r"[A-Za-z0-9]+|\s+|.", re.DOTALL)


class Sign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    name: str = ""
    area: str = Field(pattern=r"^\d{6}$")
    group: str | None = None
    lines: int = Field(ge=1, le=32)
    chars_per_line: int = Field(ge=1, le=200)
    max_pages: int = Field(1, ge=1, le=16)
    charset: str = Field("gb2312", description="What the sign's font can show; other characters are refused.")
    cjk_cells: int = Field(1, ge=1, le=2, description="Cells a CJK character takes (1 on most LED fonts).")
    page_time: float | None = Field(None, gt=0, description="Seconds per page; default from the settings.")
    driver: Literal["http", "ntcip"] = "http"
    address: str = Field(
        description="http: a URL or an id under http_base_url; ntcip: host:port of the agent"
    )

    @field_validator("charset")
    @classmethod
    def _known_charset(cls, charset: str) -> str:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise ValueError(f"unknown character set {charset!r}") from None
        return charset

    def width(self, text: str) -> int:
        """Cells ``text`` takes on this sign."""
        return sum(self.cjk_cells if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    def unshowable(self, text: str) -> list[str]:
        """Characters of ``text`` outside the sign's character set, each once."""
        bad = []
        for ch in dict.fromkeys(text):
            try:
                ch.encode(self.charset)
            except UnicodeEncodeError:
                bad.append(ch)
        return bad


def load_registry(path: Path) -> list[Sign]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigurationError(f"sign registry {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"sign registry {path} cannot be parsed: {exc}") from None
    signs = []
    for index, entry in enumerate(data.get("signs") or []):
        try:
            signs.append(Sign.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigurationError(
                f"sign registry {path}: signs[{index}].{field}: {first['msg']}"
            ) from None
    ids = [sign.id for sign in signs]
    if len(ids) != len(set(ids)):
        raise ConfigurationError(f"sign registry {path}: sign ids are not unique")
    return signs


def wrap(text: str, width: int, measure: Callable[[str], int] = len) -> list[str]:
    """Break text into lines of at most ``width`` cells, at spaces where a word allows it."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for token in _TOKEN.findall(paragraph):
            if token.isspace():
                current += " " if current else ""
                continue
            if measure(current.rstrip() + token) > width and current.strip():
                lines.append(current.rstrip())
                current = ""
            for ch in token:  # a word longer than a line is split where it must be
                if measure(current + ch) > width and current:
                    lines.append(current.rstrip())
                    current = ""
                current += ch
        if current.strip():
            lines.append(current.rstrip())
    return lines


def duration_minutes(body: dict[str, Any], now: datetime | None = None) -> int:
    """Whole minutes the message may show from now: rounded down, so it never outlives its item.

    Raises :class:`PermanentChannelError` when less than a minute is left (signs count in minutes).
    """
    if "expires" not in body:  # a payload pinned before durations were worked out at activation
        return int(body["duration_minutes"])
    left = (datetime.fromisoformat(body["expires"]) - (now or datetime.now(UTC))).total_seconds()
    if left < 60:
        raise PermanentChannelError(
            f"display: the item expires in {max(0, int(left))}s, too soon to show (signs count in minutes)",
            code="expired",
        )
    return min(int(left // 60), 0xFFFE)


def escape_multi(text: str) -> str:
    return text.replace("[", "[[").replace("]", "]]")


class DisplayChannel(Channel):
    name = "display"
    # A routine message meets a warning that is still showing: not an error, a wait until it ends.
    temporary_codes = frozenset({"preempted"})

    def provider_code(self, response: Any) -> str | None:
        return self.json_field(response, "code")

    def error_for(self, response: Any) -> ChannelError:
        error = super().error_for(response)
        if isinstance(error, TemporaryChannelError) and error.code == "preempted":
            try:
                error.retry_after = float(response.json().get("retry_after") or 0) or error.retry_after
            except (ValueError, AttributeError):
                pass
        return error

    def __init__(self, settings: DisplaySettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self.signs = {sign.id: sign for sign in load_registry(settings.registry)}

    def address(self, sign_id: str) -> str:
        sign = self.signs.get(sign_id)
        if sign is None:
            raise ConfigurationError(f"display: sign {sign_id!r} is not in the registry")
        if sign.address.startswith(("http://", "https://")):
            return sign.address.rstrip("/")
        return f"{self.settings.http_base_url.rstrip('/')}/signs/{sign.address}"

    def targets(self, publication: Publication) -> list[Target]:
        return [
            Target(sign.id, sign.model_dump())
            for sign in self.signs.values()
            if any(covers(area, sign.area) for area in publication.item.areas)
        ]

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        sign = Sign.model_validate(target.detail)
        text = renderer.render(self.name, publication.item.kind.value, context_for(publication))
        unshowable = sign.unshowable(text)
        if unshowable:
            raise ContentError(
                f"display target {sign.id}: {' '.join(unshowable)} not in the sign's character set "
                f"{sign.charset.upper()}"
            )
        lines = wrap(text, sign.chars_per_line, sign.width)
        pages = [lines[i : i + sign.lines] for i in range(0, len(lines), sign.lines)] or [[]]
        on_time = round((sign.page_time or self.settings.page_time) * 10)
        flash = publication.item.kind is Kind.warning
        bodies = ["[nl]".join(escape_multi(line) for line in page) for page in pages]
        if flash:  # warnings flash: half a second on, half off (NTCIP 1203 [fltXoY]…[/fl])
            bodies = [f"[flt5o5]{body}[/fl]" for body in bodies]
        multi = f"[pt{on_time}o0]" + "[np]".join(bodies)
        return Payload(
            channel=self.name,
            target=target.name,
            body={
                "sign": sign.id,
                "multi": multi,
                "pages": [list(page) for page in pages],
                "priority": PRIORITY[publication.item.kind],
                # The duration is worked out when the message is activated, never past expiry.
                "expires": publication.item.expires.isoformat(),
            },
            measures={"pages": len(pages)},
        )

    def limits(self, target: Target) -> dict[str, int]:
        return {"pages": int(target.detail["max_pages"])}

    def _snmp(self, sign_id: str) -> NtcipSign | None:
        """The SNMP driver of an NTCIP sign, or None for a sign on the HTTP driver."""
        sign = self.signs.get(sign_id)
        if sign is None or sign.driver != "ntcip":
            return None
        from channels.ntcip import NtcipSign  # pysnmp is loaded only where NTCIP signs exist

        return NtcipSign(
            sign,
            read_community=self.settings.snmp_read_community.get_secret_value(),
            write_community=self.settings.snmp_write_community.get_secret_value(),
            timeout=self.settings.timeout,
        )

    def send(self, payload: Payload, key: str) -> Receipt:
        body = payload.body
        minutes = duration_minutes(body)
        snmp = self._snmp(body["sign"])
        if snmp is not None:
            snmp.activate(body["multi"], body["priority"], minutes, key)
            return Receipt(provider_id=key, detail={"sign": body["sign"], "minutes": minutes})
        answer = self.request(
            "PUT",
            f"{self.address(body['sign'])}/message",
            json={
                "id": key,
                "multi": body["multi"],
                "priority": body["priority"],
                "duration_minutes": minutes,
            },
        ).json()
        return Receipt(
            provider_id=str(answer.get("id", key)), detail={"sign": body["sign"], "minutes": minutes}
        )

    def showing(self, sign_id: str) -> dict[str, Any] | None:
        """The message a sign shows now (``id``, ``multi``, ``priority``), or None when it is blank."""
        snmp = self._snmp(sign_id)
        if snmp is not None:
            return snmp.showing()
        shown = self.request("GET", f"{self.address(sign_id)}/message", idempotent=True).json()
        return shown or None

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        """Whether the sign holds the message — showing it, or keeping it under a newer one."""
        sign_id = payload.body["sign"]
        snmp = self._snmp(sign_id)
        if snmp is not None:
            held = snmp.holds(key, payload.body["priority"])
        else:
            messages = self.request("GET", f"{self.address(sign_id)}/messages", idempotent=True).json()
            held = any(message.get("id") == key for message in messages)
        return Receipt(provider_id=key, detail={"sign": sign_id}) if held else None

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        snmp = self._snmp(payload.body["sign"])
        if snmp is not None:
            shown = snmp.showing()
            if shown and shown["id"] == receipt.provider_id:
                snmp.blank()
            return
        url = f"{self.address(payload.body['sign'])}/message/{receipt.provider_id}"
        self.request("DELETE", url, idempotent=True)

    def probe(self) -> Health:
        started = time.monotonic()
        offline = []
        for sign_id in self.signs:
            try:
                snmp = self._snmp(sign_id)
                if snmp is not None:
                    snmp.showing()
                else:
                    self.request("GET", f"{self.address(sign_id)}/status", idempotent=True)
            except ChannelError:
                offline.append(sign_id)
        latency = (time.monotonic() - started) * 1000
        online = len(self.signs) - len(offline)
        detail = f"{online}/{len(self.signs)} signs online"
        if offline:
            detail += f"; offline: {', '.join(offline[:10])}"
        return Health(not offline and bool(self.signs), detail, latency)
