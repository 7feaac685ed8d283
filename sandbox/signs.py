"""An emulator of a sign controller serving several signs over HTTP, checking NTCIP 1203 MULTI.

The controller is not one vendor's product: it restates, behind a small JSON API, what an NTCIP 1203
v03 dynamic message sign does (NTCIP 1203 v03 "Object Definitions for Dynamic Message Signs", its MIB
published at https://github.com/ite-org/NTCIP_1203, file ``v03/1203v03A-06g.mib``; MULTI is its
Section 6). The same sign model and MULTI checker serve the SNMP agent in ``sandbox/ntcip_agent.py``.

Per sign (``/signs/<id>``; a sign is addressed by its registry ``address`` unless that is a URL, then
by its ``id``):

- ``PUT /message`` ``{"id", "multi", "priority", "duration_minutes"}`` activates a message after
  checking its MULTI string as a sign validates a message row: supported tags only (``[[`` and ``]]``
  for literal brackets), lines per page, width in character cells, pages, the sign's character set.
  A refusal is 400 ``{"error", "code", "position"}`` where ``code`` is the NTCIP
  ``dmsMultiSyntaxError`` name (``unsupportedTag``, ``textTooBig``, ...) and ``position`` the offset
  of the offending character. ``priority`` is a run-time priority, 1–255 (``dmsMessageRunTimePriority``);
  ``duration_minutes`` 1–65535, 65535 meaning until replaced (``MessageActivationCode``), 60 when
  absent. A message whose priority is below the run-time priority of the one showing is refused with
  409 ``{"error", "code": "preempted", "retry_after"}`` (seconds until that one ends, ``null`` if it
  never does); equal or higher priority replaces it (``dmsActivateMsgError`` ``priority``).
  A repeated PUT of an id the sign holds is the same message: 200 ``{"id", "status": "active"|"held"}``
  and no second activation.
- Messages stack: when the one showing expires or is cleared, the one it covered shows again if it
  is still within its own duration.
- ``GET /message``: what shows (``{"id", "multi", "priority"}``) or ``null``; ``GET /messages``: every
  valid message held, the one showing last, ``{"id", "priority", "seconds_remaining"}`` (``null`` when
  indefinite); ``DELETE /message/<id>``: ``{"cleared": bool}``.
- ``GET /status``: ``{"id", "online", "showing", "control"}``; ``GET /config``: the sign's own
  configuration (``lines``, ``chars_per_line``, ``max_pages``, ``charset``, ``cjk_cells``) and
  ``control``.
- In local control (``dmsControlMode`` ``local``) the sign refuses central commands: a PUT or DELETE
  answers 409 ``{"code": "local_control", "error"}`` (``dmsActivateMsgError`` ``localMode``).

Errors are ``{"error": "..."}``; an unknown sign answers 404, an offline one 504.

For the tests (``/_sandbox/``): ``POST clock {"advance": seconds}`` moves the controller's clock,
``POST signs/<id>/reboot`` makes a sign forget its messages (not its control switch), ``POST
signs/<id>/offline {"offline": bool}`` takes it off the network, ``POST signs/<id>/control {"mode":
"local"|"central"}`` turns its local/central switch. ``/_sandbox/received`` records each activation
``{"sign", "id", "multi", "priority", "pages", "duration_minutes"}`` and each clear ``{"sign", "id",
"cleared": true}``.
"""

from __future__ import annotations

import codecs
import functools
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from flask import Flask, jsonify, request

from sandbox.emulator import EmulatorState, emulator_app

# dmsMultiSyntaxError (NTCIP 1203 v03, 5.7.18): the controller names the first error it finds.
MULTI_SYNTAX_ERRORS = {
    "other": 1,
    "none": 2,
    "unsupportedTag": 3,
    "unsupportedTagValue": 4,
    "textTooBig": 5,
    "fontNotDefined": 6,
    "characterNotDefined": 7,
    "fieldDeviceNotExist": 8,
    "fieldDeviceError": 9,
    "flashRegionError": 10,
    "tagConflict": 11,
    "tooManyPages": 12,
    "fontVersionID": 13,
    "graphicID": 14,
    "graphicNotDefined": 15,
}

