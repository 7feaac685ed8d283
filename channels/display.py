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

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from channels.base import Channel, Findings, Health, Payload, Publication, Receipt, Renderer, Target
from channels.signs import Sign, load_registry
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
    from channels.ntcip import NtcipSign, SnmpClient

PRIORITY = {Kind.warning: 200, Kind.release: 100, Kind.safety_tip: 50}
_TOKEN = re.compile(r"[A-Za-z0-9]+|\s+|.", re.DOTALL)


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
    # A sign in local control (someone at the cabinet): a wait too, and people must know.
    temporary_codes = frozenset({"preempted", "local_control"})
    #: how long to wait before asking a sign in local control again
    local_control_wait = 300.0

    def provider_code(self, response: Any) -> str | None:
        return self.json_field(response, "code")

    def error_for(self, response: Any) -> ChannelError:
        error = super().error_for(response)
        if isinstance(error, TemporaryChannelError) and error.code == "preempted":
            error.wait = True
            try:
                # null: the message showing never ends; ask again in a while
                error.retry_after = float(response.json().get("retry_after") or self.local_control_wait)
            except (ValueError, AttributeError):
                error.retry_after = self.local_control_wait
        elif isinstance(error, TemporaryChannelError) and error.code == "local_control":
            error.wait, error.alert, error.retry_after = True, True, self.local_control_wait
        return error

    def __init__(self, settings: DisplaySettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self.signs = {sign.id: sign for sign in load_registry(settings.registry)}
        self._snmp_client: SnmpClient | None = None
        self._configurations: dict[str, tuple[float, dict[str, Any]]] = {}

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
        from channels.ntcip import NtcipSign, SnmpClient  # pysnmp is loaded only where NTCIP signs exist

        if self._snmp_client is None:  # one engine and loop per process, for every sign
            self._snmp_client = SnmpClient(self.settings.timeout)
        return NtcipSign(
            sign,
            self._snmp_client,
            read_community=self.settings.snmp_read_community.get_secret_value(),
            write_community=self.settings.snmp_write_community.get_secret_value(),
            validate_timeout=self.settings.validate_timeout,
        )

    def configuration(self, sign_id: str) -> dict[str, Any]:
        """What the sign says about itself: lines, characters per line, pages, character set, control."""
        cached = self._configurations.get(sign_id)
        if cached and time.monotonic() - cached[0] < 300:
            return cached[1]
        snmp = self._snmp(sign_id)
        if snmp is not None:
            found = snmp.configuration()
        else:
            found = self.request(
                "GET", f"{self.address(sign_id)}/config", idempotent=True, timeout=min(self.timeout, 5.0)
            ).json()
        self._configurations[sign_id] = (time.monotonic(), found)
        return found

    def disagreements(self, sign: Sign, found: dict[str, Any]) -> list[str]:
        """Where the registry and the sign's own configuration differ."""
        problems = []
        for field in ("lines", "chars_per_line", "max_pages"):
            theirs = found.get(field)
            if theirs is not None and int(theirs) != getattr(sign, field):
                problems.append(f"{field} is {getattr(sign, field)} in the registry, {theirs} on the sign")
        said = str(found.get("charset") or found.get("font") or "").lower().replace("-", "")
        if said and not said.startswith(sign.charset.lower().replace("-", "")):
            problems.append(f"the registry says {sign.charset}, the sign's font is {said!r}")
        return problems

    def check(self, payloads: list[Payload]) -> Findings:
        findings = Findings()
        for payload in payloads:
            sign = self.signs[payload.body["sign"]]
            try:
                found = self.configuration(sign.id)
            except ChannelError as exc:
                findings.notes.append(f"display: sign {sign.id} could not be asked before approval ({exc})")
                continue
            for problem in self.disagreements(sign, found):
                findings.problems.append(f"display target {sign.id}: {problem}; correct the sign registry")
            if found.get("control") == "local":
                findings.notes.append(f"display: sign {sign.id} is in local control; the message will wait")
        return findings

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
        offline, local, wrong = [], [], []
        for sign_id, sign in self.signs.items():
            self._configurations.pop(sign_id, None)
            try:
                found = self.configuration(sign_id)
            except ChannelError:
                offline.append(sign_id)
                continue
            if found.get("control") == "local":
                local.append(sign_id)
            differences = self.disagreements(sign, found)
            if differences:
                wrong.append(f"{sign_id} ({'; '.join(differences)})")
        latency = (time.monotonic() - started) * 1000
        online = len(self.signs) - len(offline)
        detail = f"{online}/{len(self.signs)} signs online"
        if offline:
            detail += f"; offline: {', '.join(offline[:10])}"
        if local:
            detail += f"; in local control: {', '.join(local[:10])}"
        if wrong:
            detail += f"; registry differs from the sign: {', '.join(wrong[:5])}"
        return Health(not (offline or local or wrong) and bool(self.signs), detail, latency)

    def describe(self, payload: Payload) -> list[str]:
        body = payload.body
        return [
            f"{len(body['pages'])} page(s), priority {body['priority']}",
            *(f"  page {number}: " + " / ".join(page) for number, page in enumerate(body["pages"], 1)),
            f"  MULTI: {body['multi']}",
        ]
