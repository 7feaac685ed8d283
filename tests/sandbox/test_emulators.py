"""The emulators answer as the real APIs do, including their refusals."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests

from channels.display import Sign
from sandbox import kannel, signs, weibo, wordpress

AUTH = {"Authorization": "Basic " + base64.b64encode(b"dispatch:sand box pass word").decode()}


def test_wordpress_renames_a_taken_slug_and_keeps_registered_meta_only() -> None:
    client = wordpress.create_app()[0].test_client()
    body = {"title": "t", "slug": "notice", "status": "publish", "meta": {"dispatch_uid": "u1", "other": "x"}}
    first = client.post("/wp-json/wp/v2/posts", json=body, headers=AUTH)
    second = client.post("/wp-json/wp/v2/posts", json={**body, "meta": {"dispatch_uid": "u2"}}, headers=AUTH)
    assert first.status_code == second.status_code == 201
    assert (first.json["slug"], second.json["slug"]) == ("notice", "notice-2")
    assert first.json["meta"] == {"dispatch_uid": "u1"}


def test_wordpress_refuses_anonymous_and_wrong_passwords() -> None:
    client = wordpress.create_app()[0].test_client()
    anonymous = client.post("/wp-json/wp/v2/posts", json={"title": "t"})
    assert anonymous.status_code == 401 and anonymous.json["code"] == "rest_cannot_create"
    wrong = {"Authorization": "Basic " + base64.b64encode(b"dispatch:nope").decode()}
    assert (
        client.post("/wp-json/wp/v2/posts", json={"title": "t"}, headers=wrong).json["code"]
        == "incorrect_password"
    )
    assert client.get("/wp-json/wp/v2/posts?status=any").status_code == 400
    assert client.post("/wp-json/wp/v2/posts", json={}, headers=AUTH).json["code"] == "empty_content"


def test_wordpress_trashes_then_answers_410() -> None:
    client = wordpress.create_app()[0].test_client()
    post_id = client.post("/wp-json/wp/v2/posts", json={"title": "t"}, headers=AUTH).json["id"]
    assert client.delete(f"/wp-json/wp/v2/posts/{post_id}", headers=AUTH).json["status"] == "trash"
    again = client.delete(f"/wp-json/wp/v2/posts/{post_id}", headers=AUTH)
    assert again.status_code == 410 and again.json["code"] == "rest_already_trashed"


@pytest.mark.parametrize(
    ("query", "status", "answer"),
    [
        ({"username": "dispatch", "password": "x", "to": "+1", "text": "t"}, 403, "Authorization failed"),
        ({"username": "dispatch", "password": "sandbox", "text": "t"}, 400, "Missing receiver number"),
        ({"username": "dispatch", "password": "sandbox", "to": "+86138", "text": "t"}, 400, "Sender missing"),
        (
            {
                "username": "dispatch",
                "password": "sandbox",
                "from": "1",
                "to": "+86138",
                "text": "t",
                "coding": "9",
            },
            400,
            "Coding",
        ),
        (
            {"username": "dispatch", "password": "sandbox", "from": "1", "to": "+86138 +86139", "text": "t"},
            202,
            "0: Accepted",
        ),
    ],
)
def test_kannel_answers_like_smsbox(query: dict, status: int, answer: str) -> None:
    client = kannel.create_app()[0].test_client()
    response = client.get("/cgi-bin/sendsms", query_string=query)
    assert response.status_code == status and answer in response.get_data(as_text=True)


def test_kannel_calls_the_dlr_url_back_smsc_success_then_delivered() -> None:
    hits: list[str] = []
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/dlr?key=k1&type=%d&to=%p"
    client = kannel.create_app(report_delay=0)[0].test_client()
    client.get(
        "/cgi-bin/sendsms",
        query_string={
            "username": "dispatch",
            "password": "sandbox",
            "to": "+86138",
            "from": "1",
            "text": "t",
            "dlr-mask": "9",
            "dlr-url": url,
        },
    )
    deadline = time.monotonic() + 5
    while len(hits) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    server.shutdown()
    assert hits == ["/dlr?key=k1&type=8&to=%2B86138", "/dlr?key=k1&type=1&to=%2B86138"]


SIGN = Sign(id="S1", area="110105", lines=2, chars_per_line=4, max_pages=2, address="S1")


@pytest.mark.parametrize(
    ("multi", "fragment"),
    [
        ("[xx]abc", "unsupported tag [xx]"),
        ("[nl", "unterminated tag"),
        ("abcde", "wider than 4"),
        ("a[nl]b[nl]c", "3 lines"),
        ("a[np]b[np]c", "3 pages"),
        ("a]b", "unmatched"),
    ],
)
def test_the_sign_controller_refuses_bad_multi(multi: str, fragment: str) -> None:
    client = signs.create_app([SIGN])[0].test_client()
    response = client.put("/signs/S1/message", json={"id": "m", "multi": multi, "priority": 50})
    assert response.status_code == 400 and fragment in response.json["error"]


def test_the_sign_controller_keeps_a_higher_priority_message() -> None:
    client = signs.create_app([SIGN])[0].test_client()
    ok = client.put("/signs/S1/message", json={"id": "w", "multi": "[pt30o0]雨[[注]]", "priority": 200})
    assert ok.status_code == 200
    low = client.put("/signs/S1/message", json={"id": "tip", "multi": "提示", "priority": 50})
    assert low.status_code == 409
    assert client.get("/signs/S1/message").json["id"] == "w"
    assert client.delete("/signs/S1/message/w").json == {"cleared": True}
    assert client.get("/signs/S1/message").json is None


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"access_token": "bad", "status": "s http://x/", "rip": "1.2.3.4"}, 21332),
        ({"access_token": "sandbox-token", "rip": "1.2.3.4"}, 10016),
        ({"access_token": "sandbox-token", "status": "no link", "rip": "1.2.3.4"}, 10017),
        ({"access_token": "sandbox-token", "status": "长" * 141 + " http://x/", "rip": "1.2.3.4"}, 20012),
    ],
)
def test_weibo_refuses_with_its_error_codes(form: dict, code: int) -> None:
    client = weibo.create_app()[0].test_client()
    response = client.post("/2/statuses/share.json", data=form)
    assert response.json["error_code"] == code and response.json["request"] == "/2/statuses/share.json"


def test_weibo_refuses_repeated_content_and_destroys_by_id() -> None:
    client = weibo.create_app()[0].test_client()
    form = {"access_token": "sandbox-token", "status": "预警 http://x/", "rip": "1.2.3.4"}
    status_id = client.post("/2/statuses/share.json", data=form).json["idstr"]
    assert client.post("/2/statuses/share.json", data=form).json["error_code"] == 20019
    gone = client.post("/2/statuses/destroy.json", data={"access_token": "sandbox-token", "id": status_id})
    assert gone.json["idstr"] == status_id
    again = client.post("/2/statuses/destroy.json", data={"access_token": "sandbox-token", "id": status_id})
    assert again.json["error_code"] == 20101


def five_free_ports() -> int:
    """A port p with p..p+4 free on 127.0.0.1 (the sandbox listens on five consecutive ports)."""
    for base in range(21000 + os.getpid() % 2000 * 5, 65000, 5):
        socks = []
        try:
            for port in range(base, base + 5):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no five consecutive free ports")


def test_the_sandbox_command_serves_and_stops_on_sigterm(environment: dict[str, str]) -> None:
    base = five_free_ports()
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "sandbox", "--port-base", str(base)],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{base + 3}/_sandbox/received", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"the sandbox did not come up: {output}")
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_an_expired_warning_gives_the_sign_back_to_what_it_covered() -> None:
    app = signs.create_app([SIGN])[0]
    client = app.test_client()
    client.put(
        "/signs/S1/message", json={"id": "tip", "multi": "提示", "priority": 50, "duration_minutes": 600}
    )
    client.put(
        "/signs/S1/message", json={"id": "w", "multi": "暴雨", "priority": 200, "duration_minutes": 10}
    )
    refused = client.put("/signs/S1/message", json={"id": "tip2", "multi": "提示", "priority": 50})
    assert refused.status_code == 409 and refused.json["code"] == "preempted"
    assert 500 <= refused.json["retry_after"] <= 600
    client.post("/_sandbox/clock", json={"advance": 11 * 60})
    assert client.get("/signs/S1/message").json["id"] == "tip"
    client.post("/_sandbox/clock", json={"advance": 600 * 60})
    assert client.get("/signs/S1/message").json is None


def test_a_rebooted_sign_forgets_and_an_offline_one_does_not_answer() -> None:
    client = signs.create_app([SIGN])[0].test_client()
    client.put("/signs/S1/message", json={"id": "w", "multi": "暴雨", "priority": 200})
    client.post("/_sandbox/signs/S1/reboot")
    assert client.get("/signs/S1/message").json is None
    client.post("/_sandbox/signs/S1/offline", json={"offline": True})
    assert client.get("/signs/S1/status").status_code == 504
    client.post("/_sandbox/signs/S1/offline", json={"offline": False})
    assert client.get("/signs/S1/status").json["online"] is True


def test_the_controller_refuses_characters_outside_the_sign_charset() -> None:
    client = signs.create_app([SIGN])[0].test_client()
    response = client.put("/signs/S1/message", json={"id": "m", "multi": "雨😀", "priority": 50})
    assert response.status_code == 400 and "gb2312" in response.json["error"]