# The MULTI tags these signs support, with their bit in dmsSupportedMultiTags (NTCIP 1203 v03, 5.5.23);
# a subset, as real signs support subsets. Closing tags share their opening tag's bit.
SUPPORTED_TAG_BITS = {"cf": 1, "fl": 2, "/fl": 2, "fo": 3, "jl": 6, "jp": 7, "nl": 10, "np": 11, "pt": 12}
SUPPORTED_TAG_BITS |= {"sc": 13, "/sc": 13}

# Each supported tag's parameters; a tag that starts like one of these but does not match it has an
# unsupported value (dmsMultiSyntaxError unsupportedTagValue).
_TAG_SHAPES = {
    "/fl": re.compile(r"/fl"),
    "/sc": re.compile(r"/sc"),
    "nl": re.compile(r"nl(\d{0,3})"),
    "np": re.compile(r"np"),
    "pt": re.compile(r"pt(\d{0,3})(?:o(\d{0,3}))?"),
    "jl": re.compile(r"jl([1-5]?)"),  # line justification: other, left, center, right, full
    "jp": re.compile(r"jp([1-4]?)"),  # page justification: other, top, middle, bottom
    "fo": re.compile(r"fo(\d{0,3})(?:,([0-9a-f]{4}))?"),
    "fl": re.compile(r"fl(?:t(\d)o(\d)|o(\d)t(\d))?"),  # flash times in tenths of a second, 0-9
    "sc": re.compile(r"sc(\d{1,2})"),
    "cf": re.compile(r"cf(?:(\d{1,3})(?:,(\d{1,3}),(\d{1,3}))?)?"),
}
# Longest first, so that "/fl" is not read as an unknown tag and "fo" is not taken for "f".
_TAG_NAMES = sorted(_TAG_SHAPES, key=len, reverse=True)

# The font every emulated sign carries (fontTable row 1): 16 pixels high, one cell wide for a
# narrow character and cjk_cells cells for a wide one.
FONT_NUMBER = 1
FONT_HEIGHT = 16


class MultiError(ValueError):
    """The first problem of a MULTI string: its dmsMultiSyntaxError name and character offset."""

    def __init__(self, kind: str, position: int, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.position = position

    @property
    def code(self) -> int:
        return MULTI_SYNTAX_ERRORS[self.kind]


@dataclass(frozen=True)
class SignConfig:
    """One sign of the registry, as plain data: what the controller knows of its own face."""

    id: str
    lines: int
    chars_per_line: int
    max_pages: int
    charset: str = "gb2312"
    cjk_cells: int = 1
    name: str = ""
    area: str = ""
    group: str = ""
    page_time: Any = None
    driver: str = "http"
    address: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any] | object) -> SignConfig:
        """A registry entry (a YAML mapping); raises ValueError when it cannot describe a sign."""
        if not isinstance(entry, Mapping):
            # An entry already parsed into an object is read by the same names.
            entry = {f.name: getattr(entry, f.name) for f in fields(cls) if hasattr(entry, f.name)}
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in entry.items() if key in known and value is not None}
        for key in ("id", "lines", "chars_per_line", "max_pages"):
            if key not in values:
                raise ValueError(f"sign entry without {key}: {dict(entry)!r}")
        sign = cls(**values)
        for key in ("lines", "chars_per_line", "max_pages", "cjk_cells"):
            number = getattr(sign, key)
            if isinstance(number, bool) or not isinstance(number, int) or number < 1:
                raise ValueError(f"sign {sign.id}: {key} must be a positive integer, not {number!r}")
        codecs.lookup(sign.charset)  # raises LookupError for an unknown character set
        return sign

    @property
    def path_id(self) -> str:
        """How the HTTP controller addresses the sign: its address, unless that is a URL."""
        return self.address if self.address and "://" not in self.address else str(self.id)

    def cells(self, ch: str) -> int:
        """Cells one character takes: a wide or full-width East Asian one takes cjk_cells."""
        return self.cjk_cells if unicodedata.east_asian_width(ch) in ("W", "F") else 1

    def width(self, text: str) -> int:
        return sum(self.cells(ch) for ch in text)

    def showable(self, ch: str) -> bool:
        """The font has a glyph for it: a printable character of the sign's character set."""
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            return False
        try:
            ch.encode(self.charset)
        except UnicodeEncodeError:
            return False
        return True

    def fonts(self) -> dict[int, int]:
        """fontNumber → fontVersionID of the fonts the sign holds."""
        return {FONT_NUMBER: font_version_id(FONT_NUMBER, FONT_HEIGHT)}


