"""The Weibo open API, as a microblog driver.

Speaks: ``POST /2/statuses/share.json`` (form fields ``access_token``, ``status``, ``rip``; the status
must carry a link to a domain registered for the app), ``POST /2/statuses/destroy.json`` (``id``),
``GET /2/statuses/user_timeline.json`` (the lookup) and ``GET /2/account/get_uid.json`` (the probe) —
see https://open.weibo.com/wiki/2/statuses/share and https://open.weibo.com/wiki/Error_code. Errors
come as ``{"error": "...", "error_code": 20016, "request": "/2/statuses/share.json"}``.

What the real API does that shapes this driver:

- **Length** is counted as Sina's own counter does (the ``count`` kit of weibo.com's editor): each
  UTF-16 unit up to U+00FF counts half, every other unit one (full-width punctuation “ ” — … ℃ counts
  one, an emoji two); each ``http(s)://`` link counts 10 when it is at most 140 half-width units long,
  else (length − 140 + 20) / 2; links to weibo.com, weibo.cn, t.sina.com.cn and t.sina.cn of at most 41
  bytes, and ``t.cn`` links, count as the text they are; ``\r\n`` counts as ``\n``; the total is rounded
  up. 140 is the limit (20012 beyond it).
- **Links come back shortened** to ``http://t.cn/…`` in every answer and timeline, so a status is
  recognised by its text with every link taken out, never by the text as sent.
- **``share.json`` refuses topics** (``#话题#``, 10017): ``#`` is sent as the full-width ``＃``.
- **``share.json`` refuses a status whose links are not on the app's safe domain** (10017 "text not
  find domain!"): links are checked against ``DISPATCH_MICROBLOG__SAFE_DOMAINS`` at approval and probe.
- **Repeated content** (20017, 20019) means the status is already there: it is looked up on the
  account's timeline and returned instead of failing. **Deleting** a status that is gone (20101) is done.
- **Hourly limits** (10022–10024, 20016) are waits the platform imposes: Weibo counts requests per
  clock hour, refused ones included, so the delivery waits until the hour turns; no attempt is spent.
"""

from __future__ import annotations

import html
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from channels.base import Health, HttpApi, Receipt
from dispatcher.errors import ChannelError, PermanentChannelError, TemporaryChannelError

# A link as weibo.com's counter sees one: http(s)://, a host of dotted labels (``localhost`` is text),
# then URL characters (CJK text or full-width punctuation ends it).
LINK_PATTERN = re.compile(r"https?://[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)+[-A-Za-z0-9_$.+!*()/\\,:;@&=?~#%]*")
# Weibo's own hosts keep their real length when at most 41 bytes (an http:// link only); t.cn is text.
OWN_LINK = re.compile(r"http://(?:weibo\.com|weibo\.cn|t\.sina\.com\.cn|t\.sina\.cn)\b")
SHORT_LINK = re.compile(r"http://t\.cn\b")


def _halves(text: str) -> int:
    """Half-width units of plain text: a UTF-16 unit up to U+00FF is one half, any other two."""
    total = 0
    for ch in text:
        point = ord(ch)
        total += 1 if point <= 0xFF else (4 if point > 0xFFFF else 2)
    return total


def _link_halves(link: str) -> int:
    own = _halves(link)
    if SHORT_LINK.match(link) or (OWN_LINK.match(link) and len(link.encode()) <= 41):
        return own
    return 20 if own <= 140 else own - 140 + 20


def weibo_length(text: str) -> int:
    """Length in Weibo characters, as weibo.com's counter gives it."""
    text = text.replace("\r\n", "\n")
    halves, position = 0, 0
    for match in LINK_PATTERN.finditer(text):
        halves += _halves(text[position : match.start()]) + _link_halves(match.group())
        position = match.end()
    halves += _halves(text[position:])
    return math.ceil(halves / 2)


def without_links(text: str) -> str:
    """The text as Weibo keeps it recognisable: links (which it shortens) taken out, spaces evened."""
    return " ".join(LINK_PATTERN.sub("\x00", text.replace("\r\n", "\n")).split())


