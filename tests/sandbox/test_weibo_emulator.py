"""The Weibo emulator answers as the Weibo open API v2 does (see the sources in ``sandbox/weibo.py``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from sandbox import weibo
from tests.support import start_of_window

TOKEN = "sandbox-token"
LINK = "http://127.0.0.1:5000/news/1"
SHARE = "/2/statuses/share.json"


def client_for(**options: Any) -> FlaskClient:
    return weibo.create_app(**options)[0].test_client()


def share(client: FlaskClient, status: str, **form: str) -> Any:
    return client.post(SHARE, data={"access_token": TOKEN, "status": status, "rip": "203.0.113.7", **form})


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("abc", 2),  # three half-width characters are 1.5, rounded up
        ("你好", 2),
        ("“引号”——省略…℃", 10),  # full-width punctuation and symbols above U+00FF count 1 each
        ("😀", 2),  # an emoji is two UTF-16 units, each counting 1
        ("a😀", 3),
        ("a\r\nb\r\nc", 3),  # CRLF counts as LF
        ("看 http://example.com/news/1", 12),  # a link counts 10 whatever its length up to 140
        ("https://example.com/x", 10),
        ("http://example.com/" + "a" * 200, 50),  # 219 bytes: (219 - 140 + 20) / 2, rounded up
        ("http://weibo.com/1234567890", 14),  # Sina's own link of 27 bytes: its real length
        ("http://weibo.com/" + "1" * 40, 10),  # over 41 bytes: as any link
        ("http://t.cn/A6abcdE http://t.cn/A6abcdF", 20),  # t.cn links count as their text: 39 bytes
        ("http://localhost:5000/news/1", 14),  # no dot in the host: not a link to the kit, plain text
        ("我司CEO与我司吉祥物...好大一坨！", 16),  # checked against Weibo by WeCase's tests
        ("\u3000\u3000\u3000Ｔｅｓｔｉｎｇ\u3000\u3000\u3000\u3000", 14),
        ("   Test   ", 5),
    ],
)
def test_length_is_counted_as_weibo_counts_it(text: str, length: int) -> None:
    assert weibo.weibo_length(text) == length


def test_a_status_of_140_is_taken_and_one_of_141_refused() -> None:
    client = client_for()
    assert weibo.weibo_length("长" * 129 + " " + LINK) == 140  # 129 + 0.5 + 10, rounded up
    assert share(client, "长" * 129 + " " + LINK).status_code == 200
    refused = share(client, "长" * 131 + LINK)  # 131 + 10
    assert refused.status_code == 400
    assert refused.json == {
        "error": "Text too long, please input text less than 140 characters!",
        "error_code": 20012,
        "request": SHARE,
    }


@pytest.mark.parametrize(
    ("form", "code", "status"),
    [
        ({"access_token": "unknown", "status": LINK, "rip": "1.2.3.4"}, 21332, 401),
        ({"access_token": "old", "status": LINK, "rip": "1.2.3.4"}, 21327, 401),
        ({"status": LINK, "rip": "1.2.3.4"}, 10006, 400),
        ({"access_token": TOKEN, "rip": "1.2.3.4"}, 10016, 400),
        ({"access_token": TOKEN, "status": LINK}, 10016, 400),
        ({"access_token": TOKEN, "status": LINK, "rip": "not-an-ip"}, 10017, 400),
        ({"access_token": TOKEN, "status": "预警 http://example.com/x", "rip": "1.2.3.4"}, 10017, 400),
        ({"access_token": TOKEN, "status": "预警 没有链接", "rip": "1.2.3.4"}, 10017, 400),
        ({"access_token": TOKEN, "status": "#暴雨预警# " + LINK, "rip": "1.2.3.4"}, 10017, 400),
    ],
)
def test_share_refuses_with_weibo_codes_and_statuses(form: dict[str, str], code: int, status: int) -> None:
    client = client_for(expired_tokens={"old"})
    response = client.post(SHARE, data=form)
    assert (response.status_code, response.json["error_code"], response.json["request"]) == (
        status,
        code,
        SHARE,
    )


def test_unknown_and_expired_tokens_say_which() -> None:
    client = client_for(tokens={"good": 7, "old": 8}, expired_tokens={"old"})
    assert client.get("/2/account/get_uid.json?access_token=bad").json["error"] == "invalid_access_token"
    assert client.get("/2/account/get_uid.json?access_token=old").json["error"] == "expired_token"
    assert client.get("/2/account/get_uid.json?access_token=good").json == {"uid": 7}


def test_a_status_without_a_safe_domain_link_is_refused_as_weibo_words_it() -> None:
    client = client_for(safe_domains=("news.example.org",))
    refused = share(client, "预警 http://127.0.0.1:5000/news/1")
    assert refused.json["error"] == "text not find domain!" and refused.json["error_code"] == 10017
    assert (
        share(client, "预警 https://www.news.example.org/a").status_code == 200
    )  # subdomains are the domain's


def test_a_topic_between_hash_signs_is_refused_but_a_link_fragment_is_not() -> None:
    client = client_for()
    assert share(client, "今日 #暴雨预警# " + LINK).json["error_code"] == 10017
    assert share(client, "今日 " + LINK + "#section").status_code == 200


def test_links_come_back_shortened_in_the_answer_and_the_timeline() -> None:
    client = client_for()
    sent = "预警 " + LINK + " 详情 https://example.com/more"
    answer = share(client, sent).json
    assert answer["text"] != sent
    assert re.fullmatch(r"预警 http://t\.cn/[0-9A-Za-z]{7} 详情 http://t\.cn/[0-9A-Za-z]{7}", answer["text"])
    timeline = client.get(f"/2/statuses/user_timeline.json?access_token={TOKEN}").json
    assert timeline["statuses"][0]["text"] == answer["text"]
    short = answer["text"].split()[1]
    expanded = client.get(f"/2/short_url/expand.json?access_token={TOKEN}&url_short={short}").json
    assert expanded["urls"][0]["url_long"] == LINK


def test_the_same_link_shortens_the_same_way_and_t_cn_links_stay() -> None:
    client = client_for()
    first = share(client, "一 " + LINK).json["text"]
    second = share(client, "二 " + LINK + " http://t.cn/A6abcdE").json["text"]
    assert first.split()[1] == second.split()[1] and second.endswith(" http://t.cn/A6abcdE")


def test_repeated_content_is_refused_until_the_first_is_deleted() -> None:
    client = client_for()
    first = share(client, "预警 " + LINK).json
    again = share(client, "预警 " + LINK)
    assert (again.status_code, again.json["error_code"], again.json["error"]) == (
        400,
        20019,
        "repeat content!",
    )
    client.post("/2/statuses/destroy.json", data={"access_token": TOKEN, "id": first["idstr"]})
    assert share(client, "预警 " + LINK).status_code == 200


def test_posting_beyond_the_hourly_limit_is_too_fast_until_the_next_hour() -> None:
    client = client_for(hourly_limit=3)
    start_of_window(client, 3600)
    for n in range(3):
        assert share(client, f"第{n}条 {LINK}").status_code == 200
    refused = share(client, "第3条 " + LINK)
    assert (refused.status_code, refused.json["error_code"]) == (400, 20016)
    assert refused.json["error"] == "update weibo too fast!"
    client.post("/_sandbox/clock", json={"advance": 3600})
    assert share(client, "第3条 " + LINK).status_code == 200


def test_the_request_limit_answers_10023_with_403() -> None:
    client = client_for(requests_per_hour=2)
    start_of_window(client, 3600)
    for _ in range(2):
        assert client.get(f"/2/account/get_uid.json?access_token={TOKEN}").status_code == 200
    refused = client.get(f"/2/account/get_uid.json?access_token={TOKEN}")
    assert (refused.status_code, refused.json["error_code"]) == (403, 10023)


def test_destroy_deletes_once_and_refuses_unknown_and_others_ids() -> None:
    client = client_for(tokens={TOKEN: 1, "other": 2})
    status_id = share(client, "预警 " + LINK).json["idstr"]
    theirs = client.post("/2/statuses/destroy.json", data={"access_token": "other", "id": status_id})
    assert theirs.json["error_code"] == 20102
    gone = client.post("/2/statuses/destroy.json", data={"access_token": TOKEN, "id": status_id})
    assert gone.status_code == 200 and gone.json["idstr"] == status_id
    again = client.post("/2/statuses/destroy.json", data={"access_token": TOKEN, "id": status_id})
    assert (again.status_code, again.json["error_code"]) == (400, 20101)
    assert again.json["error"] == "target weibo does not exist!"
    missing = client.post("/2/statuses/destroy.json", data={"access_token": TOKEN})
    assert missing.json["error_code"] == 10016


def test_timeline_is_newest_first_paged_and_only_the_callers_own() -> None:
    client = client_for(tokens={TOKEN: 1, "other": 2})
    ids = [share(client, f"第{n}条 {LINK}").json["id"] for n in range(5)]
    client.post(SHARE, data={"access_token": "other", "status": "别人 " + LINK, "rip": "1.2.3.4"})
    page = client.get(f"/2/statuses/user_timeline.json?access_token={TOKEN}&count=2&page=2").json
    assert page["total_number"] == 5
    assert [s["id"] for s in page["statuses"]] == [ids[2], ids[1]]
    assert re.fullmatch(
        r"\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2} \+0800 \d{4}", page["statuses"][0]["created_at"]
    )
    assert page["statuses"][0]["user"]["id"] == 1 and page["statuses"][0]["mid"] == str(ids[2])
    others = client.get(f"/2/statuses/user_timeline.json?access_token={TOKEN}&uid=2")
    assert others.json["error_code"] == 21335


def test_the_record_keeps_the_text_as_sent_and_as_shown() -> None:
    app, state = weibo.create_app()
    client = app.test_client()
    sent = "预警 " + LINK
    answer = share(client, sent).json
    client.post("/2/statuses/destroy.json", data={"access_token": TOKEN, "id": answer["idstr"]})
    share_entry, destroy_entry = client.get("/_sandbox/received").json
    assert share_entry["action"] == "share" and share_entry["status"] == sent
    assert share_entry["shown"] == answer["text"] and share_entry["rip"] == "203.0.113.7"
    assert (share_entry["id"], share_entry["uid"]) == (answer["idstr"], 1000001)
    assert destroy_entry == {**destroy_entry, "action": "destroy", "id": answer["idstr"], "uid": 1000001}
    assert len(state.received) == 2


def test_reset_forgets_statuses_so_the_same_text_can_be_posted_again() -> None:
    client = client_for()
    share(client, "预警 " + LINK)
    client.post("/_sandbox/reset")
    assert share(client, "预警 " + LINK).status_code == 200
    assert client.get(f"/2/statuses/user_timeline.json?access_token={TOKEN}").json["total_number"] == 1
