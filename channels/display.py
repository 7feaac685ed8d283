"""Electronic display signs: the adapter over the sign registry, the MULTI layout and the sign drivers.

Text is laid out in NTCIP 1203 MULTI markup (``channels/multi.py``) for each sign's lines, characters
per line and maximum pages; if it needs more pages than the sign allows, approval refuses it for that
sign. Each sign is driven by its driver (``channels/signs.py`` ``SignDriver``): an HTTP controller
(``channels/controller.py``) or NTCIP 1203 over SNMP (``channels/ntcip.py``).

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
``110105``). The message id is the delivery's idempotency key: a controller takes a repeated
activation of an id it holds as the same message.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from channels.base import (
    Channel,
    Findings,
    Health,
    Payload,
    Presence,
    Publication,
    Receipt,
    Renderer,
    Target,
)
from channels.controller import ControllerSign
from channels.multi import duration_minutes, lay_out
from channels.signs import Sign, SignDriver, load_registry
from dispatcher.errors import (
    ChannelError,
    ConfigurationError,
    ContentError,
    TemporaryChannelError,
    TooLateError,
)
from dispatcher.geometry import inside_circle, inside_polygon
from dispatcher.items import Item, Kind, covers
from dispatcher.rendering import context_for
from settings import DisplaySettings

if TYPE_CHECKING:
    from channels.ntcip import SnmpClient

PRIORITY = {Kind.warning: 200, Kind.release: 100, Kind.safety_tip: 50}


class DisplayChannel(Channel):
    name = "display"
    can_update = True
    forgets = True
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

    @property
    def on_expiry(self) -> str:
        # Cleared at expiry, not left to the controller's duration: whole minutes, and a controller
        # that restarted may hold it without one.
        return "withdraw"

    def targets(self, publication: Publication) -> list[Target]:
        """The signs in the item's areas, and those whose coordinates lie inside its polygons or circles."""
        item = publication.item
        return [
            Target(sign.id, sign.model_dump())
            for sign in self.signs.values()
            if any(covers(area, sign.area) for area in item.areas)
            or (sign.lat is not None and sign.lon is not None and inside(item, (sign.lat, sign.lon)))
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
        on_time = round((sign.page_time or self.settings.page_time) * 10)
        flash = publication.item.kind is Kind.warning
        multi, pages = lay_out(text, sign.lines, sign.chars_per_line, sign.width, on_time, flash)
        return Payload(
            channel=self.name,
            target=target.name,
            body={
                "sign": sign.id,
                "multi": multi,
                "pages": pages,
                "priority": PRIORITY[publication.item.kind],
                # The duration is worked out when the message is activated, never past expiry.
                "expires": publication.item.expires.isoformat(),
            },
            measures={"pages": len(pages)},
        )

    def limits(self, target: Target) -> dict[str, int]:
        return {"pages": int(target.detail["max_pages"])}

    def driver(self, sign_id: str) -> SignDriver:
        """The driver of one sign: NTCIP 1203 over SNMP, or the HTTP controller."""
        sign = self.signs.get(sign_id)
        if sign is None:
            raise ConfigurationError(f"display: sign {sign_id!r} is not in the registry")
        if sign.driver != "ntcip":
            return ControllerSign(self.address(sign_id), self.request, config_timeout=min(self.timeout, 5.0))
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
        found = self.driver(sign_id).configuration()
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
        self.driver(body["sign"]).activate(body["multi"], body["priority"], minutes, key)
        return Receipt(provider_id=key, detail={"sign": body["sign"], "minutes": minutes})

    def showing(self, sign_id: str) -> dict[str, Any] | None:
        """The message a sign shows now (``id``, ``multi``, ``priority``), or None when it is blank."""
        return self.driver(sign_id).showing()

    def rank(self, payload: Payload) -> int:
        # A sign shows its highest-priority message; among equals, the latest sent.
        return int(payload.body["priority"])

    def presence(self, payload: Payload, key: str, now: datetime) -> Presence:
        try:
            duration_minutes(payload.body, now)
        except TooLateError:
            # Durations are whole minutes, rounded down: a message ends up to a minute before its
            # item expires, and a sign blank then is a message that ended, not one that was lost.
            return Presence(Presence.ENDED, "less than a minute left")
        shown = self.showing(payload.body["sign"])
        if shown and shown.get("blanked_by"):
            # Someone blanked the sign on purpose (an operator at the sign, another central system):
            # a withdrawal — not a sign that forgot.
            return Presence(Presence.WITHDRAWN, f"blanked at the sign ({shown['blanked_by']})")
        if shown and (shown.get("id") == key or shown["priority"] > payload.body["priority"]):
            return Presence(Presence.SHOWN)
        return Presence(Presence.LOST, "blank" if not shown else f"showed {shown.get('id')}")

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        """Whether the sign holds the message — showing it, or keeping it under a newer one."""
        sign_id = payload.body["sign"]
        held = self.driver(sign_id).holds(key, payload.body["priority"])
        return Receipt(provider_id=key, detail={"sign": sign_id}) if held else None

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        self.driver(payload.body["sign"]).clear(str(receipt.provider_id))

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
        return Health(
            not (offline or local or wrong) and bool(self.signs),
            detail,
            latency,
            down=tuple(offline + local),  # a sign in local control shows none of our messages either
            checked=len(self.signs),
        )

    def describe(self, payload: Payload) -> list[str]:
        body = payload.body
        return [
            f"{len(body['pages'])} page(s), priority {body['priority']}",
            *(f"  page {number}: " + " / ".join(page) for number, page in enumerate(body["pages"], 1)),
            f"  MULTI: {body['multi']}",
        ]


def inside(item: Item, point: tuple[float, float]) -> bool:
    """Whether ``point`` lies inside one of the item's polygons or circles."""
    return any(inside_polygon(point, polygon) for polygon in item.polygons) or any(
        inside_circle(point, circle) for circle in item.circles
    )