class WeiboApi(HttpApi):
    name = "weibo"
    max_length = 140
    LOOKUP_PAGES = 5
    # Rate limits and "posting too often": try again later, spaced to the account's hourly allowance.
    rate_codes = frozenset({"10022", "10023", "10024", "20016"})
    temporary_codes = frozenset({"10001", "10002", "10009"}) | rate_codes
    # Repeated or similar content: the status is already there; look it up instead of failing.
    repeat_codes = frozenset({"20017", "20019"})
    # Bad, expired or revoked tokens: nothing will work until someone renews the token.
    credential_codes = frozenset({"21314", "21315", "21316", "21317", "21327", "21332"})
    permanent_codes = frozenset({"10006", "10013", "10014", "20012"}) | repeat_codes | credential_codes
    # Some gateways in front of the API drop error_code; the error text says the same.
    text_codes = {
        "repeat content": "20019",
        "repeated weibo text": "20017",
        "out of rate limit": "10023",
        "update weibo too fast": "20016",
        "target weibo does not exist": "20101",
        "expired_token": "21327",
        "invalid_access_token": "21332",
    }

    def __init__(self, base: str, *, rip: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base.rstrip("/")
        self.rip = rip

    @staticmethod
    def length(text: str) -> int:
        return weibo_length(text)

    @staticmethod
    def prepare(text: str) -> str:
        """The text as share.json takes it: a ``#`` would open a topic, which the API refuses (10017)."""
        return text.replace("#", "＃")

    def provider_code(self, response: Any) -> str | None:
        try:
            body = response.json()
            code, text = body.get("error_code"), str(body.get("error", ""))
        except (ValueError, AttributeError):
            code, text = None, response.text
        if code is not None:
            return str(code)
        lowered = text.lower()
        return next((c for phrase, c in self.text_codes.items() if phrase in lowered), None)

    def error_for(self, response: Any) -> ChannelError:
        error = super().error_for(response)
        if error.code in self.rate_codes and isinstance(error, TemporaryChannelError):
            # Weibo counts requests per clock hour (its rate_limit_status resets on the hour), refused
            # ones included: asking again before the hour turns only spends the next hour's allowance.
            # A Retry-After (a gateway in front of the API saying when) wins.
            if error.retry_after is None:
                now = datetime.now(UTC)
                next_hour = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
                error.retry_after = (next_hour - now).total_seconds() + 5
            error.wait = True
        if error.code in self.credential_codes:
            error.alert = True
        return error

    def post(self, token: str, text: str, key: str) -> Receipt:
        try:
            status = self.request(
                "POST",
                f"{self.base}/2/statuses/share.json",
                data={"access_token": token, "status": text, "rip": self.rip},
            ).json()
        except PermanentChannelError as exc:
            if exc.code not in self.repeat_codes:
                raise
            found = self.find(token, text, key)  # posted before (an answer lost, a worker killed)
            if found is None:
                raise
            return Receipt(found.provider_id, {"already_posted": True})
        return Receipt(str(status.get("idstr") or status["id"]))

    def find(self, token: str, text: str, key: str) -> Receipt | None:
        """The account's recent status with this text, from ``statuses/user_timeline``.

        Weibo shows every link as ``t.cn``, so statuses are compared with their links taken out; where
        that leaves several (a tip broadcast again, differing only in its link), their links are
        expanded with ``short_url/expand`` and compared with ours. Reads up to ``LOOKUP_PAGES`` pages of
        100, newest first: a busy account may have posted many statuses since the one whose answer was
        lost.
        """
        wanted = without_links(text)
        candidates = []
        for page in range(1, self.LOOKUP_PAGES + 1):
            timeline = self.request(
                "GET",
                f"{self.base}/2/statuses/user_timeline.json",
                idempotent=True,
                params={"access_token": token, "count": 100, "page": page},
            ).json()
            statuses = timeline.get("statuses", [])
            candidates += [
                s for s in statuses if without_links(html.unescape(str(s.get("text", "")))) == wanted
            ]
            if len(statuses) < 100:
                break
        ours = LINK_PATTERN.findall(text)
        for status in candidates:
            if not ours or self.links_of(token, str(status.get("text", ""))) == ours:
                return Receipt(str(status.get("idstr") or status["id"]))
        return None

    def links_of(self, token: str, shown: str) -> list[str]:
        """The links of a status as posted: its t.cn links expanded (``/2/short_url/expand.json``)."""
        links = LINK_PATTERN.findall(html.unescape(shown))
        short = [link for link in links if SHORT_LINK.match(link)]
        if not short:
            return links
        answer = self.request(
            "GET",
            f"{self.base}/2/short_url/expand.json",
            idempotent=True,
            params={"access_token": token, "url_short": short},
        ).json()
        expanded = {u.get("url_short"): u.get("url_long") for u in answer.get("urls", []) if u.get("result")}
        return [expanded.get(link, link) for link in links]

    def delete(self, token: str, status_id: str) -> None:
        try:
            self.request(
                "POST",
                f"{self.base}/2/statuses/destroy.json",
                idempotent=True,
                data={"access_token": token, "id": status_id},
            )
        except PermanentChannelError as exc:
            if exc.code != "20101":  # the status does not exist (any more): deleted is done
                raise

    def check(self, token: str) -> Health:
        return self.timed_probe(f"{self.base}/2/account/get_uid.json", params={"access_token": token})
