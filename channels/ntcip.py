"""Driving a dynamic message sign over SNMP with the NTCIP 1203 v03 objects (pysnmp, SNMPv2c).

Objects used (under ``dms`` = 1.3.6.1.4.1.1206.4.2.3), as the MIB names them:

- the message table ``dmsMessageEntry`` (5.8.1): ``dmsMessageMultiString`` (3), ``dmsMessageOwner`` (4),
  ``dmsMessageCRC`` (5), ``dmsMessageRunTimePriority`` (8), ``dmsMessageStatus`` (9);
- ``dmsValidateMessageError`` (5.9.0); ``dmsControlMode`` (6.1.0); ``dmsActivateMessage`` (6.3.0);
  ``dmsMessageTimeRemaining`` (6.4.0); ``dmsMsgTableSource`` (6.5.0); ``dmsMsgRequesterID`` (6.6.0);
  ``dmsMsgSourceMode`` (6.7.0); ``dmsActivateMsgError`` (6.17.0); ``dmsMultiSyntaxError`` (6.18.0);
  ``dmsMultiSyntaxErrorPosition`` (6.19.0);
- the sign's configuration: ``vmsCharacterHeightPixels``/``WidthPixels`` (2.1, 2.2),
  ``vmsSignHeightPixels``/``WidthPixels`` (2.3, 2.4), ``dmsMaxNumberPages`` (4.15),
  ``dmsMaxMultiStringLength`` (4.16), the first font's name and height (``fontName`` 3.2.1.3.1,
  ``fontHeight`` 3.2.1.4.1).

To show a message: check ``dmsControlMode`` (a sign in local control takes nothing from a central
system: a wait, and a channel alert), set the row's status to ``modifyReq``, write the MULTI string
(in the sign's character set), the owner (the delivery's key, so the message can be recognised later)
and the run-time priority, set ``validateReq`` and poll the status while it reads ``validating``
(controllers take their time) until ``valid`` or ``error`` — an error is explained from
``dmsValidateMessageError``, ``dmsMultiSyntaxError`` and its position, and the row is returned to
``notUsed``. Then ``dmsActivateMessage`` with the duration, the priority, the row, its CRC and this
system's address as the source. A refused activation (genErr) is explained by ``dmsActivateMsgError``:
``priority`` (a higher-priority message shows) is a wait for ``dmsMessageTimeRemaining``; ``localMode``
a wait and an alert; the rest are failures.

Each priority class writes its own changeable row (warnings 1, releases 2, safety tips 3), so a
routine message never overwrites the row of a warning that is showing. One SNMP engine and one event
loop serve every sign of a worker process.
"""

from __future__ import annotations

import asyncio
import socket
import time
import weakref
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    get_cmd,
    set_cmd,
)
from pysnmp.proto.rfc1902 import Integer, OctetString

from channels.signs import Sign
from dispatcher.errors import PermanentChannelError, TemporaryChannelError

DMS = "1.3.6.1.4.1.1206.4.2.3"
MESSAGE = f"{DMS}.5.8.1"
VALIDATE_ERROR = f"{DMS}.5.9.0"
CONTROL_MODE = f"{DMS}.6.1.0"
ACTIVATE = f"{DMS}.6.3.0"
TIME_REMAINING = f"{DMS}.6.4.0"
TABLE_SOURCE = f"{DMS}.6.5.0"
REQUESTER = f"{DMS}.6.6.0"
SOURCE_MODE = f"{DMS}.6.7.0"
ACTIVATE_ERROR = f"{DMS}.6.17.0"
SYNTAX_ERROR = f"{DMS}.6.18.0"
SYNTAX_POSITION = f"{DMS}.6.19.0"
CHAR_HEIGHT, CHAR_WIDTH = f"{DMS}.2.1.0", f"{DMS}.2.2.0"
SIGN_HEIGHT, SIGN_WIDTH = f"{DMS}.2.3.0", f"{DMS}.2.4.0"
MAX_PAGES, MAX_MULTI = f"{DMS}.4.15.0", f"{DMS}.4.16.0"
FONT_NAME, FONT_HEIGHT = f"{DMS}.3.2.1.3.1", f"{DMS}.3.2.1.4.1"

