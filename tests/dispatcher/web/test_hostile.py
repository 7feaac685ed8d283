"""Junk at every endpoint, with a token that may do anything: an answer about the request (4xx), never
a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dispatcher.web.documents import MAX_BODY
from tests.dispatcher.web import Api
from tests.dispatcher.web.test_roles import MATRIX, endpoints

PATH_JUNK = ["0", "-1", "9" * 40, "1e3", "%F0%9F%91%80", "%00", "..%2F..", "暴雨", "a" * 300]
BODY_JUNK: list[dict[str, Any]] = [
    {},
    {"data": b""},
    {"data": b"\xff\xfe\x00garbage", "headers": {"Content-Type": "application/json"}},
    {"data": b"{" * 5000, "headers": {"Content-Type": "application/json"}},
    {"data": b"[" * 100_000, "headers": {"Content-Type": "application/yaml"}},
    {"data": b"- &a [*a]", "headers": {"Content-Type": "application/yaml"}},
    # a billion laughs: an author that is a list of lists, each alias repeating the one before
    {
        "data": b"kind: warning\nauthor: &a0 [x,x,x,x,x,x,x,x,x,x]\n"
        + b"".join(
            f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]\n".encode()
            for i in range(1, 12)
        )
        + b"title: *a11\n",
        "headers": {"Content-Type": "application/yaml"},
    },
    {
        "data": b"<?xml version='1.0'?><!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>",
        "headers": {"Content-Type": "application/cap+xml"},
    },
    {"data": b"x" * (5 * 1024 * 1024), "headers": {"Content-Type": "application/json"}},
    {"json": {"reason": "\u202e" * 3000, "roles": [None], "name": {"a": 1}, "item": 2**80, "channel": 7}},
    {"json": [1, 2, 3]},
    {"data": b"\x00\x01", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
    {"data": b"phone\n" + "１３８".encode() * 10, "headers": {"Content-Type": "text/csv"}},
]
QUERY_JUNK = [
    {"limit": "-5", "before": "9" * 30, "channel": "x" * 100, "draft": "maybe"},
    {"from": "2026-13-45", "to": "yesterday", "format": "pdf"},
    {"from": "2026-03-31", "to": "2026-01-01"},
    {"from": "0001-01-01", "to": "9999-12-31", "days": "367", "revision": "-1"},
]


def test_no_endpoint_answers_junk_with_a_500(api: Api) -> None:
    assert set(MATRIX) <= endpoints(api)
    for method, path in MATRIX:
        paths = (
            [path]
            if "{" not in path
            else [path.split("{")[0] + junk + path.split("}", 1)[1] for junk in PATH_JUNK]
        )
        for concrete in paths:
            for body in BODY_JUNK if method == "POST" else [{}]:
                answer = api.call(method, concrete, "全能", **body)
                assert answer.status_code < 500, (method, concrete, body.get("headers"), answer.text[:300])
            for query in QUERY_JUNK:
                answer = api.call(method, concrete, "全能", params=query)
                assert answer.status_code < 500, (method, concrete, query, answer.text[:300])


def test_errors_carry_no_internals(api: Api) -> None:
    answer = api.call(
        "POST", "/api/v1/items", "全能", data=b"\xff", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 422
    assert "Traceback" not in answer.text
    assert "not UTF-8" in answer.text


def test_no_body_is_read_before_the_token_is_checked(api: Api) -> None:
    """FastAPI parses a JSON body before an endpoint's dependencies run: the gate answers first."""
    for path in ("/api/v1/items/1/reject", "/api/v1/users", "/api/v1/deliveries/redrive"):
        broken = api.call("POST", path, data=b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status_code == 401, (path, broken.text)
        assert broken.headers["www-authenticate"] == "Bearer"
    assert api.call("GET", "/metrics").status_code == 401
    assert api.call("GET", "/").status_code == 200  # the page's shell needs no token


def test_a_body_past_the_limit_is_refused_unread(api: Api) -> None:
    events = api.events()
    declared = api.call("POST", "/api/v1/items/1/reject", "审核一", data=b"x" * (MAX_BODY + 1))
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the body streams in past the limit
        for _ in range(MAX_BODY // 65536 + 2):
            yield b'{"reason": "' + b"x" * 65536

    streamed = api.call("POST", "/api/v1/items/1/reject", "审核一", data=chunks())
    assert streamed.status_code == 413, streamed.text
    assert api.events() == events
