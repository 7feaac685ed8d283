"""A dynamic message sign's NTCIP 1203 objects, served through Net-SNMP's ``pass_persist`` protocol.

Run by a real ``snmpd`` (Debian's ``snmpd``), which speaks SNMP on the network and hands every request
under the DMS subtree (``1.3.6.1.4.1.1206.4.2.3``) to this process over standard input and output:
``PING`` → ``PONG``; ``get``/``getnext`` + OID → OID, type, value (or ``NONE``); ``set`` + OID + "type
value" → ``DONE`` or an error word. One process plays one sign controller:

- ``dmsMessageTable`` (``dms.5.8.1.<column>.<memory type>.<number>``): changeable messages 1–4 and the
  blank message. A row is edited by setting ``dmsMessageStatus`` to ``modifyReq``, writing the MULTI
  string, owner and run-time priority, then ``validateReq``: the controller checks the MULTI (tags,
  lines, width, pages, character set) and the row becomes ``valid`` with its CRC, or ``error``.
- ``dmsActivateMessage`` (``dms.6.3.0``): duration (2 bytes, minutes, 65535 = until replaced),
  activation priority (1), memory type (1), message number (2), CRC (2), source address (4). A message
  whose activation priority is below the run-time priority of the one showing is refused, as are an
  invalid row or a wrong CRC; the reason is in ``dmsActivateMsgError`` (``dms.6.17.0``).
- ``dmsMsgTableSource`` (``dms.6.5.0``): memory type, number and CRC of the message showing; the blank
  message when nothing is (or the activation's duration ran out).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from channels.display import Sign
from sandbox.signs import parse_multi

DMS = "1.3.6.1.4.1.1206.4.2.3"
MESSAGE = f"{DMS}.5.8.1"
ACTIVATE = f"{DMS}.6.3.0"
TABLE_SOURCE = f"{DMS}.6.5.0"
ACTIVATE_ERROR = f"{DMS}.6.17.0"
CHANGEABLE, BLANK = 3, 7
NOT_USED, MODIFYING, VALID, ERROR, MODIFY_REQ, VALIDATE_REQ, NOT_USED_REQ = 1, 2, 4, 5, 6, 7, 8
# dmsActivateMsgError values
ERR_OTHER, ERR_NONE, ERR_PRIORITY, ERR_STATUS, ERR_MEMORY, ERR_NUMBER, ERR_CRC = 1, 2, 3, 4, 5, 6, 7


def crc16(data: bytes) -> int:
    """CRC-16 of ISO/IEC 3309 (X.25: polynomial 0x1021 reflected, seed and final XOR 0xFFFF)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def message_crc(multi: bytes, beacon: int = 0, pixel_service: int = 0) -> int:
    """dmsMessageCRC: over the MULTI string, the beacon and the pixel service bytes (NTCIP 1203)."""
    return crc16(multi + bytes([beacon, pixel_service]))


@dataclass
class Row:
    multi: bytes = b""
    owner: bytes = b""
    priority: int = 1
    status: int = NOT_USED
    crc: int = 0


