"""The NTCIP sign emulator's own rules, driven through the pass_persist protocol on pipes."""

from __future__ import annotations

import io

from channels.display import Sign
from sandbox.ntcip_agent import (
    ACTIVATE,
    ACTIVATE_ERROR,
    MESSAGE,
    TABLE_SOURCE,
    Controller,
    crc16,
    message_crc,
    serve,
)

SIGN = Sign(id="s", area="110105", lines=2, chars_per_line=6, max_pages=2, address="s")


def talk(controller: Controller, *lines: str) -> list[str]:
    out = io.StringIO()
    serve(controller, io.StringIO("\n".join(lines) + "\n"), out)
    return out.getvalue().splitlines()


def test_crc16_is_the_iso_3309_one() -> None:
    assert crc16(b"123456789") == 0x906E  # the CRC-16/X-25 check value


def write_row(controller: Controller, number: int, multi: bytes, priority: int) -> str:
    talk(controller, "set", f".{MESSAGE}.9.3.{number}", "integer 6")
    talk(controller, "set", f".{MESSAGE}.3.3.{number}", f'octet "{multi.hex(" ")}"', "")
    talk(controller, "set", f".{MESSAGE}.8.3.{number}", f"integer {priority}")
    talk(controller, "set", f".{MESSAGE}.9.3.{number}", "integer 7")
    return talk(controller, "get", f".{MESSAGE}.9.3.{number}")[2]


def activation(priority: int, number: int, crc: int, minutes: int = 10) -> str:
    code = (
        minutes.to_bytes(2, "big")
        + bytes([priority, 3])
        + number.to_bytes(2, "big")
        + crc.to_bytes(2, "big")
        + bytes(4)
    )
    return f'octet "{code.hex(" ")}"'


def test_a_row_is_validated_then_activated_and_reported_as_the_source() -> None:
    controller = Controller(SIGN)
    assert talk(controller, "PING") == ["PONG"]
    assert write_row(controller, 1, "暴雨[nl]预警".encode("gb2312"), 200) == "4"  # valid
    crc = message_crc("暴雨[nl]预警".encode("gb2312"))
    assert talk(controller, "set", f".{ACTIVATE}", activation(200, 1, crc)) == ["DONE"]
    source = talk(controller, "get", f".{TABLE_SOURCE}")[2]
    assert bytes.fromhex(source.replace(" ", "")) == bytes([3, 0, 1]) + crc.to_bytes(2, "big")


def test_refusals_say_why_in_the_activation_error() -> None:
    controller = Controller(SIGN)
    assert write_row(controller, 3, "太长的一行文字内容".encode("gb2312"), 50) == "5"  # wider than 6
    write_row(controller, 1, b"ALERT", 200)
    crc = message_crc(b"ALERT")
    assert talk(controller, "set", f".{ACTIVATE}", activation(200, 1, crc ^ 1)) == ["commit-failed"]
    assert talk(controller, "get", f".{ACTIVATE_ERROR}")[2] == "7"  # messageCRC
    talk(controller, "set", f".{ACTIVATE}", activation(200, 1, crc))
    write_row(controller, 2, b"TIP", 50)
    assert talk(controller, "set", f".{ACTIVATE}", activation(50, 2, message_crc(b"TIP"))) == [
        "commit-failed"
    ]
    assert talk(controller, "get", f".{ACTIVATE_ERROR}")[2] == "3"  # priority


def test_an_activation_ends_with_its_duration() -> None:
    now = [1000.0]
    controller = Controller(SIGN, clock=lambda: now[0])
    write_row(controller, 1, b"ALERT", 200)
    talk(controller, "set", f".{ACTIVATE}", activation(200, 1, message_crc(b"ALERT"), minutes=1))
    now[0] += 61
    assert talk(controller, "get", f".{TABLE_SOURCE}")[2].startswith("07")  # blank again


def test_rows_are_written_only_while_modifying_and_getnext_walks() -> None:
    controller = Controller(SIGN)
    assert talk(controller, "set", f".{MESSAGE}.3.3.1", 'octet "41"') == ["inconsistent-value"]
    assert talk(controller, "getnext", f".{MESSAGE}.1.3.1")[0] == f".{MESSAGE}.1.3.2"