def crc16(data: bytes) -> int:
    """CRC-16 of ISO/IEC 3309 (X.25: polynomial 0x1021 reflected, seed and final XOR 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def font_version_id(number: int, height: int, char_spacing: int = 0, line_spacing: int = 0) -> int:
    """fontVersionID (NTCIP 1203 v03, 5.4.2.7): CRC-16 over the OER FontVersionByteStream.

    The emulated font has no bitmaps, so its CharacterInfoList is empty (quantity 0, encoded
    ``01 00``). The value is the CRC with its bytes swapped, as the MIB's own example gives it
    (CRC 0x52ED, fontVersionID 0xED52).
    """
    crc = crc16(bytes([number, height, char_spacing, line_spacing, 1, 0]))
    return ((crc & 0xFF) << 8) | (crc >> 8)


@functools.lru_cache(maxsize=16)
def charset_profile(charset: str) -> tuple[int, int]:
    """How many printable characters of the Basic Multilingual Plane the charset encodes, and the
    most bytes one of them takes (2 for GB2312: it is not an eight-bit set)."""
    count, widest = 0, 1
    for point in range(0x20, 0x10000):
        ch = chr(point)
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        try:
            encoded = ch.encode(charset)
        except UnicodeEncodeError:
            continue
        count += 1
        widest = max(widest, len(encoded))
    return count, widest


def check_multi(multi: str, sign: SignConfig) -> list[list[str]]:
    """Pages of lines of visible text; raises MultiError for the first problem, as a sign validating
    a message row reports it in dmsMultiSyntaxError and dmsMultiSyntaxErrorPosition."""
    pages: list[list[str]] = [[""]]
    fonts = sign.fonts()
    i = 0
    while i < len(multi):
        if multi.startswith("[[", i) or multi.startswith("]]", i):
            # NTCIP 1203 Section 6: a doubled bracket is the bracket character itself.
            _place(multi[i], i, pages, sign)
            i += 2
            continue
        ch = multi[i]
        if ch == "]":
            raise MultiError("other", i, f"unmatched ']' at {i}")
        if ch != "[":
            _place(ch, i, pages, sign)
            i += 1
            continue
        end = multi.find("]", i)
        if end == -1:
            raise MultiError("other", i, f"unterminated tag at {i}")
        tag = multi[i + 1 : end]
        name = _check_tag(tag, i, fonts)
        if name == "nl":
            pages[-1].append("")
            if len(pages[-1]) > sign.lines:
                raise MultiError(
                    "textTooBig",
                    i,
                    f"page {len(pages)} has {len(pages[-1])} lines, the sign has {sign.lines}",
                )
        elif name == "np":
            pages.append([""])
            if len(pages) > sign.max_pages:
                raise MultiError(
                    "tooManyPages", i, f"{len(pages)} pages, the sign shows at most {sign.max_pages}"
                )
        i = end + 1
    return pages


def _check_tag(tag: str, position: int, fonts: Mapping[int, int]) -> str:
    """The supported tag's name; raises MultiError for an unsupported tag or value."""
    body = tag.lower()  # MULTI tags are not case sensitive (IRIS MultiString lower-cases them too)
    name = next((n for n in _TAG_NAMES if body.startswith(n)), None)
    if name is None:
        raise MultiError("unsupportedTag", position, f"unsupported tag [{tag}] at {position}")
    shape = _TAG_SHAPES[name].fullmatch(body)
    if shape is None:
        raise MultiError("unsupportedTagValue", position, f"unsupported value in tag [{tag}] at {position}")
    numbers = [int(v) for v in shape.groups() if v and v.isdigit()]
    if name in ("pt", "cf") and any(n > 255 for n in numbers):
        raise MultiError("unsupportedTagValue", position, f"value out of range in [{tag}] at {position}")
    if name == "sc" and not 1 <= numbers[0] <= 99:
        raise MultiError("unsupportedTagValue", position, f"character spacing out of range in [{tag}]")
    if name == "fo" and shape.group(1):
        number = int(shape.group(1))
        if number not in fonts:
            raise MultiError("fontNotDefined", position, f"font {number} is not defined, in [{tag}]")
        if shape.group(2) and int(shape.group(2), 16) != fonts[number]:
            raise MultiError(
                "fontVersionID",
                position,
                f"font {number} has version {fonts[number]:04x}, not {shape.group(2)}",
            )
    return name


