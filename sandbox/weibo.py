"""An emulator of the Weibo open API v2 (api.weibo.com) endpoints a publisher posts through.

Real API and its documentation:

- ``POST /2/statuses/share.json``: https://open.weibo.com/wiki/2/statuses/share (``access_token``,
  ``status``, ``rip`` required; the text "不超过140个汉字", "不能包含“#话题词#”", and must hold "至少一个
  第三方分享到微博的网页URL … 该第三方绑定域下的URL", the app's 安全域名);
- ``POST /2/statuses/destroy.json``: https://open.weibo.com/wiki/2/statuses/destroy;
- ``GET /2/statuses/user_timeline.json``: https://open.weibo.com/wiki/2/statuses/user_timeline;
- ``GET /2/account/get_uid.json``: https://open.weibo.com/wiki/2/account/get_uid;
- ``GET /2/short_url/expand.json``: https://open.weibo.com/wiki/2/short_url/expand;
- error codes: https://open.weibo.com/wiki/Error_code and the OAuth2 table
  (https://cnblogs.com/fx2008/p/3278061.html mirrors it: ``expired_token`` 21327);
- rate limits: https://open.weibo.com/wiki/Rate-limiting ("发微博接口单授权用户每小时只能请求 30 次").

How the length is counted: weibo.com's own editor counter, the STK kit ``kit.extra.count`` (its source
circulates in many public copies, e.g. the file holding ``STK.register('kit.extra.count', …)`` with
``var min = 41,max = 140,surl = 20``; WeCase/WeCase ``src/TweetUtils.py`` restates it "bug-for-bug compatible
with Sina's", and ``src/TweetUtils_test.py`` holds lengths checked against Weibo). It is written again here.

Observed answers used (the wiki's tables give codes, clients' code shows the bodies and statuses):

- ``{"error":"text not find domain!","error_code":10017,"request":"/2/statuses/share.json"}``:
  github.com/sinaweibosdk/weibo_ios_sdk issue 311;
- ``{"error":"update weibo too fast!","error_code":20016,…}`` with HTTP 400: a client's parser comment
  quoting the answer (``SinaWeiboError`` in a public Android app);
- ``{"error":"repeat content!","error_code":20019,…}``: a public iOS client's comment;
- ``{"error":"target weibo does not exist!","error_code":20101,…}`` with HTTP 400: a public client test
  quoting the real answer;
- ``{"error":"User requests out of rate limit!","error_code":10023,…}``: sinaweibosdk/weibo_android_sdk
  issue 467, whose ``rate_limit_status`` answer also shows windows ending on the hour; HTTP 403 for it:
  werbhelius/Pixel-Web issue 3;
- ``invalid_access_token`` 21332 and ``expired_token`` 21327 bodies: public clients' comments;
- 21335 "request uid's value must be the current user" on ``user_timeline``: WeCase/WeCase issue 119.

What is emulated: tokens (known, expired, unknown), the share checks in this order: token (10006, 21327,
21332), the hourly posting limit (20016), ``status`` and ``rip`` present (10016), ``rip`` an IPv4 address
(10017), length (20012), a link on a safe domain (10017 "text not find domain!"), no ``#topic#`` (10017),
not the same text as one of the account's statuses (20019); then Weibo's link
shortening (every http(s) link in a stored status becomes ``http://t.cn/`` + 7 characters, so the text
read back differs from the text sent), deletion and the newest-first timeline. Not emulated: pictures
(``pic`` is ignored), visibility, comments, reposts. Not settled by any source found: the HTTP status of the
token errors (401 here), the text of the topic and ``rip`` refusals, and whether a deleted status still
makes its text "repeat content" (it does not here).

The harness's ``/_sandbox/clock`` drives the hourly windows, and its ``/_sandbox/reset`` also forgets
statuses, links and counters here.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import math
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request

from sandbox.emulator import EmulatorState, emulator_app

MAX_LENGTH = 140
BEIJING = timezone(timedelta(hours=8))
WEIBO_TIME = "%a %b %d %H:%M:%S %z %Y"

# The STK kit's link pattern; later copies of the kit (and the server, which shortens https links too)
# accept https as well, so both schemes are counted as links.
STK_LINK = re.compile(
    r"https?://[a-zA-Z0-9]+(?:\.[a-zA-Z0-9]+)+[-A-Z0-9a-z_$.+!*()/,:;@&=?~#%]*", re.IGNORECASE
)
# The kit's host tests, kept as written: anchored on "http://" and with unescaped dots (any character).
STK_SHORT_LINK = re.compile(r"^(?:http://t.cn)")
STK_SINA_LINK = re.compile(r"^(?:http://)+(?:t.sina.com.cn|t.sina.cn|weibo.com|weibo.cn)")
STK_SINA_MAX = 41  # the kit's "min": Sina's own links up to this many bytes count their real length
STK_LINK_MAX = 140  # the kit's "max": longer links count the overflow on top of "surl"
STK_LINK_UNITS = 20  # the kit's "surl" (half-width units): what a link counts, the length of a t.cn link

# Links as the server finds them to shorten and to check against the safe domains: a scheme, then URL
# characters (RFC 3986); full-width punctuation, spaces and CJK text end a link.
LINK = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
SHORT_HOST = "t.cn"
BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
# "#话题词#": a topic is text between two hash signs (the share page forbids it; links are taken out first,
# since "#" may be a link's fragment).
TOPIC = re.compile(r"#[^#\r\n]+#")


def half_width_units(text: str) -> int:
    """STK's ``bLength``: each UTF-16 code unit counts 1, and 1 more when above U+00FF."""
    units = 0
    for char in text:
        code = ord(char)
        if code > 0xFFFF:
            units += 4  # a surrogate pair: two units, both above U+00FF
        elif code > 0xFF:
            units += 2
        else:
            units += 1
    return units