CHANGEABLE, BLANK = 3, 7
VALIDATING, VALID, ERROR, MODIFY_REQ, VALIDATE_REQ, NOT_USED_REQ = 3, 4, 5, 6, 7, 8
ROW_FOR_PRIORITY = {200: 1, 100: 2, 50: 3}
CONTROL_MODES = {1: "other", 2: "local", 3: "external", 4: "central", 5: "centralOverride", 6: "simulation"}
ACTIVATE_ERRORS = {
    1: "other",
    3: "priority",
    4: "messageStatus",
    5: "messageMemoryType",
    6: "messageNumber",
    7: "messageCRC",
    8: "syntaxMULTI",
    9: "localMode",
}
VALIDATE_ERRORS = {1: "other", 2: "none", 3: "beacons", 4: "pixelService", 5: "syntaxMULTI"}
SYNTAX_ERRORS = {
    1: "other",
    2: "none",
    3: "unsupportedTag",
    4: "unsupportedTagValue",
    5: "textTooBig",
    6: "fontNotDefined",
    7: "characterNotDefined",
    8: "fieldDeviceNotExist",
    9: "fieldDeviceError",
    10: "flashRegionError",
    11: "tagConflict",
    12: "tooManyPages",
    13: "fontVersionID",
    14: "graphicID",
    15: "graphicNotDefined",
}
# dmsMsgSourceMode: why the current message shows. A blank put up by someone (an operator at the sign,
# a central system) is a withdrawal; one put up by the sign itself (reset, power, lost comms, a
# duration that ran out) is not.
DELIBERATE_SOURCES = {2: "local operator", 3: "external", 8: "a central system"}
INDEFINITE = 0xFFFF
LOCAL_CONTROL_WAIT = 300.0


def _column(column: int, memory: int, number: int) -> str:
    return f"{MESSAGE}.{column}.{memory}.{number}"


