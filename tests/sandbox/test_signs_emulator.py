"""The HTTP sign controller emulator's own rules, driven through Flask's test client."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sandbox import signs
from sandbox.signs import MultiError, SignConfig, check_multi

SIGN = {"id": "S1", "area": "110105", "lines": 2, "chars_per_line": 4, "max_pages": 2, "address": "S1"}


def client_for(*entries: dict[str, Any]) -> FlaskClient:
    return signs.create_app(list(entries) or [SIGN])[0].test_client()


def body(response: TestResponse) -> Any:
    """The JSON of an answer (typed Any: each test knows the shape it expects)."""
    return response.get_json()


def put(client: FlaskClient, message_id: str, multi: str, priority: int = 50, **extra: Any) -> Any:
    return client.put(
        "/signs/S1/message", json={"id": message_id, "multi": multi, "priority": priority, **extra}
    )


def test_a_registry_entry_takes_its_defaults_and_is_checked() -> None:
    sign = SignConfig.from_entry(SIGN)
    assert (sign.charset, sign.cjk_cells, sign.driver) == ("gb2312", 1, "http")
    with pytest.raises(ValueError, match="lines"):
        SignConfig.from_entry({**SIGN, "lines": 0})
    with pytest.raises(LookupError):
        SignConfig.from_entry({**SIGN, "charset": "no-such-charset"})


@pytest.mark.parametrize(
    ("cjk_cells", "text", "cells"),
    [(1, "暴雨", 2), (2, "暴雨", 4), (2, "A：1", 4), (1, "ABC", 3)],
)
def test_a_wide_character_takes_cjk_cells(cjk_cells: int, text: str, cells: int) -> None:
    assert SignConfig.from_entry({**SIGN, "cjk_cells": cjk_cells}).width(text) == cells


@pytest.mark.parametrize(
    ("multi", "kind", "position", "fragment"),
    [
        ("[xx]abc", "unsupportedTag", 0, "unsupported tag [xx]"),
        ("ab[g1]", "unsupportedTag", 2, "unsupported tag"),
        ("[jl9]a", "unsupportedTagValue", 0, "unsupported value"),
        ("[sc0]a", "unsupportedTagValue", 0, "spacing"),
        ("[nl", "other", 0, "unterminated tag"),
        ("a]b", "other", 1, "unmatched"),
        ("abcde", "textTooBig", 4, "wider than 4"),
        ("a[nl]b[nl]c", "textTooBig", 6, "3 lines"),
        ("a[np]b[np]c", "tooManyPages", 6, "3 pages"),
        ("[fo2]a", "fontNotDefined", 0, "font 2"),
        ("[fo1,0000]a", "fontVersionID", 0, "version"),
        ("雨😀", "characterNotDefined", 1, "gb2312"),
        ("a\tb", "characterNotDefined", 1, "not in"),
    ],
)
def test_the_controller_names_the_first_multi_problem(
    multi: str, kind: str, position: int, fragment: str
) -> None:
    response = put(client_for(), "m", multi)
    assert response.status_code == 400
    assert (response.json["code"], response.json["position"]) == (kind, position)
    assert fragment in response.json["error"]


@pytest.mark.parametrize(
    ("multi", "pages"),
    [
        ("[pt30o0]雨[[注]]", [["雨[注]"]]),
        ("[JL3]ab[NL]cd", [["ab", "cd"]]),
        ("[fo1][flt5o5]雨[/fl][np][cf1]风", [["雨"], ["风"]]),
        ("", [[""]]),
    ],
)
def test_supported_tags_and_literal_brackets_pass(multi: str, pages: list[list[str]]) -> None:
    assert check_multi(multi, SignConfig.from_entry(SIGN)) == pages


def test_a_wide_character_counts_cjk_cells_against_the_line() -> None:
    narrow_cells = SignConfig.from_entry({**SIGN, "cjk_cells": 2})
    with pytest.raises(MultiError) as caught:
        check_multi("暴雨橙", narrow_cells)
    assert (caught.value.kind, caught.value.position) == ("textTooBig", 2)


@pytest.mark.parametrize(
    ("request_body", "fragment"),
    [
        ({"multi": "a", "priority": 50}, "missing field id"),
        ({"id": "", "multi": "a", "priority": 50}, "id must be"),
        ({"id": "m", "multi": 7, "priority": 50}, "multi must be"),
        ({"id": "m", "multi": "a", "priority": 0}, "priority must be"),
        ({"id": "m", "multi": "a", "priority": 256}, "priority must be"),
        ({"id": "m", "multi": "a", "priority": True}, "priority must be"),
        ({"id": "m", "multi": "a", "priority": 50, "duration_minutes": 0}, "duration_minutes"),
        ({"id": "m", "multi": "a", "priority": 50, "duration_minutes": 65536}, "duration_minutes"),
        ({"id": "m", "multi": "a", "priority": 50, "duration_minutes": 1.5}, "duration_minutes"),
    ],
)
def test_a_malformed_activation_is_refused(request_body: dict[str, Any], fragment: str) -> None:
    response = client_for().put("/signs/S1/message", json=request_body)
    assert response.status_code == 400 and fragment in body(response)["error"]


def test_a_higher_priority_message_holds_the_sign_until_it_ends() -> None:
    client = client_for()
    assert put(client, "tip", "提示", 50, duration_minutes=600).json == {"id": "tip", "status": "active"}
    assert put(client, "w", "暴雨", 200, duration_minutes=10).status_code == 200
    refused = put(client, "tip2", "提示", 50)
    assert refused.status_code == 409 and refused.json["code"] == "preempted"
    assert 590 <= refused.json["retry_after"] <= 600
    assert put(client, "w2", "大风", 200).status_code == 200  # equal priority replaces (NTCIP 1203)
    assert body(client.get("/signs/S1/message")) == {"id": "w2", "multi": "大风", "priority": 200}


def test_an_indefinite_message_gives_no_retry_time() -> None:
    client = client_for()
    put(client, "w", "暴雨", 200, duration_minutes=65535)
    client.post("/_sandbox/clock", json={"advance": 10 * 365 * 86400})
    refused = put(client, "tip", "提示", 50)
    assert refused.status_code == 409 and refused.json["retry_after"] is None
    assert body(client.get("/signs/S1/messages")) == [{"id": "w", "priority": 200, "seconds_remaining": None}]


def test_a_covered_message_shows_again_when_the_cover_ends_if_still_valid() -> None:
    client = client_for()
    put(client, "tip", "提示", 50, duration_minutes=600)
    put(client, "w", "暴雨", 200, duration_minutes=10)
    held = body(client.get("/signs/S1/messages"))
    assert [(m["id"], m["priority"]) for m in held] == [("tip", 50), ("w", 200)]
    assert held[1]["seconds_remaining"] == 600
    client.post("/_sandbox/clock", json={"advance": 11 * 60})
    assert body(client.get("/signs/S1/message"))["id"] == "tip"
    client.post("/_sandbox/clock", json={"advance": 600 * 60})
    assert body(client.get("/signs/S1/message")) is None
    assert body(client.get("/signs/S1/messages")) == []


def test_a_cleared_cover_uncovers_and_a_default_duration_is_an_hour() -> None:
    client = client_for()
    put(client, "tip", "提示", 50)
    put(client, "w", "暴雨", 200)
    assert body(client.delete("/signs/S1/message/w")) == {"cleared": True}
    assert body(client.delete("/signs/S1/message/w")) == {"cleared": False}
    assert body(client.get("/signs/S1/message"))["id"] == "tip"
    client.post("/_sandbox/clock", json={"advance": 3601})
    assert body(client.get("/signs/S1/message")) is None


def test_a_repeated_id_is_the_same_message_and_is_activated_once() -> None:
    app, state = signs.create_app([SIGN])
    client = app.test_client()
    put(client, "tip", "提示", 50)
    put(client, "w", "暴雨", 200)
    assert put(client, "w", "暴雨", 200).json == {"id": "w", "status": "active"}
    assert put(client, "tip", "提示", 50).json == {"id": "tip", "status": "held"}
    client.delete("/signs/S1/message/tip")
    everything = body(client.get("/_sandbox/received"))
    # The repeats are recorded as repeats (absorbed, not shown again), so the fault suite can count them.
    assert [(r["id"], r.get("repeat")) for r in everything if "repeat" in r] == [
        ("w", "active"),
        ("tip", "held"),
    ]
    received = [r for r in everything if "repeat" not in r]
    assert [(r["id"], r.get("cleared")) for r in received] == [("tip", None), ("w", None), ("tip", True)]
    assert {k: v for k, v in received[1].items() if k != "at"} == {
        "sign": "S1",
        "id": "w",
        "multi": "暴雨",
        "priority": 200,
        "pages": [["暴雨"]],
        "duration_minutes": 60,
    }
    assert len(state.received) == 5


def test_local_control_refuses_central_commands_and_is_reported() -> None:
    client = client_for()
    put(client, "w", "暴雨", 200)
    assert body(client.post("/_sandbox/signs/S1/control", json={"mode": "local"}))["control"] == "local"
    refused = put(client, "w2", "大风", 255)
    assert refused.status_code == 409 and refused.json["code"] == "local_control"
    assert body(client.delete("/signs/S1/message/w"))["code"] == "local_control"
    assert body(client.get("/signs/S1/status")) == {
        "id": "S1",
        "online": True,
        "showing": "w",
        "control": "local",
    }
    assert body(client.get("/signs/S1/config"))["control"] == "local"
    client.post("/_sandbox/signs/S1/control", json={"mode": "central"})
    assert put(client, "w2", "大风", 255).status_code == 200
    assert client.post("/_sandbox/signs/S1/control", json={"mode": "remote"}).status_code == 400


def test_the_config_is_the_signs_own() -> None:
    client = client_for({**SIGN, "charset": "big5", "cjk_cells": 2})
    assert body(client.get("/signs/S1/config")) == {
        "id": "S1",
        "lines": 2,
        "chars_per_line": 4,
        "max_pages": 2,
        "charset": "big5",
        "cjk_cells": 2,
        "control": "central",
    }
    assert put(client, "m", "暴雨", 50).status_code == 200  # two wide characters fill four cells


@pytest.mark.parametrize(
    ("entry", "path", "status"),
    [
        ({**SIGN, "address": "http://signs.example/S1"}, "/signs/S1/status", 200),
        ({**SIGN, "address": "gantry-7"}, "/signs/gantry-7/status", 200),
        ({**SIGN, "address": "gantry-7"}, "/signs/S1/status", 404),
        ({**SIGN, "driver": "ntcip"}, "/signs/S1/status", 404),
    ],
)
def test_a_sign_is_addressed_by_its_address_unless_that_is_a_url(
    entry: dict[str, Any], path: str, status: int
) -> None:
    assert client_for(entry).get(path).status_code == status


def test_a_rebooted_sign_forgets_and_an_offline_one_does_not_answer() -> None:
    client = client_for()
    put(client, "w", "暴雨", 200)
    client.post("/_sandbox/signs/S1/control", json={"mode": "local"})
    client.post("/_sandbox/signs/S1/reboot")
    assert body(client.get("/signs/S1/message")) is None
    assert body(client.get("/signs/S1/config"))["control"] == "local"  # the switch survives a reboot
    client.post("/_sandbox/signs/S1/offline", json={"offline": True})
    assert client.get("/signs/S1/status").status_code == 504
    assert client.get("/signs/S1/config").status_code == 504
    client.post("/_sandbox/signs/S1/offline", json={"offline": False})
    assert body(client.get("/signs/S1/status"))["online"] is True
    assert client.post("/_sandbox/signs/NOPE/reboot").status_code == 404
