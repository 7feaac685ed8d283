"""The NTCIP 1203 sign emulator's own rules: the Controller with a fake clock, the pass_persist loop
on in-memory pipes, and the agent as a process on real pipes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.ntcip_agent import (
    ACTIVATE,
    ACTIVATE_ERROR,
    ACTIVATE_ERROR_CODE,
    CONTROL_MODE,
    DMS,
    FONT,
    MESSAGE,
    OTHER_ERROR,
    REQUESTER,
    SHORT_ERROR_STATUS,
    SOURCE_MODE,
    SYNTAX_ERROR,
    SYNTAX_ERROR_POSITION,
    TABLE_SOURCE,
    TIME_REMAINING,
    VALIDATE_ERROR,
    Controller,
    crc16,
    message_crc,
    serve,
)
from sandbox.signs import SignConfig

SIGN = SignConfig(id="s", lines=2, chars_per_line=6, max_pages=2)
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def controller(clock: Clock | None = None, **options: object) -> Controller:
    return Controller(SIGN, clock=clock or Clock(), **options)  # type: ignore[arg-type]


def talk(agent: Controller, *lines: str) -> list[str]:
    out = io.StringIO()
    serve(agent, io.StringIO("\n".join(lines) + "\n"), out)
    return out.getvalue().splitlines()


def get(agent: Controller, oid: str) -> str:
    answer = talk(agent, "get", f".{oid}")
    assert answer[0] == f".{oid}", answer
    return answer[2]


def octets(agent: Controller, oid: str) -> bytes:
    return bytes.fromhex(get(agent, oid).replace(" ", ""))


def setting(agent: Controller, oid: str, value: str) -> str:
    return talk(agent, "set", f".{oid}", value, "")[0]


def write_row(agent: Controller, number: int, multi: bytes, priority: int = 200, beacon: int = 0) -> str:
    """modifyReq, the columns, validateReq; the status right after (validating unless instant)."""
    assert setting(agent, f"{MESSAGE}.9.3.{number}", "integer 6") == "DONE"
    assert setting(agent, f"{MESSAGE}.3.3.{number}", f'octet "{multi.hex(" ")}"') == "DONE"
    assert setting(agent, f"{MESSAGE}.8.3.{number}", f"integer {priority}") == "DONE"
    assert setting(agent, f"{MESSAGE}.6.3.{number}", f"integer {beacon}") == "DONE"
    assert setting(agent, f"{MESSAGE}.9.3.{number}", "integer 7") == "DONE"
    return get(agent, f"{MESSAGE}.9.3.{number}")


def valid_row(agent: Controller, number: int, multi: bytes, priority: int = 200) -> int:
    agent.validate_seconds = 0
    assert write_row(agent, number, multi, priority) == "4"
    return int(get(agent, f"{MESSAGE}.5.3.{number}"))


def activation(priority: int, number: int, crc: int, minutes: int = 10, memory: int = 3) -> str:
    code = (
        minutes.to_bytes(2, "big")
        + bytes([priority, memory])
        + number.to_bytes(2, "big")
        + crc.to_bytes(2, "big")
        + bytes([10, 1, 2, 3])
    )
    return f'octet "{code.hex(" ")}"'


def test_crc16_is_the_iso_3309_one() -> None:
    assert crc16(b"123456789") == 0x906E  # the CRC-16/X-25 check value


def test_the_message_crc_is_the_one_of_the_standards_example() -> None:
    # NTCIP 1203 MessageActivationCode: '[jp3]TEST [fl]Flashing[/fl]', no beacon, no pixel service,
    # has the message ID code '04 00 05 95 F9'.
    assert message_crc(b"[jp3]TEST [fl]Flashing[/fl]").to_bytes(2, "big") == bytes.fromhex("95f9")


def test_a_row_validates_for_a_while_then_is_valid_with_its_crc() -> None:
    clock = Clock()
    agent = controller(clock, validate_seconds=1.0)
    assert talk(agent, "PING") == ["PONG"]
    multi = "暴雨[nl]预警".encode("gb2312")
    assert write_row(agent, 1, multi) == "3"  # validating
    assert int(get(agent, f"{MESSAGE}.5.3.1")) == message_crc(multi)
    clock.now += 1.0
    assert get(agent, f"{MESSAGE}.9.3.1") == "4"  # valid
    assert get(agent, VALIDATE_ERROR) == "2"  # none
    assert get(agent, SYNTAX_ERROR) == "2"


@pytest.mark.parametrize(
    ("multi", "syntax_error", "position"),
    [
        (b"[xx]AB", 3, 0),  # unsupportedTag
        (b"AB[jl9]", 4, 2),  # unsupportedTagValue
        ("太长的一行文字内容".encode("gb2312"), 5, 6),  # textTooBig: the 7th character overflows 6 cells
        (b"A[nl]B[nl]C", 5, 6),  # textTooBig: a third line
        (b"[fo3]A", 6, 0),  # fontNotDefined
        ("雨".encode("gb2312") + "雨".encode(), 7, 1),  # characterNotDefined: UTF-8 is not GB2312
        (b"A[np]B[np]C", 12, 6),  # tooManyPages
        (b"[fo1,0000]A", 13, 0),  # fontVersionID
        (b"A]B", 1, 1),  # other, with a description
    ],
)
def test_a_bad_multi_ends_in_error_saying_what_and_where(
    multi: bytes, syntax_error: int, position: int
) -> None:
    agent = controller()
    agent.validate_seconds = 0
    assert write_row(agent, 2, multi) == "5"  # error
    assert get(agent, VALIDATE_ERROR) == "5"  # syntaxMULTI
    assert (get(agent, SYNTAX_ERROR), get(agent, SYNTAX_ERROR_POSITION)) == (str(syntax_error), str(position))
    assert (get(agent, OTHER_ERROR) != "") == (syntax_error == 1)
    assert int(get(agent, f"{MESSAGE}.5.3.2")) == message_crc(multi)  # the CRC is computed all the same


def test_a_beacon_is_refused_by_a_sign_without_beacons() -> None:
    agent = controller(validate_seconds=0)
    assert write_row(agent, 1, b"AB", beacon=1) == "5"
    assert get(agent, VALIDATE_ERROR) == "3"  # beacons
    assert get(agent, f"{DMS}.1.8.0") == "2"  # dmsBeaconType: none


def test_the_row_state_machine() -> None:
    clock = Clock()
    agent = controller(clock)
    row = f"{MESSAGE}.9.3.1"
    assert setting(agent, f"{MESSAGE}.3.3.1", 'octet "41"') == "inconsistent-value"  # not modifying
    assert setting(agent, row, "integer 7") == "inconsistent-value"  # validateReq needs modifying
    assert setting(agent, row, "integer 4") == "wrong-value"  # a state is not a request
    assert setting(agent, row, "string 6") == "wrong-type"
    write_row(agent, 1, b"AB")
    assert setting(agent, row, "integer 6") == "inconsistent-value"  # not while validating
    clock.now += 2
    assert setting(agent, f"{MESSAGE}.3.3.1", 'octet "43"') == "inconsistent-value"  # valid: frozen
    assert setting(agent, row, "integer 8") == "DONE"  # notUsedReq
    assert (get(agent, row), get(agent, f"{MESSAGE}.3.3.1"), get(agent, f"{MESSAGE}.5.3.1")) == ("1", "", "0")


@pytest.mark.parametrize(
    ("column", "value", "answer"),
    [
        (3, 'octet "' + "41 " * 1025 + '"', "wrong-length"),  # beyond dmsMaxMultiStringLength
        (3, 'octet "41 00 42"', "wrong-value"),  # no null character in MULTI
        (3, "integer 5", "wrong-type"),
        (3, 'string "ALERT"', "DONE"),
        (4, 'string "press office"', "DONE"),
        (6, "integer 2", "wrong-value"),
        (7, "integer 1", "DONE"),
        (8, "integer 0", "wrong-value"),
        (8, "integer 256", "wrong-value"),
        (5, "integer 1", "not-writable"),
    ],
)
def test_columns_are_checked_as_they_are_written(column: int, value: str, answer: str) -> None:
    agent = controller()
    setting(agent, f"{MESSAGE}.9.3.1", "integer 6")
    assert setting(agent, f"{MESSAGE}.{column}.3.1", value) == answer


def test_blank_and_current_buffer_rows_are_not_written() -> None:
    agent = controller()
    assert setting(agent, f"{MESSAGE}.3.7.1", 'octet "41"') == "gen-error"
    assert setting(agent, f"{MESSAGE}.9.5.1", "integer 6") == "gen-error"
    assert (get(agent, f"{MESSAGE}.5.7.9"), get(agent, f"{MESSAGE}.8.7.9")) == ("0", "9")  # CRC 0, priority N


def test_an_activation_is_reported_as_the_source_with_its_state() -> None:
    clock = Clock()
    agent = controller(clock)
    multi = "暴雨[nl]预警".encode("gb2312")
    crc = valid_row(agent, 1, multi, 200)
    assert get(agent, SOURCE_MODE) == "11"  # reset: nothing activated yet
    assert setting(agent, ACTIVATE, activation(200, 1, crc, minutes=10)) == "DONE"
    assert octets(agent, TABLE_SOURCE) == bytes([3, 0, 1]) + crc.to_bytes(2, "big")
    assert octets(agent, ACTIVATE)[8:] == bytes([10, 1, 2, 3])
    assert talk(agent, "get", f".{REQUESTER}")[1:] == ["ipaddress", "10.1.2.3"]
    assert get(agent, SOURCE_MODE) == "8"  # central
    assert get(agent, TIME_REMAINING) == "10"
    clock.now += 61
    assert get(agent, TIME_REMAINING) == "9"  # rounded up to the next full minute
    # The currentBuffer is a copy: editing the row afterwards changes nothing shown.
    setting(agent, f"{MESSAGE}.9.3.1", "integer 8")
    assert octets(agent, f"{MESSAGE}.3.5.1") == multi
    assert get(agent, f"{MESSAGE}.8.5.1") == "200"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (activation(200, 1, 0x1234), 7),  # messageCRC
        (activation(200, 3, 0), 4),  # messageStatus: row 3 is notUsed
        (activation(200, 9, 0), 6),  # messageNumber: only 4 changeable rows
        (activation(200, 1, 0, memory=2), 6),  # messageNumber: no permanent messages
        (activation(200, 5, 0, memory=4), 5),  # messageMemoryType: no volatile memory
        (activation(200, 1, 0, memory=5), 5),  # messageMemoryType: currentBuffer is no activation
        (activation(200, 1, 0x1234, memory=7), 7),  # a blank message's CRC is 0
    ],
)
def test_refusals_answer_generr_and_say_why(code: str, error: int) -> None:
    agent = controller()
    valid_row(agent, 1, b"ALERT")
    assert setting(agent, ACTIVATE, code) == "gen-error"
    assert get(agent, ACTIVATE_ERROR) == str(error)
    assert octets(agent, ACTIVATE_ERROR_CODE).hex(" ") == code.split('"')[1]
    assert get(agent, SHORT_ERROR_STATUS) == str(1 << 7)  # message error
    assert octets(agent, TABLE_SOURCE)[0] == 7  # still blank


def test_a_lower_priority_is_refused_while_a_higher_one_shows() -> None:
    agent = controller()
    alert = valid_row(agent, 1, b"ALERT", 200)
    tip = valid_row(agent, 2, b"TIP", 50)
    assert setting(agent, ACTIVATE, activation(200, 1, alert)) == "DONE"
    assert setting(agent, ACTIVATE, activation(50, 2, tip)) == "gen-error"
    assert get(agent, ACTIVATE_ERROR) == "3"  # priority
    assert setting(agent, ACTIVATE, activation(100, 10, 0, memory=7)) == "gen-error"  # blanking too
    assert get(agent, TIME_REMAINING) == "10"  # what shows, and for how long, is readable
    assert setting(agent, ACTIVATE, activation(200, 2, tip)) == "DONE"  # activation ≥ run-time
    assert (get(agent, ACTIVATE_ERROR), get(agent, SHORT_ERROR_STATUS)) == ("2", "0")
    assert setting(agent, ACTIVATE, activation(60, 60, 0, memory=7)) == "DONE"  # blank 60 over TIP (50)
    assert octets(agent, TABLE_SOURCE) == bytes([7, 0, 60, 0, 0])


def test_a_message_blanks_itself_when_its_duration_runs_out() -> None:
    clock = Clock()
    agent = controller(clock)
    crc = valid_row(agent, 1, b"ALERT")
    setting(agent, ACTIVATE, activation(200, 1, crc, minutes=1))
    clock.now += 59
    assert octets(agent, TABLE_SOURCE)[0] == 3
    clock.now += 1
    assert octets(agent, TABLE_SOURCE) == bytes([7, 0, 1, 0, 0])  # dmsEndDurationMessage: blank 1
    assert get(agent, SOURCE_MODE) == "14"  # endDuration
    assert get(agent, TIME_REMAINING) == "65535"
    # An internal activation: indefinite, priority 255, from 127.0.0.1 (NTCIP 1203 5.7.3).
    assert octets(agent, ACTIVATE) == bytes.fromhex("ffff ff 07 0001 0000 7f000001")


def test_an_indefinite_message_stays_and_time_remaining_can_be_set() -> None:
    clock = Clock()
    agent = controller(clock)
    crc = valid_row(agent, 1, b"ALERT")
    setting(agent, ACTIVATE, activation(200, 1, crc, minutes=65535))
    clock.now += 86400 * 30
    assert (octets(agent, TABLE_SOURCE)[0], get(agent, TIME_REMAINING)) == (3, "65535")
    assert setting(agent, TIME_REMAINING, "integer 5") == "DONE"
    assert get(agent, TIME_REMAINING) == "5"
    assert setting(agent, TIME_REMAINING, "integer 0") == "DONE"  # ends it at once
    assert octets(agent, TABLE_SOURCE)[0] == 7


def test_local_control_comes_from_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "sign.json"
    agent = controller(state_file=state)
    crc = valid_row(agent, 1, b"ALERT")
    assert get(agent, CONTROL_MODE) == "4"  # central: no file yet
    state.write_text(json.dumps({"control": "local"}), encoding="utf-8")
    assert get(agent, CONTROL_MODE) == "2"
    assert setting(agent, ACTIVATE, activation(200, 1, crc)) == "gen-error"
    assert get(agent, ACTIVATE_ERROR) == "9"  # localMode
    assert setting(agent, f"{MESSAGE}.9.3.2", "integer 6") == "gen-error"  # no editing either
    assert setting(agent, CONTROL_MODE, "integer 4") == "inconsistent-value"
    assert setting(agent, CONTROL_MODE, "integer 5") == "DONE"  # centralOverride
    assert setting(agent, ACTIVATE, activation(200, 1, crc)) == "DONE"
    state.write_text(json.dumps({"control": "central"}), encoding="utf-8")
    assert get(agent, CONTROL_MODE) == "4"
    state.write_text("{not json", encoding="utf-8")
    assert get(agent, CONTROL_MODE) == "4"  # a half-written file keeps the last values


def test_the_state_file_moves_the_clock(tmp_path: Path) -> None:
    state = tmp_path / "sign.json"
    agent = controller(state_file=state, validate_seconds=30.0)
    write_row(agent, 1, b"ALERT")
    state.write_text(json.dumps({"clock_offset": 30}), encoding="utf-8")
    assert get(agent, f"{MESSAGE}.9.3.1") == "4"
    crc = int(get(agent, f"{MESSAGE}.5.3.1"))
    setting(agent, ACTIVATE, activation(200, 1, crc, minutes=2))
    state.write_text(json.dumps({"clock_offset": 30 + 120}), encoding="utf-8")
    assert octets(agent, TABLE_SOURCE)[0] == 7


@pytest.mark.parametrize(
    ("sign", "values"),
    [
        (
            SignConfig(id="a", lines=2, chars_per_line=12, max_pages=4),
            {"1.2": "4", "2.1": "16", "2.2": "16", "2.3": "32", "2.4": "192", "4.10": "1", "4.15": "4"},
        ),
        (
            SignConfig(id="b", lines=3, chars_per_line=16, max_pages=6, cjk_cells=2),
            {"1.2": "5", "2.1": "16", "2.2": "0", "2.3": "48", "2.4": "128", "4.10": "1", "4.15": "6"},
        ),
        (
            SignConfig(id="c", lines=1, chars_per_line=10, max_pages=1, charset="latin-1"),
            {"1.2": "4", "2.2": "16", "2.4": "160", "4.10": "2", "4.15": "1"},
        ),
    ],
)
def test_the_configuration_is_read_as_a_central_system_reads_it(
    sign: SignConfig, values: dict[str, str]
) -> None:
    agent = Controller(sign, clock=Clock())
    assert {key: get(agent, f"{DMS}.{key}.0") for key in values} == values
    assert talk(agent, "get", f".{FONT}.3.1")[1:] == ["string", f"{sign.charset.upper()} 16"]


def test_the_font_and_tags_are_described() -> None:
    agent = controller()
    assert get(agent, f"{DMS}.3.3.0") == "7540"  # maxFontCharacters: GB2312 and printable ASCII
    assert get(agent, f"{DMS}.4.16.0") == "1024"
    tags = int.from_bytes(octets(agent, f"{DMS}.4.14.0"), "little")
    assert [bit for bit in range(32) if tags >> bit & 1] == [1, 2, 3, 6, 7, 10, 11, 12, 13]
    version = int(get(agent, f"{FONT}.7.1"))
    agent.validate_seconds = 0
    assert write_row(agent, 1, f"[fo1,{version:04x}]AB".encode()) == "4"


def test_getnext_walks_the_table_in_order_to_the_end() -> None:
    agent = controller()
    assert talk(agent, "getnext", f".{MESSAGE}.1.3.1")[0] == f".{MESSAGE}.1.3.2"
    assert talk(agent, "getnext", f".{MESSAGE}.1.3.4")[0] == f".{MESSAGE}.1.5.1"  # currentBuffer
    assert talk(agent, "getnext", f".{MESSAGE}.1.7.255")[0] == f".{MESSAGE}.2.3.1"
    assert talk(agent, "getnext", f".{SHORT_ERROR_STATUS}") == ["NONE"]
    assert talk(agent, "get", f".{DMS}.99.0") == ["NONE"]
    assert talk(agent, "set", f".{DMS}.99.0", "integer 1", "") == ["not-writable"]
    assert talk(agent, "set", f".{DMS}.1.2.0", "integer 1", "") == ["not-writable"]


def test_the_agent_runs_as_a_process_on_pipes(tmp_path: Path) -> None:
    state = tmp_path / "sign.json"
    state.write_text(json.dumps({"control": "local"}), encoding="utf-8")
    command = [sys.executable, "-m", "sandbox.ntcip_agent", "--lines", "3", "--chars-per-line", "16"]
    command += [
        "--max-pages",
        "4",
        "--charset",
        "gb2312",
        "--validate-seconds",
        "0",
        "--state-file",
        str(state),
    ]
    requests = [
        "PING",
        "get",
        f".{DMS}.2.3.0",
        "get",
        f".{CONTROL_MODE}",
        "set",
        f".{MESSAGE}.9.3.1",
        "integer 6",
        "",
    ]
    done = subprocess.run(
        command,
        input="\n".join(requests) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "PONG",
        f".{DMS}.2.3.0",
        "integer",
        "48",
        f".{CONTROL_MODE}",
        "integer",
        "2",
        "gen-error",
    ]
