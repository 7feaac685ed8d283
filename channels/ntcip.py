"""Driving a dynamic message sign over SNMP with the NTCIP 1203 objects (pysnmp, SNMPv2c).

To show a message: set the row's ``dmsMessageStatus`` to ``modifyReq``, write ``dmsMessageMultiString``
(in the sign's character set), ``dmsMessageOwner`` (the delivery's key, so the message can be
recognised later) and ``dmsMessageRunTimePriority``, set ``validateReq`` and read the status back
(``valid``, or ``error`` for a MULTI the sign refuses), read ``dmsMessageCRC``, then set
``dmsActivateMessage`` with the duration, the priority, the row and its CRC. A refused activation
is explained by ``dmsActivateMsgError``: ``priority`` (a higher-priority message is showing) is a
wait, the rest are failures. ``dmsMsgTableSource`` tells which row is showing.

Each priority class writes its own changeable row (warnings 1, releases 2, safety tips 3), so a
routine message never overwrites the row of a warning that is showing.
"""

from __future__ import annotations

import asyncio
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

from channels.display import Sign
from dispatcher.errors import ContentError, PermanentChannelError, TemporaryChannelError

DMS = "1.3.6.1.4.1.1206.4.2.3"
MESSAGE = f"{DMS}.5.8.1"
ACTIVATE = f"{DMS}.6.3.0"
TABLE_SOURCE = f"{DMS}.6.5.0"
ACTIVATE_ERROR = f"{DMS}.6.17.0"
CHANGEABLE, BLANK = 3, 7
VALID, ERROR, MODIFY_REQ, VALIDATE_REQ = 4, 5, 6, 7
ROW_FOR_PRIORITY = {200: 1, 100: 2, 50: 3}
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
UNTIL_REPLACED = 0xFFFF


def _column(column: int, memory: int, number: int) -> str:
    return f"{MESSAGE}.{column}.{memory}.{number}"


class NtcipSign:
    """One sign controller at ``host:port``, spoken to with the given communities."""

    def __init__(self, sign: Sign, *, read_community: str, write_community: str, timeout: float) -> None:
        host, _, port = sign.address.removeprefix("udp://").partition(":")
        self.sign = sign
        self.host, self.port = host, int(port or 161)
        self.read, self.write = read_community, write_community
        self.timeout = timeout

    async def _call(self, command: Any, community: str, *bindings: ObjectType) -> list[Any]:
        engine = SnmpEngine()
        try:
            target = await UdpTransportTarget.create((self.host, self.port), timeout=self.timeout, retries=1)
            indication, status, index, result = await command(
                engine, CommunityData(community, mpModel=1), target, ContextData(), *bindings
            )
        finally:
            engine.close_dispatcher()
        if indication:
            raise TemporaryChannelError(
                f"display: sign {self.sign.id} does not answer over SNMP ({indication})"
            )
        if status:
            raise _SnmpError(str(status.prettyPrint()), int(index))
        return [value for _, value in result]

    def get(self, *oids: str) -> list[Any]:
        return asyncio.run(self._call(get_cmd, self.read, *(ObjectType(ObjectIdentity(o)) for o in oids)))

    def set(self, *pairs: tuple[str, Any]) -> None:
        bindings = [ObjectType(ObjectIdentity(oid), value) for oid, value in pairs]
        asyncio.run(self._call(set_cmd, self.write, *bindings))

    # -- the driver's verbs -----------------------------------------------------------------------

    def activate(self, multi: str, priority: int, duration_minutes: int, key: str) -> None:
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
            raise PermanentChannelError(
                f"display: sign {self.sign.id} refused the message row: {exc}"
            ) from exc
        row_status, crc = self.get(status, _column(5, CHANGEABLE, number))
        if int(row_status) != VALID:
            raise ContentError(f"display: sign {self.sign.id} found the MULTI string invalid")
        code = (
            min(duration_minutes, UNTIL_REPLACED - 1).to_bytes(2, "big")
            + bytes([priority, CHANGEABLE])
            + number.to_bytes(2, "big")
            + int(crc).to_bytes(2, "big")
            + bytes(4)
        )
        try:
            self.set((ACTIVATE, OctetString(code)))
        except _SnmpError as exc:
            reason = ACTIVATE_ERRORS.get(int(self.get(ACTIVATE_ERROR)[0]), "other")
            message = f"display: sign {self.sign.id} refused the activation: {reason}"
            if reason == "priority":
                raise TemporaryChannelError(message, code="preempted") from exc
            raise PermanentChannelError(message, code=reason) from exc

    def showing(self) -> dict[str, Any] | None:
        source = bytes(self.get(TABLE_SOURCE)[0])
        memory, number = source[0], int.from_bytes(source[1:3], "big")
        if memory == BLANK:
            return None
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

    def blank(self) -> None:
        crc = int(self.get(_column(5, BLANK, 1))[0])
        code = bytes([0xFF, 0xFF, 255, BLANK]) + (1).to_bytes(2, "big") + crc.to_bytes(2, "big") + bytes(4)
        self.set((ACTIVATE, OctetString(code)))


class _SnmpError(Exception):
    def __init__(self, status: str, index: int) -> None:
        super().__init__(f"{status} (binding {index})")
        self.status = status