class SnmpClient:
    """One SNMP engine and one event loop for a worker process, shared by every sign it drives."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self.engine: SnmpEngine | None = None
        self._own_addresses: dict[tuple[str, int], bytes] = {}
        self._engines: list[SnmpEngine] = []
        # Closed with the adapter, not at each call: the engine's timer task lives on this loop.
        weakref.finalize(self, _shut_down, self.loop, self._engines)

    def call(self, command: Any, community: str, host: str, port: int, *bindings: ObjectType) -> list[Any]:
        return self.loop.run_until_complete(self._call(command, community, host, port, *bindings))

    async def _call(
        self, command: Any, community: str, host: str, port: int, *bindings: ObjectType
    ) -> list[Any]:
        if self.engine is None:
            self.engine = SnmpEngine()
            self._engines.append(self.engine)
        target = await UdpTransportTarget.create((host, port), timeout=self.timeout, retries=1)
        indication, status, index, result = await command(
            self.engine, CommunityData(community, mpModel=1), target, ContextData(), *bindings
        )
        if indication:
            raise TemporaryChannelError(f"{host}:{port} does not answer over SNMP ({indication})")
        if status:
            raise _SnmpError(str(status.prettyPrint()), int(index))
        return [value for _, value in result]

    def source_address(self, host: str, port: int) -> bytes:
        """This system's address as the sign sees it (the activation's source, 4 bytes)."""
        key = (host, port)
        if key not in self._own_addresses:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, port))  # no packet is sent: this only picks the route
                self._own_addresses[key] = socket.inet_aton(probe.getsockname()[0])
        return self._own_addresses[key]

    def close(self) -> None:
        _shut_down(self.loop, self._engines)


def _shut_down(loop: asyncio.AbstractEventLoop, engines: list[SnmpEngine]) -> None:
    if loop.is_closed():
        return
    for engine in engines:
        engine.close_dispatcher()
    pending = asyncio.all_tasks(loop)
    for task in pending:
        task.cancel()
    if pending:
        try:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        except RuntimeError:
            # Collected while another loop runs in this thread: the engine's timer is cancelled and
            # cannot run to its end here; it is let go without the "destroyed pending" warning.
            for task in pending:
                task._log_destroy_pending = False  # type: ignore[attr-defined]
    loop.close()


class NtcipSign:
    """One sign controller at ``host:port``, spoken to with the given communities."""

    def __init__(
        self,
        sign: Sign,
        client: SnmpClient,
        *,
        read_community: str,
        write_community: str,
        validate_timeout: float = 10.0,
    ) -> None:
        host, _, port = sign.address.removeprefix("udp://").partition(":")
        self.sign = sign
        self.client = client
        self.host, self.port = host, int(port or 161)
        self.read, self.write = read_community, write_community
        self.validate_timeout = validate_timeout

    def get(self, *oids: str) -> list[Any]:
        try:
            return self.client.call(
                get_cmd, self.read, self.host, self.port, *(ObjectType(ObjectIdentity(o)) for o in oids)
            )
        except TemporaryChannelError as exc:
            raise TemporaryChannelError(f"display: sign {self.sign.id}: {exc}") from exc

    def set(self, *pairs: tuple[str, Any]) -> None:
        bindings = [ObjectType(ObjectIdentity(oid), value) for oid, value in pairs]
        try:
            self.client.call(set_cmd, self.write, self.host, self.port, *bindings)
        except TemporaryChannelError as exc:
            raise TemporaryChannelError(f"display: sign {self.sign.id}: {exc}") from exc

    # -- the driver's verbs -----------------------------------------------------------------------

    def control_mode(self) -> str:
        return CONTROL_MODES.get(int(self.get(CONTROL_MODE)[0]), "other")

    def activate(self, multi: str, priority: int, duration_minutes: int, key: str) -> None:
        if self.control_mode() == "local":
            raise self._local_control()
        number = ROW_FOR_PRIORITY.get(priority, 3)
        status = _column(9, CHANGEABLE, number)
        try:
            self.set((status, Integer(MODIFY_REQ)))
            self.set(
                (_column(3, CHANGEABLE, number), OctetString(multi.encode(self.sign.charset))),
                (_column(4, CHANGEABLE, number), OctetString(key.encode())),
                (_column(8, CHANGEABLE, number), Integer(priority)),
            )
            self.set((status, Integer(VALIDATE_REQ)))
        except _SnmpError as exc:
            if self.control_mode() == "local":  # switched to local between the check and the write
                raise self._local_control() from exc
            raise PermanentChannelError(
                f"display: sign {self.sign.id} refused the message row: {exc}"
            ) from exc
        row_status = self._validated(status)
        if row_status == ERROR:
            reason = self._validation_error()
            self.set((status, Integer(NOT_USED_REQ)))  # leave no half-made message behind
            raise PermanentChannelError(
                f"display: sign {self.sign.id} refused the message: {reason}", code="syntaxMULTI"
            )
        crc = int(self.get(_column(5, CHANGEABLE, number))[0])
        code = (
            min(duration_minutes, INDEFINITE - 1).to_bytes(2, "big")
            + bytes([priority, CHANGEABLE])
            + number.to_bytes(2, "big")
            + crc.to_bytes(2, "big")
            + self.client.source_address(self.host, self.port)
        )
        try:
            self.set((ACTIVATE, OctetString(code)))
        except _SnmpError as exc:
            raise self._activation_refused() from exc

    def _validated(self, status: str) -> int:
        """Poll the row's status while the controller validates it; give up after ``validate_timeout``."""
        deadline = time.monotonic() + self.validate_timeout
        while True:
            value = int(self.get(status)[0])
            if value in (VALID, ERROR):  # validating, or a controller still at validateReq: not yet
                return value
            if time.monotonic() > deadline:
                raise TemporaryChannelError(
                    f"display: sign {self.sign.id} still validating after {self.validate_timeout:.0f}s"
                )
            time.sleep(0.2)

    def _validation_error(self) -> str:
        validate, syntax, position = self.get(VALIDATE_ERROR, SYNTAX_ERROR, SYNTAX_POSITION)
        reason = VALIDATE_ERRORS.get(int(validate), f"error {int(validate)}")
        if reason == "syntaxMULTI":
            detail = SYNTAX_ERRORS.get(int(syntax), f"error {int(syntax)}")
            reason += f" ({detail} at character {int(position)} of the MULTI string)"
        return reason

    def _activation_refused(self) -> Exception:
        reason = ACTIVATE_ERRORS.get(int(self.get(ACTIVATE_ERROR)[0]), "other")
        message = f"display: sign {self.sign.id} refused the activation: {reason}"
        if reason == "priority":
            minutes = int(self.get(TIME_REMAINING)[0])
            wait = LOCAL_CONTROL_WAIT if minutes >= INDEFINITE else max(60.0, minutes * 60.0)
            return TemporaryChannelError(
                f"{message} (a message of higher priority shows for {minutes} more minute(s))",
                code="preempted",
                retry_after=wait,
                wait=True,
            )
        if reason == "localMode":
            return self._local_control()
        if reason == "syntaxMULTI":
            return PermanentChannelError(f"{message}: {self._validation_error()}", code=reason)
        return PermanentChannelError(message, code=reason)

    def _local_control(self) -> TemporaryChannelError:
        return TemporaryChannelError(
            f"display: sign {self.sign.id} is in local control; the message waits for central control",
            code="local_control",
            retry_after=LOCAL_CONTROL_WAIT,
            wait=True,
            alert=True,
        )

    def showing(self) -> dict[str, Any] | None:
        """What the sign shows: ``id``, ``multi``, ``priority``; a deliberate blank says who did it
        (``blanked_by``); a sign the sign itself blanked (reset, power, end of duration) is None."""
        source = bytes(self.get(TABLE_SOURCE)[0])
        memory, number = source[0], int.from_bytes(source[1:3], "big")
        if memory == BLANK:
            mode, requester = self.get(SOURCE_MODE, REQUESTER)
            who = DELIBERATE_SOURCES.get(int(mode))
            if who is None:
                return None
            address = socket.inet_ntoa(bytes(requester)) if len(bytes(requester)) == 4 else "?"
            return {"id": None, "multi": "", "priority": 0, "blanked_by": f"{who} {address}"}
        multi, owner, priority = self.get(
            _column(3, memory, number), _column(4, memory, number), _column(8, memory, number)
        )
        return {
            "id": bytes(owner).decode(errors="replace"),
            "multi": bytes(multi).decode(self.sign.charset, errors="replace"),
            "priority": int(priority),
        }

    def holds(self, key: str, priority: int) -> bool:
        """Whether the row of this priority class holds the message with this key (its owner)."""
        number = ROW_FOR_PRIORITY.get(priority, 3)
        owner, status = self.get(_column(4, CHANGEABLE, number), _column(9, CHANGEABLE, number))
        return int(status) == VALID and bytes(owner).decode(errors="replace") == key

    def clear(self, key: str) -> None:
        shown = self.showing()
        if shown and shown["id"] == key:
            self.blank()

    def blank(self) -> None:
        if self.control_mode() == "local":
            raise self._local_control()
        code = (
            bytes([0xFF, 0xFF, 255, BLANK])
            + (1).to_bytes(2, "big")
            + (0).to_bytes(2, "big")  # the blank messages' CRC is 0 (NTCIP 1203, dmsMessageCRC)
            + self.client.source_address(self.host, self.port)
        )
        try:
            self.set((ACTIVATE, OctetString(code)))
        except _SnmpError as exc:
            raise self._activation_refused() from exc

    def configuration(self) -> dict[str, Any]:
        """The sign's own account of its size, pages, font and control mode."""
        oids = (CHAR_HEIGHT, CHAR_WIDTH, SIGN_HEIGHT, SIGN_WIDTH, MAX_PAGES, MAX_MULTI, CONTROL_MODE)
        char_h, char_w, sign_h, sign_w, pages, longest, mode = (int(v) for v in self.get(*oids))
        font, font_height = self.get(FONT_NAME, FONT_HEIGHT)
        line_height = char_h or int(font_height)
        return {
            "lines": sign_h // line_height if line_height else None,
            # a line-matrix or full-matrix sign (character width 0) sets text by its font's widths
            "chars_per_line": sign_w // char_w if char_w else None,
            "max_pages": pages,
            "max_multi_length": longest,
            "font": bytes(font).decode(errors="replace"),
            "control": CONTROL_MODES.get(mode, "other"),
        }


class _SnmpError(Exception):
    def __init__(self, status: str, index: int) -> None:
        super().__init__(f"{status} (binding {index})")
        self.status = status
