"""The Weibo open API, as a microblog driver.

Speaks: ``POST /2/statuses/share.json`` (form fields ``access_token``, ``status``, ``rip``; the status
must carry a link to a domain registered for the app), ``POST /2/statuses/destroy.json`` (``id``),
``GET /2/statuses/user_timeline.json`` (the lookup) and ``GET /2/account/get_uid.json`` (the probe) —
see https://open.weibo.com/wiki/2/statuses/share and https://open.weibo.com/wiki/Error_code. Errors
come as ``{"error": "...", "error_code": 20016, "request": "/2/statuses/share.json"}``.

Limits: a status holds 140 characters as Weibo counts them: a Chinese (full-width) character counts
one, two ASCII characters count one, and every link counts as a shortened ``t.cn`` link would
(``LINK_WEIGHT``). Repeated content (20017, 20019) means the status is already there: the driver looks
it up on the account's timeline and returns that post instead of failing.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

from channels.base import Health, HttpApi, Receipt
from dispatcher.errors import ChannelError, PermanentChannelError, TemporaryChannelError

LINK_PATTERN = re.compile(r"https?://[^\s\u3000-\u303f\uff00-\uffef]+")
LINK_WEIGHT = 20  # half-width units: Weibo replaces a link by a short t.cn address of ~20 characters


def weibo_length(text: str) -> int:
    """Length in Weibo characters: full-width counts 2 halves, half-width 1, a link LINK_WEIGHT."""
    halves = LINK_WEIGHT * len(LINK_PATTERN.findall(text))
    for ch in LINK_PATTERN.sub("", text):
        halves += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return math.ceil(halves / 2)


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
        "expired_token": "21327",
        "invalid_access_token": "21332",
    }

    def __init__(self, base: str, *, rip: str, hourly_allowance: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base.rstrip("/")
        self.rip = rip
        self.hourly_allowance = hourly_allowance

    @staticmethod
    def length(text: str) -> int:
        return weibo_length(text)

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
            error.retry_after = max(error.retry_after or 0.0, 3600 / self.hourly_allowance)
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
        """The account's recent status with exactly this text, from ``statuses/user_timeline``.

        Reads up to ``LOOKUP_PAGES`` pages of 100, newest first: a busy account may have posted many
        statuses since the one whose answer was lost.
        """
        for page in range(1, self.LOOKUP_PAGES + 1):
            timeline = self.request(
                "GET",
                f"{self.base}/2/statuses/user_timeline.json",
                idempotent=True,
                params={"access_token": token, "count": 100, "page": page},
            ).json()
            statuses = timeline.get("statuses", [])
            for status in statuses:
                if status.get("text") == text:
                    return Receipt(str(status.get("idstr") or status["id"]))
            if len(statuses) < 100:
                break
        return None

    def delete(self, token: str, status_id: str) -> None:
        self.request(
            "POST",
            f"{self.base}/2/statuses/destroy.json",
            idempotent=True,
            data={"access_token": token, "id": status_id},
        )

    def check(self, token: str) -> Health:
        return self.timed_probe(f"{self.base}/2/account/get_uid.json", params={"access_token": token})
