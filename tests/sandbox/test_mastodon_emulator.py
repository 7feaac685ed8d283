"""The Mastodon emulator answers as a Mastodon server does (see the sources in ``sandbox/mastodon.py``)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox import mastodon
from tests.support import start_of_window

TOKEN = "sandbox-mastodon-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client_for(**options: Any) -> FlaskClient:
    return mastodon.create_app(**options)[0].test_client()


def post(client: FlaskClient, status: str, key: str | None = None, **fields: Any) -> Any:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return client.post("/api/v1/statuses", json={"status": status, **fields}, headers=headers)


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("hello", 5),
        ("see https://example.com/" + "x" * 100, 4 + 23),  # a URL counts 23 however long
        ("https://a.example/b", 23),  # however short
        ("look (https://example.com/a).", 6 + 23 + 2),  # closing punctuation is not the URL's
        ("http://127.0.0.1:5000/news/1", 28),  # no top-level domain: no URL, counted as written
        ("@alice@very.long.domain.example hi", 9),  # a mention counts without its domain
        ("mail me: bob@example.com", 24),  # an address is no mention
        ("👨‍👩‍👧 🇫🇷", 3),  # grapheme clusters: a ZWJ family, a space, a flag
        ("e\u0301👍🏽", 2),  # a combining accent and a skin tone join their base
        ("line\r\nnext", 9),  # CRLF is one
    ],
)
def test_length_is_counted_as_the_status_length_validator_counts_it(text: str, length: int) -> None:
    assert mastodon.mastodon_length(text) == length


def test_spoiler_text_counts_toward_the_limit() -> None:
    assert mastodon.mastodon_length("abc", "CW: ") == 7


def test_a_status_at_the_limit_is_taken_and_one_over_is_refused_with_422() -> None:
    client = client_for(max_characters=50)
    assert post(client, "a" * 26 + " https://example.com/" + "x" * 200).status_code == 200  # 26 + 1 + 23
    refused = post(client, "a" * 27 + " https://example.com/y")
    assert refused.status_code == 422
    assert refused.json == {"error": "Validation failed: Text character limit of 50 exceeded"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"status": "   "}, "Validation failed: Text can't be blank"),
        ({"status": "x" * 501}, "Validation failed: Text character limit of 500 exceeded"),
        (
            {"status": "hi", "visibility": "everyone"},
            "Validation failed: Visibility is not included in the list",
        ),
    ],
)
def test_invalid_statuses_are_refused_with_422(body: dict[str, str], error: str) -> None:
    response = client_for().post("/api/v1/statuses", json=body, headers=AUTH)
    assert (response.status_code, response.json) == (422, {"error": error})


def test_the_answer_is_the_status_the_server_built() -> None:
    client = client_for()
    text = "Flood <warning> & 'alert'\nline two\n\nSee https://example.com/a/very/long/path/indeed #Flood"
    status = post(client, text, visibility="unlisted", language="en").json
    assert re.fullmatch(r"\d+", status["id"])
    assert datetime.fromisoformat(status["created_at"].replace("Z", "+00:00"))
    assert status["url"] == f"http://localhost/@dispatch/{status['id']}"
    assert status["uri"] == f"http://localhost/users/dispatch/statuses/{status['id']}"
    assert (status["visibility"], status["language"], status["account"]["username"]) == (
        "unlisted",
        "en",
        "dispatch",
    )
    assert status["content"].startswith(
        '<p>Flood &lt;warning&gt; &amp; &#39;alert&#39;<br />line two</p><p>See <a href="https://example.com/a/'
    )
    assert (
        '<span class="invisible">https://</span><span class="ellipsis">example.com/a/very/long/path/i</span>'
        in (status["content"])
    )
    assert (
        '<a href="http://localhost/tags/Flood" class="mention hashtag" rel="tag">#<span>Flood</span></a>'
        in (status["content"])
    )
    assert "text" not in status


def test_the_same_idempotency_key_answers_the_first_status_and_makes_no_second() -> None:
    app, state = mastodon.create_app()
    client = app.test_client()
    first = post(client, "warning", key="item-1")
    second = post(client, "warning, edited", key="item-1")
    assert first.json == second.json
    # One status; the replay the key absorbed is recorded as such (the fault suite counts it).
    assert [entry["action"] for entry in state.received] == ["post", "replayed"]
    assert state.received[0]["key"] == "item-1" and state.received[0]["status"] == "warning"
    assert post(client, "warning", key="item-2").json["id"] != first.json["id"]


def test_an_idempotency_key_is_forgotten_after_an_hour() -> None:
    client = client_for()
    first = post(client, "warning", key="item-1").json
    client.post("/_sandbox/clock", json={"advance": 3601})
    assert post(client, "warning", key="item-1").json["id"] != first["id"]


def test_an_idempotency_key_whose_status_was_deleted_answers_404() -> None:
    client = client_for()
    first = post(client, "warning", key="item-1").json
    client.delete(f"/api/v1/statuses/{first['id']}", headers=AUTH)
    again = post(client, "warning", key="item-1")
    assert (again.status_code, again.json) == (404, {"error": "Record not found"})


def test_delete_answers_the_status_with_its_source_once_then_404() -> None:
    app, state = mastodon.create_app()
    client = app.test_client()
    status = post(client, "Gone soon https://example.com").json
    deleted = client.delete(f"/api/v1/statuses/{status['id']}", headers=AUTH)
    assert deleted.status_code == 200
    assert (deleted.json["id"], deleted.json["text"]) == (status["id"], "Gone soon https://example.com")
    again = client.delete(f"/api/v1/statuses/{status['id']}", headers=AUTH)
    assert (again.status_code, again.json) == (404, {"error": "Record not found"})
    assert client.get(f"/api/v1/statuses/{status['id']}", headers=AUTH).status_code == 404
    assert state.received[-1] == {**state.received[-1], "action": "delete", "id": status["id"]}


def test_another_accounts_status_cannot_be_deleted() -> None:
    client = client_for(tokens={TOKEN: "dispatch", "other": "someone"})
    status = post(client, "mine").json
    theirs = client.delete(f"/api/v1/statuses/{status['id']}", headers={"Authorization": "Bearer other"})
    assert theirs.status_code == 404
    assert client.get(f"/api/v1/statuses/{status['id']}").json["id"] == status["id"]


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/api/v1/statuses", {"Authorization": "Bearer wrong"}),
        ("POST", "/api/v1/statuses", {}),
        ("DELETE", "/api/v1/statuses/1", {"Authorization": "Bearer wrong"}),
        ("GET", "/api/v1/accounts/verify_credentials", {"Authorization": "Bearer wrong"}),
        ("GET", "/api/v1/accounts/verify_credentials", {}),
        ("GET", "/api/v1/statuses/1", {"Authorization": "Bearer wrong"}),
    ],
)
def test_a_bad_or_missing_token_is_401(method: str, path: str, headers: dict[str, str]) -> None:
    response = client_for().open(path, method=method, headers=headers, json={"status": "hi"})
    assert (response.status_code, response.json) == (401, {"error": "The access token is invalid"})


def test_verify_credentials_names_the_account() -> None:
    me = client_for().get("/api/v1/accounts/verify_credentials", headers=AUTH).json
    assert (me["username"], me["acct"]) == ("dispatch", "dispatch") and "source" in me


def test_a_reply_to_an_unknown_status_is_404() -> None:
    response = post(client_for(), "reply", in_reply_to_id="123")
    assert response.status_code == 404
    assert response.json == {"error": "The post you are trying to reply to does not appear to exist."}


def test_posting_beyond_the_window_is_429_with_rate_limit_headers() -> None:
    client = client_for(posts_per_window=2, window_seconds=3600)
    start_of_window(client, 3600)
    first = post(client, "one")
    assert (first.headers["X-RateLimit-Limit"], first.headers["X-RateLimit-Remaining"]) == ("2", "1")
    post(client, "two")
    refused = post(client, "three")
    assert (refused.status_code, refused.json) == (429, {"error": "Too many requests"})
    assert (refused.headers["X-RateLimit-Limit"], refused.headers["X-RateLimit-Remaining"]) == ("2", "0")
    reset = datetime.fromisoformat(refused.headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", refused.headers["X-RateLimit-Reset"])
    assert reset.minute == 0 and reset.second == 0  # windows end on the hour, aligned on the epoch
    assert post(client, "too long " * 100).status_code == 422  # validation comes before the limit
    client.post("/_sandbox/clock", json={"advance": 3600})
    assert post(client, "three").status_code == 200


def test_an_idempotent_replay_does_not_count_toward_the_limit() -> None:
    client = client_for(posts_per_window=1, window_seconds=3600)
    start_of_window(client, 3600)
    first = post(client, "one", key="k")
    assert post(client, "one", key="k").json["id"] == first.json["id"]


def test_deleting_beyond_its_throttle_is_429() -> None:
    client = client_for(deletes_per_window=2, delete_window_seconds=1800)
    start_of_window(client, 1800)
    ids = [post(client, f"status {n}").json["id"] for n in range(3)]
    assert [client.delete(f"/api/v1/statuses/{i}", headers=AUTH).status_code for i in ids] == [200, 200, 429]
    assert client.delete(f"/api/v1/statuses/{ids[2]}", headers=AUTH).headers["X-RateLimit-Remaining"] == "0"


def test_form_encoded_posts_are_taken_too() -> None:
    response = client_for().post("/api/v1/statuses", data={"status": "form post"}, headers=AUTH)
    assert response.status_code == 200 and response.json["content"] == "<p>form post</p>"


def test_an_account_s_statuses_newest_first_and_a_status_s_source_for_its_author_only() -> None:
    client = client_for()
    first = post(client, "第一条 & <一>").get_json()
    second = post(client, "第二条").get_json()
    me = client.get("/api/v1/accounts/verify_credentials", headers=AUTH).get_json()
    listed = client.get(f"/api/v1/accounts/{me['id']}/statuses", headers=AUTH).get_json()
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    assert "&amp;" in listed[1]["content"]  # content is HTML
    assert [s["id"] for s in client.get(f"/api/v1/accounts/{me['id']}/statuses?limit=1").get_json()] == [
        second["id"]
    ]
    older = client.get(f"/api/v1/accounts/{me['id']}/statuses?max_id={second['id']}").get_json()
    assert [s["id"] for s in older] == [first["id"]]
    source = client.get(f"/api/v1/statuses/{first['id']}/source", headers=AUTH).get_json()
    assert source == {"id": first["id"], "text": "第一条 & <一>", "spoiler_text": ""}
    assert client.get(f"/api/v1/statuses/{first['id']}/source").status_code == 401
    assert client.get("/api/v1/accounts/1/statuses").status_code == 404