def weibo_length(text: str) -> int:
    """The length Weibo shows and enforces, counted as the STK ``kit.extra.count`` counts it."""
    # The kit turns CRLF into LF first ("firefox回车算1字符\n，IE算俩\n\r").
    text = text.replace("\r\n", "\n")
    rest = text
    links = 0
    for link in STK_LINK.findall(text):
        units = half_width_units(link)
        if STK_SHORT_LINK.match(link):
            # The kit skips t.cn links without taking them out of the text: they count as plain text.
            continue
        if STK_SINA_LINK.match(link):
            links += units if units <= STK_SINA_MAX else _link_units(units)
        else:
            links += _link_units(units)
        # As JavaScript's String.replace with a string: the first occurrence only.
        rest = rest.replace(link, "", 1)
    return math.ceil((links + half_width_units(rest)) / 2)


def _link_units(units: int) -> int:
    """What a link counts in the kit: ``surl`` up to ``max`` bytes, then the overflow on top."""
    return STK_LINK_UNITS if units <= STK_LINK_MAX else units - STK_LINK_MAX + STK_LINK_UNITS


def create_app(
    tokens: dict[str, int] | None = None,
    *,
    safe_domains: tuple[str, ...] = ("127.0.0.1", "localhost"),
    expired_tokens: set[str] | None = None,
    hourly_limit: int = 30,
    requests_per_hour: int | None = None,
) -> tuple[Flask, EmulatorState]:
    """The Weibo emulator: ``tokens`` maps access tokens to uids; ``safe_domains`` are the app's 安全域名;
    ``hourly_limit`` is the posting limit per account per clock hour (share requests, refused ones too);
    ``requests_per_hour``, when set, limits all of an account's API requests per clock hour (10023)."""
    tokens = tokens or {"sandbox-token": 1000001}
    expired = set(expired_tokens or ())
    app, state = emulator_app("weibo", _injected_error)
    clock = state.clock
    lock = threading.RLock()
    statuses: dict[str, dict[str, Any]] = {}
    short_links: dict[str, str] = {}
    long_links: dict[str, str] = {}
    posts_per_hour: dict[tuple[int, int], int] = {}
    calls_per_hour: dict[tuple[int, int], int] = {}
    ids = itertools.count(5200000000000001)

    def fail(code: int, message: str, status: int = 400) -> tuple[Response, int]:
        return jsonify({"error": message, "error_code": code, "request": request.path}), status

    def caller() -> int | tuple[Response, int]:
        """The uid the request's token stands for, or Weibo's refusal."""
        token = request.values.get("access_token", "")
        if not token:
            return fail(10006, "Source paramter (appkey) is missing")
        if token in expired:
            return fail(21327, "expired_token", 401)
        uid = tokens.get(token)
        if uid is None:
            return fail(21332, "invalid_access_token", 401)
        if requests_per_hour is not None:
            with lock:
                window = (uid, int(clock.now() // 3600))
                calls_per_hour[window] = calls_per_hour.get(window, 0) + 1
                over = calls_per_hour[window] > requests_per_hour
            if over:
                # Weibo answers its request limit with HTTP 403 (Pixel-Web issue 3).
                return fail(10023, "User requests out of rate limit!", 403)
        return uid

    def shorten(url: str) -> str:
        """Weibo's t.cn link for ``url``: 7 base-62 characters, the same for the same URL."""
        if url not in short_links:
            digest = int.from_bytes(hashlib.sha256(url.encode()).digest()[:8], "big")
            for salt in itertools.count():
                number = digest + salt
                code = "".join(BASE62[(number // 62**i) % 62] for i in range(7))
                if code not in long_links:
                    break
            short_links[url] = f"http://{SHORT_HOST}/{code}"
            long_links[code] = url
        return short_links[url]

    def shown(text: str) -> str:
        """The text as Weibo stores and returns it: every link but t.cn's replaced by its t.cn link."""
        return LINK.sub(lambda m: m[0] if _host(m[0]) == SHORT_HOST else shorten(m[0]), text)

    def on_safe_domain(url: str) -> bool:
        host = _host(url)
        return any(host == domain or host.endswith("." + domain) for domain in safe_domains)

    def user(uid: int) -> dict[str, Any]:
        return {"id": uid, "idstr": str(uid), "screen_name": f"user{uid}", "name": f"user{uid}"}

    def _forget() -> None:
        # The harness's reset forgets what was received; a fresh start also means no statuses, links or
        # counters, or one test's posts would make the next one's "repeat content".
        with lock:
            statuses.clear()
            short_links.clear()
            long_links.clear()
            posts_per_hour.clear()
            calls_per_hour.clear()

    state.on_reset.append(_forget)

    @app.post("/2/statuses/share.json")
    def share() -> Any:
        uid = caller()
        if not isinstance(uid, int):
            return uid
        with lock:
            window = (uid, int(clock.now() // 3600))
            # The limit is on requests to the posting interface ("请求 30 次"), per clock hour: the
            # rate_limit_status answer in weibo_android_sdk issue 467 resets on the hour.
            posts_per_hour[window] = posts_per_hour.get(window, 0) + 1
            if posts_per_hour[window] > hourly_limit:
                return fail(20016, "update weibo too fast!")
            for field in ("status", "rip"):
                if not request.form.get(field):
                    return fail(10016, f"Miss required parameter ({field}) , see doc for more info")
            text = request.form["status"]
            rip = request.form["rip"]
            try:
                ipaddress.IPv4Address(rip)
            except ValueError:
                # rip is "形如:211.156.0.1": an IPv4 address.
                return fail(10017, _invalid("rip", "an IPv4 address", rip))
            if weibo_length(text) > MAX_LENGTH:
                return fail(20012, "Text too long, please input text less than 140 characters!")
            if not any(on_safe_domain(url) for url in LINK.findall(text)):
                return fail(10017, "text not find domain!")
            if TOPIC.search(LINK.sub("", text)):
                return fail(10017, _invalid("status", "text without #topic#", text))
            stored = shown(text)
            if any(s["user"]["id"] == uid and s["text"] == stored for s in statuses.values()):
                # Recorded before it is refused: a repeat the platform absorbed is still an attempt
                # to post twice (the fault suite counts it where it happens).
                state.keep({"action": "repeat_refused", "uid": uid, "status": text, "rip": rip})
                return fail(20019, "repeat content!")
            status_id = next(ids)
            status = {
                # Weibo's time format, in Beijing time: "Wed Oct 24 23:49:17 +0800 2012".
                "created_at": datetime.fromtimestamp(clock.now(), BEIJING).strftime(
                    "%a %b %d %H:%M:%S %z %Y"
                ),
                "id": status_id,
                "idstr": str(status_id),
                "mid": str(status_id),
                "text": stored,
                # Posts from an app not yet reviewed show as such (michaelliao/sinaweibopy issue 59).
                "source": '<a href="https://app.weibo.com" rel="nofollow">未通过审核应用</a>',
                "favorited": False,
                "truncated": False,
                "in_reply_to_status_id": "",
                "in_reply_to_user_id": "",
                "in_reply_to_screen_name": "",
                "geo": None,
                "reposts_count": 0,
                "comments_count": 0,
                "attitudes_count": 0,
                "pic_urls": [],
                "user": user(uid),
            }
            statuses[str(status_id)] = status
        state.keep(
            {"action": "share", "id": str(status_id), "uid": uid, "status": text, "rip": rip, "shown": stored}
        )
        return jsonify(status)

    @app.post("/2/statuses/destroy.json")
    def destroy() -> Any:
        uid = caller()
        if not isinstance(uid, int):
            return uid
        status_id = request.form.get("id", "")
        if not status_id:
            return fail(10016, "Miss required parameter (id) , see doc for more info")
        with lock:
            status = statuses.get(status_id)
            if status is None:
                return fail(20101, "target weibo does not exist!")
            if status["user"]["id"] != uid:
                return fail(20102, "Not your own weibo!")
            del statuses[status_id]
        state.keep({"action": "destroy", "id": status_id, "uid": uid})
        return jsonify(status)

    @app.get("/2/statuses/user_timeline.json")
    def user_timeline() -> Any:
        uid = caller()
        if not isinstance(uid, int):
            return uid
        asked = request.args.get("uid")
        if asked and asked != str(uid):
            # Only the token's own timeline is served to third-party apps (WeCase issue 119).
            return fail(21335, "request uid's value must be the current user")
        try:
            count = min(max(int(request.args.get("count", 20)), 1), 100)
            page = max(int(request.args.get("page", 1)), 1)
        except ValueError:
            return fail(10017, _invalid("count", "int", request.args.get("count", "")))
        with lock:
            mine = sorted((s for s in statuses.values() if s["user"]["id"] == uid), key=lambda s: -s["id"])
        return jsonify(
            {
                "statuses": mine[(page - 1) * count : page * count],
                "total_number": len(mine),
                "previous_cursor": 0,
                "next_cursor": 0,
            }
        )

    @app.get("/2/account/get_uid.json")
    def get_uid() -> Any:
        uid = caller()
        if not isinstance(uid, int):
            return uid
        return jsonify({"uid": uid})

    @app.get("/2/short_url/expand.json")
    def expand() -> Any:
        uid = caller()
        if not isinstance(uid, int):
            return uid
        urls = []
        for short in request.args.getlist("url_short"):
            long = (
                long_links.get(short.rstrip("/").rsplit("/", 1)[-1]) if _host(short) == SHORT_HOST else None
            )
            urls.append({"url_short": short, "url_long": long or "", "type": 0, "result": long is not None})
        return jsonify({"urls": urls})

    return app, state


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _invalid(parameter: str, expected: str, got: str) -> str:
    """Weibo's 10017 text (Error_code wiki)."""
    return (
        f"Parameter ({parameter})'s value invalid, expect ({expected}) , but get ({got}) , "
        "see doc for more info"
    )


def _injected_error(status: int) -> Response:
    """Injected faults shaped as Weibo's system errors."""
    code, message = {
        403: (10023, "User requests out of rate limit!"),
        429: (10023, "User requests out of rate limit!"),
        503: (10002, "Service unavailable"),
    }.get(status, (10001, "System error"))
    return jsonify({"error": message, "error_code": code, "request": request.path})