class Controller:
    def __init__(self, sign: Sign, clock: Callable[[], float] = time.time) -> None:
        self.sign = sign
        self.clock = clock
        self.rows = {(CHANGEABLE, n): Row() for n in range(1, 5)}
        self.rows[(BLANK, 1)] = Row(status=VALID, crc=message_crc(b""))
        self.showing: tuple[int, int] = (BLANK, 1)
        self.until: float | None = None
        self.activation = bytes(12)
        self.activate_error = ERR_NONE

    # -- values, as (type, text) for pass_persist ----------------------------------------------

    def current(self) -> tuple[int, int]:
        if self.until is not None and self.clock() >= self.until:
            self.showing, self.until = (BLANK, 1), None
        return self.showing

    def objects(self) -> dict[str, tuple[str, str]]:
        values: dict[str, tuple[str, str]] = {}
        for (memory, number), row in self.rows.items():
            index = f"{memory}.{number}"
            values[f"{MESSAGE}.1.{index}"] = ("integer", str(memory))
            values[f"{MESSAGE}.2.{index}"] = ("integer", str(number))
            values[f"{MESSAGE}.3.{index}"] = ("octet", row.multi.hex(" "))
            values[f"{MESSAGE}.4.{index}"] = ("octet", row.owner.hex(" "))
            values[f"{MESSAGE}.5.{index}"] = ("integer", str(row.crc))
            values[f"{MESSAGE}.6.{index}"] = ("integer", "0")
            values[f"{MESSAGE}.7.{index}"] = ("integer", "0")
            values[f"{MESSAGE}.8.{index}"] = ("integer", str(row.priority))
            values[f"{MESSAGE}.9.{index}"] = ("integer", str(row.status))
        memory, number = self.current()
        source = (
            bytes([memory]) + number.to_bytes(2, "big") + self.rows[(memory, number)].crc.to_bytes(2, "big")
        )
        values[ACTIVATE] = ("octet", self.activation.hex(" "))
        values[TABLE_SOURCE] = ("octet", source.hex(" "))
        values[ACTIVATE_ERROR] = ("integer", str(self.activate_error))
        return values

    # -- writes ---------------------------------------------------------------------------------

    def set(self, oid: str, kind: str, value: str) -> str:
        """Apply one SET; returns DONE or the pass_persist error word."""
        if oid == ACTIVATE:
            return self.activate(_octets(kind, value))
        if not oid.startswith(MESSAGE + "."):
            return "not-writable"
        column, memory, number = (int(part) for part in oid[len(MESSAGE) + 1 :].split("."))
        row = self.rows.get((memory, number))
        if row is None or memory == BLANK:
            return "not-writable"
        if column == 9:
            return self.change_status(row, int(value))
        if row.status != MODIFYING:
            return "inconsistent-value"  # a row is written only between modifyReq and validateReq
        if column == 3:
            row.multi = _octets(kind, value)
        elif column == 4:
            row.owner = _octets(kind, value)
        elif column == 8:
            row.priority = int(value)
        elif column not in (6, 7):
            return "not-writable"
        return "DONE"

    def change_status(self, row: Row, request: int) -> str:
        if request == MODIFY_REQ:
            row.status = MODIFYING
        elif request == VALIDATE_REQ and row.status == MODIFYING:
            row.status = VALID if self.valid(row.multi) else ERROR
            row.crc = message_crc(row.multi)
        elif request == NOT_USED_REQ:
            row.multi, row.owner, row.status, row.crc = b"", b"", NOT_USED, 0
        else:
            return "inconsistent-value"
        return "DONE"

    def valid(self, multi: bytes) -> bool:
        try:
            pages = parse_multi(multi.decode(self.sign.charset))
        except (UnicodeDecodeError, ValueError):
            return False
        if len(pages) > self.sign.max_pages:
            return False
        return all(
            len(page) <= self.sign.lines
            and all(self.sign.width(line) <= self.sign.chars_per_line for line in page)
            for page in pages
        )

    def activate(self, code: bytes) -> str:
        if len(code) != 12:
            return "wrong-length"
        duration = int.from_bytes(code[0:2], "big")
        priority, memory = code[2], code[3]
        number, crc = int.from_bytes(code[4:6], "big"), int.from_bytes(code[6:8], "big")
        row = self.rows.get((memory, number))
        shown = self.rows[self.current()]
        error = ERR_NONE
        if row is None:
            error = ERR_NUMBER if memory in (CHANGEABLE, BLANK) else ERR_MEMORY
        elif row.status != VALID:
            error = ERR_STATUS
        elif row.crc != crc:
            error = ERR_CRC
        elif memory != BLANK and self.current()[0] != BLANK and priority < shown.priority:
            error = ERR_PRIORITY
        self.activate_error = error
        if error != ERR_NONE:
            return "commit-failed"
        self.activation = code
        self.showing = (memory, number)
        self.until = None if duration == 0xFFFF or memory == BLANK else self.clock() + duration * 60
        return "DONE"


def _octets(kind: str, value: str) -> bytes:
    text = value.strip().strip('"')
    if kind == "octet":
        return bytes.fromhex(text.replace(" ", ""))
    return text.encode()


def _next(values: dict[str, tuple[str, str]], oid: str) -> str | None:
    def key(o: str) -> tuple[int, ...]:
        return tuple(int(p) for p in o.strip(".").split("."))

    later = sorted((o for o in values if key(o) > key(oid)), key=key)
    return later[0] if later else None


def serve(controller: Controller, stdin=sys.stdin, stdout=sys.stdout) -> None:  # type: ignore[no-untyped-def]
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
        values = controller.objects()
        if command == "get":
            found = values.get(oid)
            say(f".{oid}", *found) if found else say("NONE")
        elif command == "getnext":
            following = _next(values, oid)
            say(f".{following}", *values[following]) if following else say("NONE")
        elif command == "set":
            kind, _, value = stdin.readline().strip().partition(" ")
            if oid not in values:
                say("not-writable")
            else:
                say(controller.set(oid, kind, value))
        else:
            say("NONE")


def main() -> None:
    parser = argparse.ArgumentParser(description="One NTCIP 1203 sign controller behind snmpd pass_persist.")
    parser.add_argument("--lines", type=int, default=2)
    parser.add_argument("--chars-per-line", type=int, default=12)
    parser.add_argument("--max-pages", type=int, default=4)
    parser.add_argument("--charset", default="gb2312")
    args = parser.parse_args()
    sign = Sign(
        id="snmp",
        area="110105",
        lines=args.lines,
        chars_per_line=args.chars_per_line,
        max_pages=args.max_pages,
        charset=args.charset,
        address="snmp",
    )
    serve(Controller(sign))


if __name__ == "__main__":
    main()
