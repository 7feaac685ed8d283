"""The Kannel smsbox emulator answers, splits, reports and forwards as a real Kannel 1.4.5 was seen to."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox import kannel
from sandbox.emulator import EmulatorState
from sandbox.server import SandboxConfig
from tests.support import holds_for, wait_until

LOGIN = {"username": "dispatch", "password": "sandbox"}
SEND = {**LOGIN, "from": "12379"}


@dataclass
class Receiver:
    """A small HTTP server on 127.0.0.1 playing the application behind ``dlr-url`` and ``get-url``."""

    status: int = 200
    paths: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def hits(self, prefix: str) -> list[dict[str, str]]:
        """The query variables of every call whose path starts with ``prefix``, in arrival order."""
        return [
            dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query, keep_blank_values=True))
            for path in list(self.paths)
            if path.startswith(prefix)
        ]

    def raw(self, prefix: str) -> list[str]:
        return [path for path in list(self.paths) if path.startswith(prefix)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            box.paths.append(self.path)
            self.send_response(box.status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    box.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # shutdown() waits for the server's next poll: the default half second, at every test's end
    threading.Thread(target=box.server.serve_forever, args=(0.05,), daemon=True).start()
    yield box
    box.server.shutdown()
    box.server.server_close()


def client(**options: Any) -> tuple[FlaskClient, EmulatorState]:
    app, state = kannel.create_app(report_delay=0, **options)
    return app.test_client(), state


def send(test_client: FlaskClient, **params: str) -> tuple[int, str]:
    response = test_client.get("/cgi-bin/sendsms", query_string={**SEND, **params})
    return response.status_code, response.get_data(as_text=True)


# ---------------------------------------------------------------------------------------------------
# Answers


@pytest.mark.parametrize(
    ("query", "status", "body"),
    [
        ({**SEND, "to": "+8613800000001", "text": "hello"}, 202, "0: Accepted for delivery"),
        ({**SEND, "password": "x", "to": "+86138", "text": "t"}, 403, "Authorization failed for sendsms"),
        ({"to": "+86138", "text": "t"}, 403, "Authorization failed for sendsms"),
        (
            {"user": "dispatch", "pass": "sandbox", "from": "1", "to": "+86138"},
            202,
            "0: Accepted for delivery",
        ),
        ({**SEND, "text": "t"}, 400, "Missing receiver number, rejected"),
        ({**SEND, "to": "", "text": "t"}, 400, "Empty receiver number not allowed, rejected"),
        (
            {**SEND, "to": "   ", "text": "t"},
            400,
            "Number(s) has/have been denied by white- and/or black-lists.",
        ),
        (
            {**SEND, "to": "abc", "text": "t"},
            400,
            "Number(s) has/have been denied by white- and/or black-lists.",
        ),
        ({**LOGIN, "to": "+86138", "text": "t"}, 400, "Sender missing and no global set, rejected"),
        (
            {**SEND, "from": "", "to": "+86138", "text": "t"},
            400,
            "Sender missing and no global set, rejected",
        ),
        ({**SEND, "to": "+86138"}, 202, "0: Accepted for delivery"),  # no text: an empty message
        ({**SEND, "to": "+86138", "text": ""}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "coding": "9"}, 400, "Coding field misformed, rejected"),
        ({**SEND, "to": "+86138", "coding": "-2"}, 400, "Coding field misformed, rejected"),
        ({**SEND, "to": "+86138", "coding": "x"}, 202, "0: Accepted for delivery"),  # sscanf: not given
        ({**SEND, "to": "+86138", "coding": "-1"}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "dlr-mask": "99"}, 400, "DLR-Mask field misformed, rejected"),
        ({**SEND, "to": "+86138", "dlr-mask": "66"}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "dlr-mask": "67"}, 400, "DLR-Mask field misformed, rejected"),
        ({**SEND, "to": "+86138", "dlr-mask": "abc"}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "mclass": "5"}, 400, "MClass field misformed, rejected"),
        ({**SEND, "to": "+86138", "pid": "300"}, 400, "PID field misformed, rejected"),
        ({**SEND, "to": "+86138", "rpi": "3"}, 400, "RPI field misformed, rejected"),
        ({**SEND, "to": "+86138", "alt-dcs": "2"}, 400, "Alt-DCS field misformed, rejected"),
        ({**SEND, "to": "+86138", "mwi": "8"}, 400, "MWI field misformed, rejected"),
        ({**SEND, "to": "+86138", "compress": "2"}, 400, "Compress field misformed, rejected"),
        ({**SEND, "to": "+86138", "validity": "-5"}, 400, "Validity field misformed, rejected"),
        ({**SEND, "to": "+86138", "deferred": "-5"}, 400, "Deferred field misformed, rejected"),
        ({**SEND, "to": "+86138", "priority": "4"}, 400, "Priority field misformed, rejected"),
        ({**SEND, "to": "+86138", "priority": "-1"}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "priority": "-2"}, 400, "Priority field misformed, rejected"),
        ({**SEND, "to": "+86138", "dlr-url": "ftp://x/y"}, 400, "DLR-URL field misformed, rejected"),
        ({**SEND, "to": "+86138", "dlr-url": "http"}, 400, "DLR-URL field misformed, rejected"),
        ({**SEND, "to": "+86138", "dlr-url": "HTTP://x/y"}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "udh": "\x05\x00"}, 400, "UDH field misformed, rejected"),
        ({**SEND, "to": "+86138", "udh": ""}, 202, "0: Accepted for delivery"),
        ({**SEND, "to": "+86138", "account": "a" * 65}, 400, "Account field misformed or too long, rejected"),
        ({**SEND, "to": "+86138", "account": "a[b"}, 400, "Account field misformed or too long, rejected"),
        ({**SEND, "to": "+86138", "charset": "NOPE"}, 400, "Charset or body misformed, rejected"),
        (
            {**SEND, "to": "+86138", "text": "\xff", "charset": "ascii"},
            400,
            "Charset or body misformed, rejected",
        ),
    ],
)
def test_sendsms_answers_as_smsbox_does(query: dict[str, str], status: int, body: str) -> None:
    response = client()[0].get("/cgi-bin/sendsms", query_string=query)
    assert (response.status_code, response.get_data(as_text=True)) == (status, body)
    assert response.headers["Content-type"] == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize(
    ("headers", "body", "status", "answer"),
    [
        (
            {"X-Kannel-Username": "dispatch", "X-Kannel-Password": "sandbox", "X-Kannel-From": "1"}
            | {"X-Kannel-To": "+8613800000001", "Content-Type": "text/plain"},
            b"posted body",
            202,
            "0: Accepted for delivery",
        ),
        (
            {"X-Kannel-Username": "dispatch", "X-Kannel-Password": "no", "Content-Type": "text/plain"},
            b"x",
            403,
            "Authorization failed for sendsms",
        ),
        (
            {"X-Kannel-Username": "dispatch", "X-Kannel-Password": "sandbox", "Content-Type": "text/plain"},
            b"x",
            400,
            "Missing receiver(s) number(s), rejected",
        ),
        ({"Content-Type": "application/json"}, b"{}", 400, "Invalid content-type"),
        # a form-encoded POST is refused: smsbox reads POST variables from X-Kannel headers only
        (
            {"Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode({**SEND, "to": "+86138", "text": "t"}).encode(),
            400,
            "Invalid content-type",
        ),
    ],
)
def test_sendsms_post_takes_x_kannel_headers_and_a_plain_body(
    headers: dict[str, str], body: bytes, status: int, answer: str
) -> None:
    response = client()[0].post("/cgi-bin/sendsms", headers=headers, data=body)
    assert (response.status_code, response.get_data(as_text=True)) == (status, answer)


def test_a_posted_text_is_what_the_phone_receives() -> None:
    test_client, state = client()
    headers = {"X-Kannel-Username": "dispatch", "X-Kannel-Password": "sandbox", "X-Kannel-From": "1"}
    headers |= {"X-Kannel-To": "+8613800000060", "X-Kannel-Coding": "2"}
    headers["Content-Type"] = "text/plain; charset=UTF-16BE"
    test_client.post("/cgi-bin/sendsms", headers=headers, data="雨 rain".encode("utf-16-be"))
    assert [(e["to"], e["text"], e["coding"]) for e in state.received] == [("+8613800000060", "雨 rain", 2)]


def test_other_urls_are_unknown_requests() -> None:
    response = client()[0].get("/cgi-bin/nothing")
    assert (response.status_code, response.get_data(as_text=True)) == (404, "Unknown request.")


def test_injected_faults_answer_in_smsbox_words() -> None:
    test_client, _state = client()
    test_client.post("/_sandbox/faults", json={"mode": "status", "status": 503})
    response = test_client.get("/cgi-bin/sendsms", query_string={**SEND, "to": "+86138"})
    assert (response.status_code, response.get_data(as_text=True)) == (
        503,
        "Temporal failure, try again later.",
    )


# ---------------------------------------------------------------------------------------------------
# Batches: the answer speaks for the first receiver


def test_a_batch_with_an_unroutable_first_number_answers_403_and_still_reaches_the_others() -> None:
    test_client, state = client(denied=("+999",))
    answer = send(test_client, to="+999111 +8613800000001 +8613800000002", text="mix")
    assert answer == (403, "Not routable. Do not try again.")
    assert [e["to"] for e in state.received] == ["+8613800000001", "+8613800000002"]


def test_a_batch_with_an_unroutable_later_number_is_accepted_without_it() -> None:
    test_client, state = client(denied=("+999",))
    assert send(test_client, to="+8613800000011 +999222", text="mix") == (202, "0: Accepted for delivery")
    assert [e["to"] for e in state.received] == ["+8613800000011"]


@pytest.mark.parametrize(
    ("to", "status", "phones"),
    [
        ("+888111 +8613800000008", 202, ["+8613800000008"]),  # black-listed first: silently dropped
        ("abc +8613800000007", 202, ["+8613800000007"]),  # outside sendsms-chars: dropped
        ("+888111 abc", 400, []),
        ("+8613800000057 +8613800000057", 202, ["+8613800000057"]),  # a repeated number gets it once
        ("+8613800000001\t+8613800000002", 202, ["+8613800000001", "+8613800000002"]),
    ],
)
def test_smsbox_lists_drop_receivers_before_bearerbox_sees_them(
    to: str, status: int, phones: list[str]
) -> None:
    test_client, state = client(black_list=("+888",))
    assert send(test_client, to=to, text="t")[0] == status
    assert [e["to"] for e in state.received] == phones


def test_immediate_sendsms_reply_answers_with_smsbox_own_text() -> None:
    test_client, _state = client(immediate_sendsms_reply=True, black_list=("+888",), max_messages=10)
    answer = send(test_client, to="+8613800000001 abc +888123 +8613800000002", text="y" * 200)
    assert answer == (202, "Sent. Denied receivers are: abc +888123 Message splits: 2")
    assert send(test_client, to="+8613800000003", text="short") == (202, "Sent.")


def test_while_the_smsc_is_down_messages_are_queued_then_delivered() -> None:
    test_client, state = client(smsc_online=False)
    assert send(test_client, to="+8613800000061", text="later") == (202, "3: Queued for later delivery")
    assert state.received == []
    assert test_client.get("/_sandbox/smsc").get_json() == {"online": False, "queued": 1}
    assert test_client.post("/_sandbox/smsc", json={"online": True}).get_json() == {
        "online": True,
        "queued": 0,
    }
    assert [(e["to"], e["text"]) for e in state.received] == [("+8613800000061", "later")]


# ---------------------------------------------------------------------------------------------------
# What the phone shows: truncation, splitting, the GSM alphabet


@pytest.mark.parametrize(
    ("options", "params", "shown", "parts", "truncated"),
    [
        # max-messages 1 (Kannel's default) truncates; with concatenation the room is 153, not 160
        ({}, {"text": "a" * 200}, "a" * 153, 1, True),
        ({"concatenation": False}, {"text": "a" * 200}, "a" * 160, 1, True),
        ({"concatenation": False}, {"text": "e" * 159 + "€f"}, "e" * 159, 1, True),  # € needs 2 septets
        ({}, {"text": "雪" * 75, "coding": "2", "charset": "utf-8"}, "雪" * 67, 1, True),
        (
            {"concatenation": False},
            {"text": "雪" * 75, "coding": "2", "charset": "utf-8"},
            "雪" * 70,
            1,
            True,
        ),
        ({"max_messages": 10}, {"text": "a" * 160}, "a" * 160, 1, False),
        ({"max_messages": 10}, {"text": "b" * 161}, "b" * 161, 2, False),
        ({"max_messages": 10}, {"text": "c" * 306}, "c" * 306, 2, False),
        ({"max_messages": 10}, {"text": "d" * 307}, "d" * 307, 3, False),
        ({"max_messages": 10}, {"text": "€" * 80}, "€" * 80, 1, False),
        ({"max_messages": 10}, {"text": "€" * 81}, "€" * 81, 2, False),  # 76 + 5: no part ends in an escape
        ({"max_messages": 10}, {"text": "雨" * 70, "coding": "2", "charset": "utf-8"}, "雨" * 70, 1, False),
        ({"max_messages": 10}, {"text": "雨" * 71, "coding": "2", "charset": "utf-8"}, "雨" * 71, 2, False),
        ({"max_messages": 10}, {"text": "雨" * 134, "coding": "2", "charset": "utf-8"}, "雨" * 134, 2, False),
        ({"max_messages": 10}, {"text": "雨" * 135, "coding": "2", "charset": "utf-8"}, "雨" * 135, 3, False),
        ({"max_messages": 10}, {"text": "h" * 2000}, "h" * 1530, 10, True),
        ({"max_messages": 3, "concatenation": False}, {"text": "z" * 400}, "z" * 400, 3, False),
        ({"max_messages": 2, "concatenation": False}, {"text": "z" * 400}, "z" * 320, 2, True),
    ],
)
def test_a_long_text_is_truncated_or_split_as_kannel_splits_it(
    options: dict[str, Any], params: dict[str, str], shown: str, parts: int, truncated: bool
) -> None:
    test_client, state = client(**options)
    assert send(test_client, to="+8613800000030", **params) == (202, "0: Accepted for delivery")
    [entry] = state.received
    assert (entry["text"], entry["parts"], entry["truncated"]) == (shown, parts, truncated)


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        ({"text": "退订 ok"}, "?? ok"),  # 7-bit cannot carry Chinese
        ({"text": "hi😀"}, "hi????"),  # a four-byte character is read byte by byte
        ({"text": "a\tb\x0cc`"}, "a?b\x0cc?"),
        ({"text": "ç Ç Ω €"}, "Ç Ç Ω €"),
        (
            {"text": "雪", "coding": "2"},
            "\ue99b\ufffd",
        ),  # UTF-8 bytes taken as UCS-2 when no charset is given
        ({"text": "caf\xe9".encode("latin-1").decode("latin-1"), "charset": "utf-8"}, "café"),
        ({"text": "bin", "coding": "1"}, "bin"),
    ],
)
def test_the_phone_shows_what_the_alphabet_can_carry(params: dict[str, str], shown: str) -> None:
    test_client, state = client()
    send(test_client, to="+8613800000043", **params)
    assert state.received[0]["text"] == shown


def test_a_latin1_charset_is_converted() -> None:
    test_client, state = client()
    # the raw octet E9 in the query, declared as ISO-8859-1
    test_client.get(
        "/cgi-bin/sendsms?username=dispatch&password=sandbox&from=1&to=%2B86138&text=caf%E9&charset=ISO-8859-1"
    )
    assert state.received[0]["text"] == "café"


def test_a_record_keeps_the_request_fields() -> None:
    test_client, state = client()
    send(test_client, to="+86138", text="t", charset="UTF-8", account="acc", smsc="s1")
    [entry] = state.received
    assert {
        k: entry[k] for k in ("to", "from", "text", "coding", "charset", "dlr_mask", "dlr_url", "parts")
    } == {
        "to": "+86138",
        "from": "12379",
        "text": "t",
        "coding": 0,
        "charset": "UTF-8",
        "dlr_mask": -1,
        "dlr_url": None,
        "parts": 1,
    }
    assert (entry["account"], entry["smsc"]) == ("acc", "s1")


# ---------------------------------------------------------------------------------------------------
# Delivery reports


REPORT = "&type=%d&p=%p&P=%P&A=%A&a=%a&k=%k&s=%s&e=%e&c=%c&C=%C&O=%O&i=%i&n=%n&m=%m&D=%D&q=%q&Q=%Q&F=%F&x=%x"


def test_each_phone_gets_one_report_set_whatever_its_parts(receiver: Receiver) -> None:
    test_client, state = client(max_messages=10)
    url = f"{receiver.base}/dlr?who=a{REPORT}"
    send(
        test_client, to="+8613800000047 +8613800000048", text="g" * 400, **{"dlr-mask": "31", "dlr-url": url}
    )
    assert [e["parts"] for e in state.received] == [3, 3]
    wait_until(lambda: len(receiver.hits("/dlr")) >= 4)
    holds_for(lambda: len(receiver.hits("/dlr")) == 4, 0.2, "two reports per phone, no more")
    per_phone: dict[str, list[dict[str, str]]] = {}
    for hit in receiver.hits("/dlr"):
        per_phone.setdefault(hit["p"], []).append(hit)
    # a concatenated text: the first part's delivery, then the whole message's SMSC success (two phones'
    # reports go out in parallel, as smsbox's do, so only each phone's own order is kept)
    assert {phone: [h["type"] for h in hits] for phone, hits in per_phone.items()} == {
        "+8613800000047": ["1", "8"],
        "+8613800000048": ["1", "8"],
    }
    delivered, success = per_phone["+8613800000047"]
    assert delivered["F"] and delivered["F"] == success["F"]  # both name the SMS centre's message id


def test_a_single_message_reports_smsc_success_then_delivery_with_kannel_escapes(receiver: Receiver) -> None:
    test_client, _state = client()
    url = f"{receiver.base}/dlr?who=b{REPORT}"
    params = {"dlr-mask": "31", "dlr-url": url, "meta-data": "?smpp?a=b&", "mclass": "1"}
    send(test_client, to="+8613800000013", text="hi there", **params)
    wait_until(lambda: len(receiver.raw("/dlr")) >= 2)
    success, delivered = receiver.raw("/dlr")
    assert success == (
        "/dlr?who=b&type=8&p=%2B8613800000013&P=12379&A=ACK%2F&a=ACK%2F&k=ACK%2F&s=&e=41434B2F&c=-1&C=UTF-8"
        "&O=00&i=fake&n=dispatch&m=-1&D=%3Fsmpp%3Fa%3Db%26%3Forig_msg%3Fdlr_mask%3D31%26"
        "&q=%2B8613800000013&Q=12379&F=&x=%x"
    )
    assert re.fullmatch(
        r"/dlr\?who=b&type=1&p=%2B8613800000013&P=12379&A=&a=&k=&s=&e=&c=-1&C=UTF-8&O=00&i=fake&n=dispatch"
        r"&m=-1&D=%3Forig_msg%3Fdlr_mask%3D31%26&q=%2B8613800000013&Q=12379&F=[0-9a-f-]{36}&x=%x",
        delivered,
    )


@pytest.mark.parametrize(
    ("mask", "types"),
    [("1", ["1"]), ("8", ["8"]), ("9", ["8", "1"]), ("2", []), ("4", []), ("0", [])],
)
def test_reports_follow_the_mask(receiver: Receiver, mask: str, types: list[str]) -> None:
    test_client, _state = client()
    send(test_client, to="+86138", text="x", **{"dlr-mask": mask, "dlr-url": f"{receiver.base}/dlr?t=%d"})
    wait_until(lambda: len(receiver.hits("/dlr")) >= len(types))
    holds_for(lambda: len(receiver.hits("/dlr")) == len(types), 0.3, f"{len(types)} reports, no more")
    assert [h["t"] for h in receiver.hits("/dlr")] == types


def test_a_split_text_without_concatenation_reports_its_first_part_only(receiver: Receiver) -> None:
    test_client, state = client(max_messages=10, concatenation=False)
    send(
        test_client,
        to="+86138",
        text="z" * 200,
        **{"dlr-mask": "9", "dlr-url": f"{receiver.base}/dlr?t=%d&F=%F"},
    )
    wait_until(lambda: len(receiver.hits("/dlr")) >= 2)
    holds_for(lambda: len(receiver.hits("/dlr")) == 2, 0.2, "no report for the second part")
    assert state.received[0]["parts"] == 2
    assert [(h["t"], bool(h["F"])) for h in receiver.hits("/dlr")] == [("8", False), ("1", True)]


def test_an_unroutable_number_gets_an_smsc_failure_report(receiver: Receiver) -> None:
    test_client, _state = client(denied=("+999",))
    url = f"{receiver.base}/dlr?t=%d&A=%A&i=%i&k=%k&s=%s"
    assert send(test_client, to="+999333", text="t", **{"dlr-mask": "31", "dlr-url": url})[0] == 403
    wait_until(lambda: bool(receiver.raw("/dlr")))
    assert receiver.raw("/dlr") == ["/dlr?t=16&A=NACK%2Fno+SMSC&i=&k=NACK%2Fno&s=SMSC"]


def test_numbers_starting_00_are_given_a_plus_by_q(receiver: Receiver) -> None:
    test_client, _state = client()
    url = f"{receiver.base}/dlr?p=%p&q=%q&Q=%Q"
    send(test_client, to="0086138", text="q", **{"from": "0012", "dlr-mask": "1", "dlr-url": url})
    wait_until(lambda: bool(receiver.raw("/dlr")))
    assert receiver.raw("/dlr") == ["/dlr?p=0086138&q=%2B86138&Q=%2B12"]


@pytest.mark.parametrize(
    ("retries", "status", "calls"),
    [(0, 500, 1), (2, 500, 3), (1, 204, 2), (1, 201, 2), (2, 202, 1), (2, 200, 1)],
)
def test_a_report_not_answered_200_or_202_is_retried_as_configured(
    receiver: Receiver, retries: int, status: int, calls: int
) -> None:
    receiver.status = status
    test_client, _state = client(http_request_retry=retries, http_queue_delay=0.05)
    send(test_client, to="+86138", text="x", **{"dlr-mask": "8", "dlr-url": f"{receiver.base}/dlr?t=%d"})
    wait_until(lambda: len(receiver.raw("/dlr")) >= calls)
    holds_for(lambda: len(receiver.raw("/dlr")) == calls, 0.3, f"{calls} calls, no further retry")
    log = test_client.get("/_sandbox/callbacks").get_json()
    assert [entry["attempt"] for entry in log] == list(range(calls))


def test_an_unreachable_report_url_is_dropped_without_retries() -> None:
    test_client, _state = client()
    send(test_client, to="+86138", text="x", **{"dlr-mask": "8", "dlr-url": "http://127.0.0.1:9/nobody?t=%d"})
    wait_until(lambda: test_client.get("/_sandbox/callbacks").get_json())
    holds_for(lambda: len(test_client.get("/_sandbox/callbacks").get_json()) == 1, 0.2, "no retry")
    assert [entry["status"] for entry in test_client.get("/_sandbox/callbacks").get_json()] == [-1]


# ---------------------------------------------------------------------------------------------------
# Inbound texts

MO_URL = "p=%p&P=%P&a=%a&b=%b&k=%k&c=%c&C=%C&O=%O&d=%d&n=%n&e=%e"


@pytest.mark.parametrize(
    ("recode", "text", "expected"),
    [
        # a text GSM cannot carry is sent as UCS-2
        (
            False,
            "退订",
            "a=%90%00%8B%A2&b=%90%00%8B%A2&k=%90%00%8B%A2&c=2&C=UTF-16BE&O=08&d=-1&n=default&e=90008BA2",
        ),
        (
            True,
            "退订",
            "a=%E9%80%80%E8%AE%A2&b=%E9%80%80%E8%AE%A2&k=%E9%80%80%E8%AE%A2&c=0&C=UTF-8&O=00&d=-1",
        ),
        (False, "TD", "a=TD&b=TD&k=TD&c=0&C=UTF-8&O=00&d=-1&n=default&e=5444"),
        # a phone may send UCS-2 anyway: its words are split on the byte 0x20, as smsbox splits them
        (
            False,
            {"text": "TD ok", "coding": 2},
            "a=%00T%00D%00+%00o%00k&b=%00T%00D%00+%00o%00k&k=%00T%00D%00&c=2&C=UTF-16BE",
        ),
    ],
)
def test_an_inbound_text_reaches_the_get_url(
    receiver: Receiver, recode: bool, text: str | dict[str, Any], expected: str
) -> None:
    app, _state = kannel.create_app(mo_url=f"{receiver.base}/mo?{MO_URL}", mo_recode=recode)
    phone = {"from": "+8613800138001", **(text if isinstance(text, dict) else {"text": text})}
    answer = app.test_client().post("/_sandbox/mo", json=phone)
    assert answer.get_json()["status"] == 200
    [path] = receiver.raw("/mo")
    assert path.startswith("/mo?p=%2B8613800138001&P=12379&" + expected)


def test_an_inbound_text_with_a_global_sender_names_it_as_the_receiver(receiver: Receiver) -> None:
    app, _state = kannel.create_app(mo_url=f"{receiver.base}/mo?p=%p&P=%P", global_sender="10086")
    app.test_client().post("/_sandbox/mo", json={"from": "+8613800138001", "text": "TD", "to": "12379"})
    assert receiver.raw("/mo") == ["/mo?p=%2B8613800138001&P=10086"]


def test_without_an_mo_url_inbound_texts_have_nowhere_to_go() -> None:
    answer = client()[0].post("/_sandbox/mo", json={"from": "+86138", "text": "TD"})
    assert answer.status_code == 409


# ---------------------------------------------------------------------------------------------------
# The escape codes


@pytest.mark.parametrize(
    ("pattern", "msgdata", "filled"),
    [
        ("%k|%s|%s|%r", b"FOO BAR BAZ QUX", "FOO|BAR|BAZ|QUX"),
        ("%s|%r", b"FOO BAR BAZ QUX", "BAR|BAZ+QUX"),
        ("%S", b"KEY a*b/c", "a~b/c"),  # not url-encoded, '*' becomes '~'
        ("%a", b"  many   spaces ", "many+spaces"),
        ("%b", b"  many   spaces ", "++many+++spaces+"),
        ("100%%|%z|end%", b"x", "100%|%z|end%"),
        ("%#smpp#a#|%#x#y#", b"x", "b%2Fc|"),
    ],
)
def test_escape_codes_are_filled_as_urltrans_fills_them(pattern: str, msgdata: bytes, filled: str) -> None:
    msg = kannel.Message(sender="1", receiver="2", msgdata=msgdata, meta_data="?smpp?a=b/c&")
    assert kannel.fill_escapes(pattern, msg) == filled


def test_the_dcs_escape_settles_an_undefined_coding() -> None:
    msg = kannel.Message(sender="1", receiver="2")
    assert kannel.fill_escapes("%c,%O,%c", msg) == "-1,00,0"


def test_the_time_escapes_use_gmt() -> None:
    msg = kannel.Message(sender="1", receiver="2", time=0)
    assert kannel.fill_escapes("%t|%T", msg) == "1970-01-01+00:00:00|0"


# ---------------------------------------------------------------------------------------------------
# At scale: smsbox's bounded caller, keep-alive, counts only


@dataclass
class Gate:
    """An application behind ``dlr-url`` that holds every call until opened, counting calls in flight."""

    opened: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    current: int = 0
    peak: int = 0
    paths: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_port}"

    def types_by_phone(self) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for path in list(self.paths):
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
            seen.setdefault(query["p"], []).append(query["t"])
        return seen


@pytest.fixture
def gate() -> Iterator[Gate]:
    box = Gate()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real application server answers

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            with box.lock:
                box.current += 1
                box.peak = max(box.peak, box.current)
            box.opened.wait(timeout=30)
            with box.lock:
                box.current -= 1
                box.paths.append(self.path)
            # one write: headers and body sent apart meet the caller's delayed ACK (40 ms a call)
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128

    box.server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=box.server.serve_forever, args=(0.05,), daemon=True).start()
    yield box
    box.opened.set()
    box.server.shutdown()
    box.server.server_close()


def phones(count: int, start: int = 0) -> str:
    return " ".join(f"+86138{number:08d}" for number in range(start, start + count))


def stats(test_client: FlaskClient) -> dict[str, Any]:
    answer: dict[str, Any] = test_client.get("/_sandbox/stats").get_json()
    return answer


def test_reports_in_flight_never_exceed_max_pending_requests(gate: Gate) -> None:
    test_client, _state = client(max_pending_requests=3)
    dlr = {"dlr-mask": "8", "dlr-url": f"{gate.base}/dlr?t=%d&p=%p"}
    assert send(test_client, to=phones(20), text="x", **dlr)[0] == 202
    wait_until(lambda: gate.current == 3, what="three calls held")
    reports = stats(test_client)["reports"]
    assert (reports["in_flight"], reports["queued"], reports["sent"]) == (3, 17, 0)
    gate.opened.set()
    wait_until(lambda: stats(test_client)["reports"]["sent"] == 20, what="every report")
    assert gate.peak == 3
    final = stats(test_client)
    assert (final["reports"]["sent"], final["reports"]["pending"]) == (20, 0)
    assert final["caller"]["in_flight_high"] == 3


def test_reports_reuse_keep_alive_connections(gate: Gate) -> None:
    gate.opened.set()
    test_client, _state = client(max_pending_requests=1)
    send(test_client, to=phones(10), text="x", **{"dlr-mask": "9", "dlr-url": f"{gate.base}/dlr?t=%d&p=%p"})
    wait_until(lambda: stats(test_client)["reports"]["sent"] == 20, what="every report")
    assert stats(test_client)["caller"]["connections_opened"] == 1


def test_with_a_slow_callback_reports_queue_up_and_none_is_lost(gate: Gate) -> None:
    test_client, _state = client(max_pending_requests=4)
    dlr = {"dlr-mask": "9", "dlr-url": f"{gate.base}/dlr?t=%d&p=%p"}
    for batch in range(5):
        assert send(test_client, to=phones(40, batch * 40), text="x", **dlr)[0] == 202
    wait_until(lambda: gate.current == 4, what="four calls held")
    assert stats(test_client)["reports"]["pending"] == 400  # 200 phones, types 8 and 1 each
    gate.opened.set()
    wait_until(lambda: stats(test_client)["reports"]["sent"] == 400, what="every report")
    seen = gate.types_by_phone()
    assert seen == {f"+86138{number:08d}": ["8", "1"] for number in range(200)}
    final = stats(test_client)["reports"]
    assert (final["sent"], final["failed"], final["pending"]) == (400, 0, 0)
    assert gate.peak <= 4


def test_sendsms_answers_while_the_report_queue_is_blocked(gate: Gate) -> None:
    test_client, _state = client(max_pending_requests=2)
    dlr = {"dlr-mask": "8", "dlr-url": f"{gate.base}/dlr?t=%d&p=%p"}
    send(test_client, to=phones(10), text="x", **dlr)
    wait_until(lambda: gate.current == 2, what="the caller's two slots taken")
    answers: list[tuple[int, str]] = []

    def more() -> None:
        for batch in range(1, 51):
            answers.append(send(test_client, to=phones(10, batch * 10), text="x", **dlr))

    sender = threading.Thread(target=more, daemon=True)
    sender.start()
    sender.join(timeout=30)  # bounded: were sendsms waiting for the reports, it would still be running
    assert not sender.is_alive()
    assert answers == [(202, "0: Accepted for delivery")] * 50
    now = stats(test_client)
    assert now["sendsms"]["accepted"] == 51
    assert (now["reports"]["in_flight"], now["reports"]["queued"], now["reports"]["sent"]) == (2, 508, 0)
    gate.opened.set()
    wait_until(lambda: stats(test_client)["reports"]["sent"] == 510, what="the queue drained")
    assert len(gate.paths) == 510


def test_counts_only_keeps_totals_and_the_last_entries(receiver: Receiver) -> None:
    test_client, state = client(record="counts", keep_last=5, denied=("+999",))
    before = time.time()
    dlr = {"dlr-mask": "9", "dlr-url": f"{receiver.base}/dlr?t=%d&p=%p"}
    for batch in range(3):
        assert send(test_client, to=phones(10, batch * 10), text="x" * 200, **dlr)[0] == 202
    assert send(test_client, to="+999001 +999002", text="x", **{**dlr, "dlr-mask": "31"})[0] == 403
    assert send(test_client, to="abc", text="x")[0] == 400
    wait_until(lambda: stats(test_client)["reports"]["sent"] == 62, what="60 reports and 2 failures")
    assert len(state.received) == 5
    received = test_client.get("/_sandbox/received").get_json()
    assert {k: received[k] for k in ("record", "reached", "parts", "unroutable")} == {
        "record": "counts",
        "reached": 30,
        "parts": 30,  # max-messages 1: truncated to one part each
        "unroutable": 2,
    }
    assert [entry["to"] for entry in received["last"]] == phones(5, 25).split()
    calls = test_client.get("/_sandbox/callbacks").get_json()
    assert (calls["calls"], calls["by_status"], len(calls["last"])) == (62, {"200": 62}, 5)
    now = stats(test_client)
    assert (now["sendsms"]["requests"], now["sendsms"]["accepted"], now["sendsms"]["refused"]) == (5, 4, 1)
    assert now["sendsms"]["last_accepted_at"] >= before
    assert now["phones"]["reached"] == 30
    assert (now["reports"]["sent"], now["reports"]["failed"], now["reports"]["pending"]) == (62, 0, 0)
    assert len(receiver.raw("/dlr")) == 62


def test_the_sandbox_server_takes_counts_only_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_SMS_RECORD", "counts")
    assert SandboxConfig().sms_record == "counts"
    with pytest.raises(ValueError, match="record"):
        kannel.create_app(record="some")
