"""A dynamic message sign's NTCIP 1203 v03 objects, served through Net-SNMP's ``pass_persist`` protocol.

Sources: NTCIP 1203 v03 (Object Definitions for Dynamic Message Signs), its MIB
``v03/1203v03A-06g.mib`` in https://github.com/ite-org/NTCIP_1203 (section numbers below are the
MIB's); the NTCIP central system IRIS (https://github.com/mnit-rtmc/iris), whose
``src/us/mn/state/dot/tms/server/comm/ntcip/mib1203/MIB1203.java`` lists the OIDs and whose
``OpSendDMSMessage.java``, ``OpQueryDMSMessage.java`` and ``OpQueryDMSConfiguration.java`` show how a
central system drives and reads a sign; Net-SNMP's ``agent/mibgroup/ucd-snmp/pass_common.c``
(https://github.com/net-snmp/net-snmp) for the words a ``pass_persist`` handler answers a SET with.

A real ``snmpd`` speaks SNMP on the network and hands every request under the DMS subtree
(``dms`` = ``1.3.6.1.4.1.1206.4.2.3``) to this process over standard input and output: ``PING`` →
``PONG``; ``get``/``getnext`` + OID → OID, type, value (or ``NONE``); ``set`` + OID + "type value" →
``DONE`` or an error word (``gen-error`` is SNMP genErr, which 5.7.3 requires for a refused
activation). One process plays one sign controller:

- Configuration, derived from the options: ``dmsSignCfg`` (dms.1: type, size in mm, no beacons, LED),
  ``vmsCfg`` (dms.2: ``vmsCharacterHeightPixels`` 16, ``vmsCharacterWidthPixels`` the cell width,
  ``vmsSignHeightPixels`` lines × 16, ``vmsSignWidthPixels`` characters per line × cell width),
  the font table (dms.3), ``dmsSupportedMultiTags``, ``dmsMaxNumberPages``,
  ``dmsMaxMultiStringLength``, ``defaultCharacterSet`` (dms.4). With ``--cjk-cells 1`` the sign is a
  character matrix (``vmsChar``) of 16 × 16 cells, every character one cell; with ``--cjk-cells 2``
  a line matrix (``vmsLine``, character width 0 = variable) whose narrow characters are 8 pixels wide
  and wide ones 16. How the font says what it covers: the standard's font table has no character-set
  column, so font 1's ``fontName`` begins with the character set (``"GB2312 16"``),
  ``maxFontCharacters`` is how many characters that set has, and ``defaultCharacterSet`` is
  ``other`` (1) for a multi-byte set such as GB2312 (``eightBit`` (2) only for a one-byte one): each
  character of a MULTI string is then its bytes in that set. The font has no bitmaps
  (``characterTable`` is not served); its ``fontVersionID`` is computed over the font information.
- ``dmsMessageTable`` (dms.5.8.1.<column>.<memory type>.<number>, 5.6.8): changeable messages
  1–``--changeable``, the 255 blank messages (blank N has run-time priority N and CRC 0, 5.6.8.1) and
  ``currentBuffer`` (5.1: a copy of the row showing). A row is written between ``modifyReq`` and
  ``validateReq`` only (5.6.8); ``validateReq`` puts it in ``validating`` (3) for
  ``--validate-seconds``, then ``valid`` (4) or ``error`` (5), with ``dmsValidateMessageError``
  (5.6.9), ``dmsMultiSyntaxError`` (5.7.18) and ``dmsMultiSyntaxErrorPosition`` (5.7.19, in
  characters) telling why; ``notUsedReq`` empties it. ``dmsMessageCRC`` (5.6.8.5) is the ISO/IEC 3309
  CRC-16 of MULTI + beacon + pixel service, its bytes swapped as in the MIB's example of
  ``MessageActivationCode`` (``[jp3]TEST [fl]Flashing[/fl]`` → CRC field ``95 F9``).
- ``dmsActivateMessage`` (dms.6.3.0, 5.7.3): duration (2 bytes, minutes, 65535 = until replaced),
  activation priority (1), memory type (1), number (2), CRC (2), source address (4). Refused with
  genErr and a reason in ``dmsActivateMsgError`` (dms.6.17.0): ``localMode`` in local control,
  ``messageMemoryType``, ``messageNumber``, ``messageStatus`` (row not valid), ``messageCRC``,
  ``priority`` (below the run-time priority of the message showing); ``dmsActivateErrorMsgCode``
  keeps the code tried and bit 7 of ``shortErrorStatus`` is set while the last one failed.
- Activation state: ``dmsMsgTableSource`` (5.7.5), ``dmsMessageTimeRemaining`` (5.7.4: minutes,
  rounded up, 65535 indefinite; writable), ``dmsMsgRequesterID`` (5.7.6, the source address),
  ``dmsMsgSourceMode`` (5.7.7), ``dmsEndDurationMessage`` (5.7.15: shown, indefinitely, when a
  duration runs out; blank 1 by default).
- ``dmsControlMode`` (dms.6.1.0, 5.7.1): ``central`` (4), ``local`` (2), or ``centralOverride`` (5)
  after a central system SETs it while the switch is at local. In local control the message table
  refuses changes with genErr (as IRIS observes) and activations fail with ``localMode``.

For the tests, ``--state-file PATH`` names a JSON file the agent re-reads on every request:
``{"control": "local"|"central", "clock_offset": seconds}`` turns the sign's local/central switch
and moves its clock forward (validation and durations use it). A missing file means central and no
offset; an unreadable one leaves the last values read.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sandbox.signs import (
    FONT_HEIGHT,
    FONT_NUMBER,
    SUPPORTED_TAG_BITS,
    MultiError,
    SignConfig,
    charset_profile,
    check_multi,
    crc16,
    font_version_id,
)

DMS = "1.3.6.1.4.1.1206.4.2.3"
MESSAGE = f"{DMS}.5.8.1"  # dmsMessageEntry
FONT = f"{DMS}.3.2.1"  # fontEntry
VALIDATE_ERROR = f"{DMS}.5.9.0"
CONTROL_MODE = f"{DMS}.6.1.0"
ACTIVATE = f"{DMS}.6.3.0"
TIME_REMAINING = f"{DMS}.6.4.0"
TABLE_SOURCE = f"{DMS}.6.5.0"
REQUESTER = f"{DMS}.6.6.0"
SOURCE_MODE = f"{DMS}.6.7.0"
END_DURATION = f"{DMS}.6.15.0"
ACTIVATE_ERROR = f"{DMS}.6.17.0"
SYNTAX_ERROR = f"{DMS}.6.18.0"
SYNTAX_ERROR_POSITION = f"{DMS}.6.19.0"
OTHER_ERROR = f"{DMS}.6.20.0"
ACTIVATE_ERROR_CODE = f"{DMS}.6.24.0"
SHORT_ERROR_STATUS = f"{DMS}.9.7.1.0"

# dmsMessageMemoryType (5.6.8.1)
PERMANENT, CHANGEABLE, VOLATILE, CURRENT_BUFFER, SCHEDULE, BLANK = 2, 3, 4, 5, 6, 7
# dmsMessageStatus (5.6.8.9)
NOT_USED, MODIFYING, VALIDATING, VALID, ERROR, MODIFY_REQ, VALIDATE_REQ, NOT_USED_REQ = 1, 2, 3, 4, 5, 6, 7, 8
# dmsValidateMessageError (5.6.9)
VALIDATE_OTHER, VALIDATE_NONE, VALIDATE_BEACONS, VALIDATE_PIXEL_SERVICE, VALIDATE_SYNTAX = 1, 2, 3, 4, 5
# dmsActivateMsgError (5.7.17)
ERR_OTHER, ERR_NONE, ERR_PRIORITY, ERR_STATUS, ERR_MEMORY, ERR_NUMBER, ERR_CRC = 1, 2, 3, 4, 5, 6, 7
ERR_SYNTAX, ERR_LOCAL = 8, 9
# dmsControlMode (5.7.1)
LOCAL, CENTRAL, CENTRAL_OVERRIDE = 2, 4, 5
# dmsMsgSourceMode (5.7.7)
SOURCE_CENTRAL, SOURCE_RESET, SOURCE_END_DURATION = 8, 11, 14
# dmsMultiSyntaxError none (5.7.18)
SYNTAX_NONE = 2

INDEFINITE = 65535
INTERNAL = bytes([127, 0, 0, 1])  # internal activations carry priority 255 from 127.0.0.1 (5.7.3)
MESSAGE_ERROR_BIT = 1 << 7  # shortErrorStatus bit 7: message error (5.11.2.1.1)
PITCH_MM, BORDER_MM = 10, 50
MAX_OWNER = 127  # OwnerString: DisplayString (SIZE (0..127))


def message_crc(multi: bytes, beacon: int = 0, pixel_service: int = 0) -> int:
    """dmsMessageCRC (5.6.8.5): the CRC-16 of MULTI, beacon and pixel service bytes, as an integer
    whose big-endian bytes are the CRC's transmission order (low byte first). The MIB's
    MessageActivationCode example fixes this order; IRIS DmsMessageCRC swaps the bytes the same way."""
    crc = crc16(multi + bytes([beacon, pixel_service]))
    return ((crc & 0xFF) << 8) | (crc >> 8)


@dataclass
class Row:
    """One dmsMessageTable row."""

    multi: bytes = b""
    owner: bytes = b""
    beacon: int = 0
    pixel_service: int = 0
    priority: int = 1
    status: int = NOT_USED
    crc: int = 0
    validating_until: float | None = None
    # What validation found, revealed when the row leaves ``validating``: (validate error, syntax error
    # code, position, other error description).
    verdict: tuple[int, int, int, str] = (VALIDATE_NONE, SYNTAX_NONE, 0, "")


@dataclass(frozen=True)
class Shown:
    """The currentBuffer: a copy of the row activated, so editing that row later changes nothing shown."""

    memory: int
    number: int
    multi: bytes = b""
    owner: bytes = b""
    beacon: int = 0
    pixel_service: int = 0
    priority: int = 1
    crc: int = 0


def blank_shown(number: int = 1) -> Shown:
    # Blank message N: empty MULTI, CRC 0, run-time priority N (5.6.8.1).
    return Shown(BLANK, number, priority=number)


@dataclass
class Controller:
    """One sign controller's NTCIP 1203 state; ``clock`` is seconds, moved by the state file's offset."""

    sign: SignConfig
    clock: Callable[[], float] = time.time
    validate_seconds: float = 1.0
    state_file: Path | None = None
    changeable: int = 4
    max_multi_length: int = 1024
    switch: str = "central"  # the local/central switch at the sign
    offset: float = 0.0
    override: bool = False  # centralOverride SET while the switch is at local
    rows: dict[tuple[int, int], Row] = field(default_factory=dict)
    shown: Shown = field(default_factory=blank_shown)
    until: float | None = None  # when the message showing ends; None: until replaced
    # The reset message (blank 1 by default, 5.7.11) is what shows after start-up, activated internally.
    activation: bytes = bytes.fromhex("ffff ff 07 0001 0000") + INTERNAL
    requester: bytes = INTERNAL
    source_mode: int = SOURCE_RESET
    end_duration: bytes = bytes.fromhex("07 0001 0000")  # DEFVAL: blank 1, CRC 0 (5.7.15)
    activate_error: int = ERR_NONE
    activate_error_code: bytes = bytes(12)
    validate_error: int = VALIDATE_NONE
    syntax_error: int = SYNTAX_NONE
    syntax_position: int = 0
    other_error: str = ""

    def __post_init__(self) -> None:
        self.rows = {(CHANGEABLE, n): Row() for n in range(1, self.changeable + 1)}

    def now(self) -> float:
        return self.clock() + self.offset

    # -- the world outside SNMP: the state file, the passing of time ---------------------------

    def read_state(self) -> None:
        """Re-read the state file: the control switch and the clock offset."""
        if self.state_file is None:
            return
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        except (OSError, ValueError):
            return  # a file being rewritten: keep the last values read
        if not isinstance(data, dict):
            return
        switch = data.get("control", "central")
        if switch in ("local", "central"):
            if switch == "central":
                self.override = False  # back at central, an override means nothing any more
            self.switch = switch
        offset = data.get("clock_offset", 0.0)
        if isinstance(offset, int | float) and not isinstance(offset, bool):
            self.offset = float(offset)

    def tick(self) -> None:
        """Let time pass: validations finish, a message whose duration ran out gives way."""
        moment = self.now()
        for row in self.rows.values():
            if (
                row.status == VALIDATING
                and row.validating_until is not None
                and moment >= row.validating_until
            ):
                self.finish_validation(row)
        if self.until is not None and moment >= self.until:
            self.end_of_duration()

    def finish_validation(self, row: Row) -> None:
        validate_error, syntax_error, position, other = row.verdict
        row.status = VALID if validate_error == VALIDATE_NONE else ERROR
        row.validating_until = None
        self.validate_error = validate_error
        self.syntax_error, self.syntax_position, self.other_error = syntax_error, position, other

    def end_of_duration(self) -> None:
        """Show dmsEndDurationMessage indefinitely, or blank 1 if it names no valid message (5.7.15)."""
        memory, number = self.end_duration[0], int.from_bytes(self.end_duration[1:3], "big")
        crc = int.from_bytes(self.end_duration[3:5], "big")
        shown = self.message(memory, number)
        if shown is None or shown.crc != crc or not self.is_valid(memory, number):
            shown = blank_shown()
        self.shown, self.until = shown, None
        self.activation = (
            INDEFINITE.to_bytes(2, "big")
            + bytes([255, shown.memory])
            + shown.number.to_bytes(2, "big")
            + shown.crc.to_bytes(2, "big")
            + INTERNAL
        )
        self.requester, self.source_mode = INTERNAL, SOURCE_END_DURATION

    # -- the message table ----------------------------------------------------------------------

    def message(self, memory: int, number: int) -> Shown | None:
        """A row as it would be shown, or None if the table has no such row."""
        if memory == BLANK:
            return blank_shown(number) if 1 <= number <= 255 else None
        row = self.rows.get((memory, number))
        if row is None:
            return None
        return Shown(
            memory, number, row.multi, row.owner, row.beacon, row.pixel_service, row.priority, row.crc
        )

    def is_valid(self, memory: int, number: int) -> bool:
        return memory == BLANK or self.rows[(memory, number)].status == VALID

    def control_mode(self) -> int:
        if self.switch == "central":
            return CENTRAL
        return CENTRAL_OVERRIDE if self.override else LOCAL

    def time_remaining(self) -> int:
        """Minutes left, rounded up to the next full minute; 65535 when indefinite (5.7.4)."""
        if self.until is None:
            return INDEFINITE
        return min(INDEFINITE - 1, max(0, math.ceil((self.until - self.now()) / 60)))

    # -- values, as (type, text) for pass_persist ----------------------------------------------

    def objects(self) -> dict[str, tuple[str, str]]:
        values: dict[str, tuple[str, str]] = {}
        values.update(self.configuration())
        table = {key: self.message(*key) for key in self.rows}
        table |= {(BLANK, n): blank_shown(n) for n in range(1, 256)}
        table[(CURRENT_BUFFER, 1)] = self.shown
        for (memory, number), shown in sorted(table.items()):
            assert shown is not None
            index = f"{memory}.{number}"
            row = self.rows.get((memory, number))
            status = row.status if row is not None else VALID
            values[f"{MESSAGE}.1.{index}"] = ("integer", str(memory))
            values[f"{MESSAGE}.2.{index}"] = ("integer", str(number))
            values[f"{MESSAGE}.3.{index}"] = ("octet", shown.multi.hex(" "))
            values[f"{MESSAGE}.4.{index}"] = ("octet", shown.owner.hex(" "))
            values[f"{MESSAGE}.5.{index}"] = ("integer", str(shown.crc))
            values[f"{MESSAGE}.6.{index}"] = ("integer", str(shown.beacon))
            values[f"{MESSAGE}.7.{index}"] = ("integer", str(shown.pixel_service))
            values[f"{MESSAGE}.8.{index}"] = ("integer", str(shown.priority))
            values[f"{MESSAGE}.9.{index}"] = ("integer", str(status))
        changeable_valid = sum(1 for (m, _), r in self.rows.items() if m == CHANGEABLE and r.status == VALID)
        source = (
            bytes([self.shown.memory])
            + self.shown.number.to_bytes(2, "big")
            + self.shown.crc.to_bytes(2, "big")
        )
        values |= {
            f"{DMS}.5.1.0": ("integer", "0"),  # dmsNumPermanentMsg
            f"{DMS}.5.2.0": ("integer", str(changeable_valid)),  # dmsNumChangeableMsg
            f"{DMS}.5.3.0": ("integer", str(self.changeable)),  # dmsMaxChangeableMsg
            VALIDATE_ERROR: ("integer", str(self.validate_error)),
            CONTROL_MODE: ("integer", str(self.control_mode())),
            ACTIVATE: ("octet", self.activation.hex(" ")),
            TIME_REMAINING: ("integer", str(self.time_remaining())),
            TABLE_SOURCE: ("octet", source.hex(" ")),
            REQUESTER: ("ipaddress", str(ipaddress.IPv4Address(self.requester))),
            SOURCE_MODE: ("integer", str(self.source_mode)),
            END_DURATION: ("octet", self.end_duration.hex(" ")),
            ACTIVATE_ERROR: ("integer", str(self.activate_error)),
            SYNTAX_ERROR: ("integer", str(self.syntax_error)),
            SYNTAX_ERROR_POSITION: ("integer", str(self.syntax_position)),
            OTHER_ERROR: ("string", self.other_error),
            ACTIVATE_ERROR_CODE: ("octet", self.activate_error_code.hex(" ")),
            f"{DMS}.6.25.0": ("integer", "1"),  # dmsActivateMessageState: fastActivationSign
            SHORT_ERROR_STATUS: (
                "integer",
                str(MESSAGE_ERROR_BIT if self.activate_error != ERR_NONE else 0),
            ),
        }
        return values

    def configuration(self) -> dict[str, tuple[str, str]]:
        """What a central system reads to learn the sign (IRIS OpQueryDMSConfiguration, OpQueryDMSFonts)."""
        sign = self.sign
        matrix = sign.cjk_cells == 1
        # A character matrix sign has one cell size; a line matrix one has variable widths (5.3.2).
        cell = FONT_HEIGHT if matrix else FONT_HEIGHT // 2
        height_px, width_px = sign.lines * FONT_HEIGHT, sign.chars_per_line * cell
        characters, widest = charset_profile(sign.charset)
        glyph = cell * sign.cjk_cells
        tags = 0
        for bit in SUPPORTED_TAG_BITS.values():
            tags |= 1 << bit
        number = str(FONT_NUMBER)
        return {
            f"{DMS}.1.1.0": ("integer", str(1 << 3)),  # dmsSignAccess: front access
            f"{DMS}.1.2.0": ("integer", "4" if matrix else "5"),  # dmsSignType: vmsChar / vmsLine
            f"{DMS}.1.3.0": ("integer", str(height_px * PITCH_MM + 2 * BORDER_MM)),  # dmsSignHeight, mm
            f"{DMS}.1.4.0": ("integer", str(width_px * PITCH_MM + 2 * BORDER_MM)),  # dmsSignWidth, mm
            f"{DMS}.1.5.0": ("integer", str(BORDER_MM)),  # dmsHorizontalBorder
            f"{DMS}.1.6.0": ("integer", str(BORDER_MM)),  # dmsVerticalBorder
            f"{DMS}.1.7.0": ("integer", "2"),  # dmsLegend: noLegend
            f"{DMS}.1.8.0": ("integer", "2"),  # dmsBeaconType: none
            f"{DMS}.1.9.0": ("integer", str(1 << 1)),  # dmsSignTechnology: LED
            f"{DMS}.2.1.0": ("integer", str(FONT_HEIGHT)),  # vmsCharacterHeightPixels
            f"{DMS}.2.2.0": ("integer", str(cell if matrix else 0)),  # vmsCharacterWidthPixels
            f"{DMS}.2.3.0": ("integer", str(height_px)),  # vmsSignHeightPixels
            f"{DMS}.2.4.0": ("integer", str(width_px)),  # vmsSignWidthPixels
            f"{DMS}.2.5.0": ("integer", str(PITCH_MM)),  # vmsHorizontalPitch
            f"{DMS}.2.6.0": ("integer", str(PITCH_MM)),  # vmsVerticalPitch
            f"{DMS}.2.7.0": ("octet", "ff b4 00 00 00 00"),  # monochromeColor: amber on black
            f"{DMS}.3.1.0": ("integer", "1"),  # numFonts
            f"{FONT}.1.1": ("integer", "1"),  # fontIndex
            f"{FONT}.2.1": ("integer", number),  # fontNumber
            f"{FONT}.3.1": ("string", f"{sign.charset.upper()} {FONT_HEIGHT}"),  # fontName
            f"{FONT}.4.1": ("integer", str(FONT_HEIGHT)),  # fontHeight
            f"{FONT}.5.1": ("integer", "0"),  # fontCharSpacing
            f"{FONT}.6.1": ("integer", "0"),  # fontLineSpacing
            f"{FONT}.7.1": ("integer", str(font_version_id(FONT_NUMBER, FONT_HEIGHT))),  # fontVersionID
            f"{FONT}.8.1": ("integer", "6"),  # fontStatus: permanent (the vendor's own font)
            f"{DMS}.3.3.0": ("integer", str(characters)),  # maxFontCharacters
            f"{DMS}.3.5.0": ("integer", str(math.ceil(glyph * FONT_HEIGHT / 8))),  # fontMaxCharacterSize
            f"{DMS}.4.5.0": ("integer", number),  # defaultFont
            f"{DMS}.4.10.0": ("integer", "1" if widest > 1 else "2"),  # defaultCharacterSet
            f"{DMS}.4.11.0": ("integer", "1"),  # dmsColorScheme: monochrome1bit
            # dmsSupportedMultiTags: octet 0 carries bits 0-7, as IRIS DmsSupportedMultiTags reads it.
            f"{DMS}.4.14.0": ("octet", tags.to_bytes(4, "little").hex(" ")),
            f"{DMS}.4.15.0": ("integer", str(sign.max_pages)),  # dmsMaxNumberPages
            f"{DMS}.4.16.0": ("integer", str(self.max_multi_length)),  # dmsMaxMultiStringLength
        }

    # -- writes ---------------------------------------------------------------------------------

    def set(self, oid: str, kind: str, value: str) -> str:
        """Apply one SET; returns DONE or the pass_persist error word."""
        if oid == ACTIVATE:
            return self.activate(_octets(kind, value)) if kind in ("octet", "string") else "wrong-type"
        if oid == CONTROL_MODE:
            return self.set_control(kind, value)
        if oid == TIME_REMAINING:
            return self.set_time_remaining(kind, value)
        if oid == END_DURATION:
            if kind not in ("octet", "string"):
                return "wrong-type"
            code = _octets(kind, value)
            if len(code) != 5:
                return "wrong-length"
            self.end_duration = code
            return "DONE"
        if not oid.startswith(MESSAGE + "."):
            return "not-writable"
        column, memory, number = (int(part) for part in oid[len(MESSAGE) + 1 :].split("."))
        if memory != CHANGEABLE:
            # Rows of blank, currentBuffer (and schedule, permanent) are not written into (5.6.8.3).
            return "gen-error" if column in (3, 4, 6, 7, 8, 9) else "not-writable"
        if column in (1, 2, 5):
            return "not-writable"
        if self.control_mode() == LOCAL:
            return "gen-error"  # IRIS: modifying a message while the sign is in local mode gets genErr
        row = self.rows[(memory, number)]
        if column == 9:
            return self.change_status(row, kind, value)
        if row.status != MODIFYING:
            return "inconsistent-value"  # columns change only while the row is modifying (5.6.8)
        if column in (3, 4):
            if kind not in ("octet", "string"):
                return "wrong-type"
            data = _octets(kind, value)
            if column == 3:
                if len(data) > self.max_multi_length:
                    return "wrong-length"  # subranged by dmsMaxMultiStringLength (5.6.8.3)
                if b"\x00" in data:
                    return "wrong-value"  # "The value of the MULTI string is not allowed to have any null"
                row.multi = data
            else:
                if len(data) > MAX_OWNER:
                    return "wrong-length"
                row.owner = data
            return "DONE"
        if kind != "integer":
            return "wrong-type"
        number_value = _integer(value)
        if number_value is None:
            return "wrong-value"
        if column in (6, 7):
            if number_value not in (0, 1):
                return "wrong-value"
            if column == 6:
                row.beacon = number_value
            else:
                row.pixel_service = number_value
        elif column == 8:
            if not 1 <= number_value <= 255:
                return "wrong-value"
            row.priority = number_value
        return "DONE"

    def change_status(self, row: Row, kind: str, value: str) -> str:
        if kind != "integer":
            return "wrong-type"
        wanted = _integer(value)
        if wanted not in (MODIFY_REQ, VALIDATE_REQ, NOT_USED_REQ):
            return "wrong-value"  # the states themselves are not written, only the requests
        if row.status == VALIDATING:
            return "inconsistent-value"  # IRIS: modifyReq fails (badValue) while a row is validating
        if wanted == MODIFY_REQ:
            row.status = MODIFYING
        elif wanted == VALIDATE_REQ:
            if row.status != MODIFYING:
                return "inconsistent-value"
            row.crc = message_crc(row.multi, row.beacon, row.pixel_service)
            row.verdict = self.validate(row)
            row.status, row.validating_until = VALIDATING, self.now() + self.validate_seconds
            if self.validate_seconds <= 0:
                self.finish_validation(row)
        else:
            row.multi, row.owner, row.beacon, row.pixel_service = b"", b"", 0, 0
            row.priority, row.status, row.crc, row.validating_until = 1, NOT_USED, 0, None
        return "DONE"

    def validate(self, row: Row) -> tuple[int, int, int, str]:
        """(dmsValidateMessageError, dmsMultiSyntaxError, dmsMultiSyntaxErrorPosition, description)."""
        if row.beacon:
            return (VALIDATE_BEACONS, SYNTAX_NONE, 0, "")  # dmsBeaconType is none: no beacon to light
        try:
            text = row.multi.decode(self.sign.charset)
        except UnicodeDecodeError as exc:
            # Bytes that are no character of the font's set; the position counts characters.
            position = len(row.multi[: exc.start].decode(self.sign.charset, errors="replace"))
            return (VALIDATE_SYNTAX, 7, position, "")  # characterNotDefined
        try:
            check_multi(text, self.sign)
        except MultiError as exc:
            other = str(exc)[:50] if exc.kind == "other" else ""  # DisplayString (SIZE (0..50))
            return (VALIDATE_SYNTAX, exc.code, exc.position, other)
        return (VALIDATE_NONE, SYNTAX_NONE, 0, "")

    def set_control(self, kind: str, value: str) -> str:
        if kind != "integer":
            return "wrong-type"
        wanted = _integer(value)
        if wanted == CENTRAL_OVERRIDE:
            self.override = self.switch == "local"
            return "DONE"
        if wanted == CENTRAL:
            if self.switch == "local":
                return "inconsistent-value"  # only centralOverride takes control from the local switch
            self.override = False
            return "DONE"
        return "wrong-value"  # local is the switch's to set; other, external, simulation are retired

    def set_time_remaining(self, kind: str, value: str) -> str:
        if kind != "integer":
            return "wrong-type"
        minutes = _integer(value)
        if minutes is None or not 0 <= minutes <= INDEFINITE:
            return "wrong-value"
        # A SET extends or shortens the message showing; 0 ends it at once (5.7.4).
        self.until = None if minutes == INDEFINITE else self.now() + minutes * 60
        if minutes == 0:
            self.end_of_duration()
        return "DONE"

    def activate(self, code: bytes) -> str:
        if len(code) != 12:
            return "wrong-length"  # MessageActivationCode is OCTET STRING (SIZE(12))
        duration = int.from_bytes(code[0:2], "big")
        priority, memory = code[2], code[3]
        number, crc = int.from_bytes(code[4:6], "big"), int.from_bytes(code[6:8], "big")
        target = self.message(memory, number)
        error = ERR_NONE
        if self.control_mode() == LOCAL:
            error = ERR_LOCAL
        elif memory not in (PERMANENT, CHANGEABLE, BLANK):
            error = ERR_MEMORY  # no volatile memory, no scheduler; currentBuffer only in MessageIDCode
        elif target is None:
            error = ERR_NUMBER  # no permanent messages, and only so many changeable ones
        elif not self.is_valid(memory, number):
            error = ERR_STATUS
        elif target.crc != crc:
            error = ERR_CRC
        elif priority < self.shown.priority:
            error = ERR_PRIORITY  # below the run-time priority of the message showing (5.7.17)
        self.activate_error, self.activate_error_code = error, code
        if error != ERR_NONE or target is None:
            return "gen-error"  # 5.7.3: a refused activation answers genErr
        self.activation, self.shown = code, target
        self.until = None if duration == INDEFINITE else self.now() + duration * 60
        self.requester, self.source_mode = code[8:12], SOURCE_CENTRAL
        if duration == 0:
            self.end_of_duration()  # a duration of 0 has already expired (5.7.4)
        return "DONE"


def _integer(value: str) -> int | None:
    try:
        return int(value.strip())
    except ValueError:
        return None


def _octets(kind: str, value: str) -> bytes:
    """The bytes of a pass_persist SET value: ``octet "41 42"`` (hex) or ``string "AB"`` (text)."""
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if kind == "octet":
        return bytes.fromhex(text.replace(" ", ""))
    return text.encode("latin-1", errors="replace")  # snmpd sends a string only if every byte prints


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.strip(".").split("."))


def _next(values: dict[str, tuple[str, str]], oid: str) -> str | None:
    after = _key(oid)
    later = [o for o in values if _key(o) > after]
    return min(later, key=_key) if later else None


def serve(controller: Controller, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
    """The pass_persist loop: one request at a time until snmpd closes our standard input."""

    def say(*lines: str) -> None:
        stdout.write("\n".join(lines) + "\n")
        stdout.flush()

    while True:
        raw = stdin.readline()
        if not raw:
            return
        command = raw.strip()
        if not command:
            continue  # snmpd ends a set with an empty line
        if command == "PING":
            say("PONG")
            continue
        oid = stdin.readline().strip().lstrip(".")
        controller.read_state()
        controller.tick()
        values = controller.objects()
        if command == "get":
            found = values.get(oid)
            say(f".{oid}", *found) if found else say("NONE")
        elif command == "getnext":
            following = _next(values, oid)
            say(f".{following}", *values[following]) if following else say("NONE")
        elif command == "set":
            kind, _, value = stdin.readline().rstrip("\r\n").partition(" ")
            say(controller.set(oid, kind, value) if oid in values else "not-writable")
        else:
            say("NONE")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One NTCIP 1203 sign controller behind snmpd pass_persist.")
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--chars-per-line", type=int, default=12)
    parser.add_argument("--max-pages", type=int, default=4)
    parser.add_argument("--charset", default="gb2312")
    parser.add_argument("--cjk-cells", type=int, default=1, help="cells a wide character takes")
    parser.add_argument("--changeable", type=int, default=4, help="changeable message rows")
    parser.add_argument("--max-multi-length", type=int, default=1024, help="dmsMaxMultiStringLength")
    parser.add_argument("--validate-seconds", type=float, default=1.0, help="time a row stays validating")
    parser.add_argument(
        "--state-file", type=Path, help='JSON {"control": "local"|"central", "clock_offset": s}'
    )
    return parser.parse_args(argv)


def controller_from(args: argparse.Namespace, clock: Callable[[], float] = time.time) -> Controller:
    sign = SignConfig.from_entry(
        {
            "id": "ntcip",
            "lines": args.lines,
            "chars_per_line": args.chars_per_line,
            "max_pages": args.max_pages,
            "charset": args.charset,
            "cjk_cells": args.cjk_cells,
            "driver": "ntcip",
        }
    )
    return Controller(
        sign,
        clock=clock,
        validate_seconds=args.validate_seconds,
        state_file=args.state_file,
        changeable=args.changeable,
        max_multi_length=args.max_multi_length,
    )


def main(argv: list[str] | None = None) -> None:
    serve(controller_from(parse_args(argv)))


if __name__ == "__main__":
    main()