def _place(ch: str, position: int, pages: list[list[str]], sign: SignConfig) -> None:
    if not sign.showable(ch):
        raise MultiError(
            "characterNotDefined", position, f"character {ch!r} at {position} is not in {sign.charset}"
        )
    line = pages[-1][-1] + ch
    if sign.width(line) > sign.chars_per_line:
        raise MultiError(
            "textTooBig",
            position,
            f"line {line!r} is {sign.width(line)} cells, wider than {sign.chars_per_line}",
        )
    pages[-1][-1] = line


@dataclass
class _Message:
    id: str
    multi: str
    pages: list[list[str]]
    priority: int
    duration_minutes: int
    until: float | None  # None: until replaced (duration 65535)


@dataclass
class _SignState:
    config: SignConfig
    stack: list[_Message] = field(default_factory=list)
    online: bool = True
    control: str = "central"


INDEFINITE = 65535  # MessageActivationCode duration meaning "until replaced"
DEFAULT_MINUTES = 60


def _integer(value: Any, low: int, high: int) -> int | None:
    """An integer within [low, high] (a whole float such as 10.0 counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def create_app(signs: Iterable[Mapping[str, Any] | object]) -> tuple[Flask, EmulatorState]:
    """The controller of the registry's HTTP signs (entries whose driver is "http", the default)."""
    app, state = emulator_app("signs", lambda status: jsonify({"error": "controller unavailable"}))
    configs = [SignConfig.from_entry(entry) for entry in signs]
    by_id = {config.path_id: _SignState(config) for config in configs if config.driver == "http"}
    now = state.clock.now

    def current(sign: _SignState) -> _Message | None:
        """The message showing, after dropping every one whose duration ran out."""
        moment = now()
        sign.stack = [m for m in sign.stack if m.until is None or m.until > moment]
        return sign.stack[-1] if sign.stack else None

    def remaining(message: _Message) -> int | None:
        return None if message.until is None else max(0, math.ceil(message.until - now()))

    def local_refusal(sign: _SignState) -> Any:
        return jsonify(
            {
                "error": f"sign {sign.config.id} is under local control and refuses central commands",
                "code": "local_control",
            }
        ), 409

    @app.before_request
    def _reachable() -> Any:
        parts = request.path.split("/")
        if len(parts) > 2 and parts[1] == "signs":
            sign = by_id.get(parts[2])
            if sign is None:
                return jsonify({"error": f"no sign {parts[2]}"}), 404
            if not sign.online:
                return jsonify({"error": f"sign {parts[2]} does not answer"}), 504
        return None

    @app.put("/signs/<sign_id>/message")
    def activate(sign_id: str) -> Any:
        sign = by_id[sign_id]
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            return jsonify({"error": "the body must be a JSON object"}), 400
        for name in ("id", "multi", "priority"):
            if name not in data:
                return jsonify({"error": f"missing field {name}"}), 400
        message_id, multi = data["id"], data["multi"]
        if not isinstance(message_id, str) or not message_id:
            return jsonify({"error": "id must be a non-empty string"}), 400
        if not isinstance(multi, str):
            return jsonify({"error": "multi must be a string"}), 400
        # dmsMessageRunTimePriority is INTEGER (1..255), 1 the lowest.
        priority = _integer(data["priority"], 1, 255)
        if priority is None:
            return jsonify({"error": f"priority must be an integer 1-255, not {data['priority']!r}"}), 400
        raw_minutes = data.get("duration_minutes")
        minutes = DEFAULT_MINUTES if raw_minutes is None else _integer(raw_minutes, 1, INDEFINITE)
        if minutes is None:
            wrong = f"duration_minutes must be an integer 1-65535 (65535: indefinite), not {raw_minutes!r}"
            return jsonify({"error": wrong}), 400
        with state.lock:
            if sign.control == "local":
                return local_refusal(sign)
            try:
                pages = check_multi(multi, sign.config)
            except MultiError as exc:
                return jsonify(
                    {"error": f"bad MULTI: {exc}", "code": exc.kind, "position": exc.position}
                ), 400
            shown_now = current(sign)
            if any(m.id == message_id for m in sign.stack):
                # The message id is the idempotency key: a repeat of a held message changes nothing.
                status = "active" if shown_now and shown_now.id == message_id else "held"
                # Recorded all the same: the fault suite counts repeats where they happen.
                state.keep({"sign": sign.config.path_id, "id": message_id, "repeat": status})
                return jsonify({"id": message_id, "status": status})
            if shown_now and priority < shown_now.priority:
                # NTCIP 1203 MessageActivationCode: shown only if the activation priority is at least
                # the run-time priority of the message showing.
                return jsonify(
                    {
                        "error": f"a message of higher priority ({shown_now.priority}) is showing",
                        "code": "preempted",
                        "retry_after": remaining(shown_now),
                    }
                ), 409
            until = None if minutes == INDEFINITE else now() + minutes * 60
            sign.stack.append(_Message(message_id, multi, pages, priority, minutes, until))
            state.keep(
                {
                    "sign": sign_id,
                    "id": message_id,
                    "multi": multi,
                    "priority": priority,
                    "pages": pages,
                    "duration_minutes": minutes,
                }
            )
        return jsonify({"id": message_id, "status": "active"})

    @app.get("/signs/<sign_id>/message")
    def shown(sign_id: str) -> Any:
        with state.lock:
            message = current(by_id[sign_id])
            return jsonify(
                message and {"id": message.id, "multi": message.multi, "priority": message.priority}
            )

    @app.get("/signs/<sign_id>/messages")
    def held(sign_id: str) -> Any:
        """Every valid message the sign holds, the one showing last."""
        with state.lock:
            sign = by_id[sign_id]
            current(sign)
            return jsonify(
                [{"id": m.id, "priority": m.priority, "seconds_remaining": remaining(m)} for m in sign.stack]
            )

    @app.delete("/signs/<sign_id>/message/<message_id>")
    def blank(sign_id: str, message_id: str) -> Any:
        with state.lock:
            sign = by_id[sign_id]
            if sign.control == "local":
                return local_refusal(sign)  # blanking is an activation too (of a blank message)
            before = len(sign.stack)
            sign.stack = [m for m in sign.stack if m.id != message_id]
            cleared = len(sign.stack) < before
            if cleared:
                state.keep({"sign": sign_id, "id": message_id, "cleared": True})
        return jsonify({"cleared": cleared})

    @app.get("/signs/<sign_id>/status")
    def status(sign_id: str) -> Any:
        with state.lock:
            sign = by_id[sign_id]
            message = current(sign)
            return jsonify(
                {
                    "id": sign_id,
                    "online": True,
                    "showing": message.id if message else None,
                    "control": sign.control,
                }
            )

    @app.get("/signs/<sign_id>/config")
    def config(sign_id: str) -> Any:
        sign = by_id[sign_id]
        face = sign.config
        return jsonify(
            {
                "id": sign_id,
                "lines": face.lines,
                "chars_per_line": face.chars_per_line,
                "max_pages": face.max_pages,
                "charset": face.charset,
                "cjk_cells": face.cjk_cells,
                "control": sign.control,
            }
        )

    def sandbox_sign(sign_id: str) -> _SignState | None:
        return by_id.get(sign_id)

    @app.post("/_sandbox/signs/<sign_id>/reboot")
    def reboot(sign_id: str) -> Any:
        sign = sandbox_sign(sign_id)
        if sign is None:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        with state.lock:
            sign.stack = []  # a controller that restarts forgets what it showed
        return jsonify({"rebooted": sign_id})

    @app.post("/_sandbox/signs/<sign_id>/offline")
    def go_offline(sign_id: str) -> Any:
        sign = sandbox_sign(sign_id)
        if sign is None:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        with state.lock:
            sign.online = not (request.get_json(force=True) or {}).get("offline", True)
            return jsonify({"offline": sorted(k for k, s in by_id.items() if not s.online)})

    @app.post("/_sandbox/signs/<sign_id>/control")
    def switch(sign_id: str) -> Any:
        sign = sandbox_sign(sign_id)
        if sign is None:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        mode = (request.get_json(force=True) or {}).get("mode")
        if mode not in ("local", "central"):
            return jsonify({"error": "mode must be local or central"}), 400
        with state.lock:
            sign.control = mode
        return jsonify({"id": sign_id, "control": mode})

    return app, state
