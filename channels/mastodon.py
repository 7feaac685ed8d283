"""The Mastodon API, as a microblog driver for offices on federated networks.

Speaks: ``POST /api/v1/statuses`` (``status``, ``visibility``) with an ``Idempotency-Key`` header,
``DELETE /api/v1/statuses/:id`` and ``GET /api/v1/accounts/verify_credentials`` (the probe), with an
OAuth bearer token — see https://docs.joinmastodon.org/methods/statuses/. Errors come as
``{"error": "..."}``: 401 for a bad token, 422 for a refused status (too long, blank), 429 when rate
limited (``X-RateLimit-Reset`` says when the window reopens).

The server remembers an ``Idempotency-Key`` for an hour and answers a repeated post with the first
status, so the delivery's key makes a resend after a lost answer safe without a lookup. Limits: 500
characters by default (the instance may allow more), every link counted as 23.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

from channels.base import Health, HttpApi, Receipt
from dispatcher.errors import ChannelError, PermanentChannelError, TemporaryChannelError

# A link as Mastodon's StatusLengthValidator finds one (twitter-text's rules): a host ending in an
# alphabetic top-level domain; ``http://127.0.0.1/…`` or ``http://localhost/…`` is counted as text.
LINK_PATTERN = re.compile(r"https?://(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/\S*)?")
MENTION = re.compile(r"@(\w+)@[\w.-]+\w")
LINK_LENGTH = 23


def mastodon_length(text: str) -> int:
    """Characters as the server counts them: a link is 23, ``@user@domain`` counts as ``@user``."""
    return len(MENTION.sub(r"@\1", LINK_PATTERN.sub("x" * LINK_LENGTH, text)))


class MastodonApi(HttpApi):
    name = "mastodon"
    max_length = 500

    def __init__(self, base: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base = base.rstrip("/")

    @staticmethod
    def length(text: str) -> int:
        return mastodon_length(text)

    @staticmethod
    def prepare(text: str) -> str:
        return text  # plain text: the server escapes it into the status's HTML

    def error_for(self, response: Any) -> ChannelError:
        error = super().error_for(response)
        if response.status_code == 401:
            error.alert = True
        reset = response.headers.get("X-RateLimit-Reset")
        if isinstance(error, TemporaryChannelError) and reset and error.retry_after is None:
            try:
                when = datetime.fromisoformat(reset.replace("Z", "+00:00"))
                error.retry_after = max(0.0, (when - datetime.now(UTC)).total_seconds())
            except ValueError:
                pass
        return error

    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def post(self, token: str, text: str, key: str) -> Receipt:
        status = self.request(
            "POST",
            f"{self.base}/api/v1/statuses",
            headers={**self._auth(token), "Idempotency-Key": key},
            json={"status": text, "visibility": "public"},
        ).json()
        return Receipt(str(status["id"]), {"url": status.get("url")})

    def find(self, token: str, text: str, key: str) -> Receipt | None:
        """The account's recent status with exactly this text, or None.

        A repeat with the same ``Idempotency-Key`` is answered with the status it made (for an hour), so a
        send in doubt may simply be sent again; but when its revision was corrected or withdrawn
        meanwhile, it must not be sent again, and the question is only whether it landed. Mastodon has
        no search by key: the account's latest statuses (``GET /api/v1/accounts/:id/statuses``, 40 at
        most) are read, and a candidate whose ``content`` reads as the text is confirmed by its source
        (``GET /api/v1/statuses/:id/source``), since ``content`` is HTML."""
        headers = self._auth(token)
        me = self.request(
            "GET", f"{self.base}/api/v1/accounts/verify_credentials", idempotent=True, headers=headers
        ).json()
        recent = self.request(
            "GET",
            f"{self.base}/api/v1/accounts/{me['id']}/statuses",
            idempotent=True,
            headers=headers,
            params={"limit": 40},
        ).json()
        wanted = _plain(text)
        for status in recent:
            if _plain(_text_of(str(status.get("content") or ""))) != wanted:
                continue
            source = self.request(
                "GET", f"{self.base}/api/v1/statuses/{status['id']}/source", idempotent=True, headers=headers
            ).json()
            if source.get("text") == text:
                return Receipt(str(status["id"]), {"url": status.get("url")})
        return None

    def delete(self, token: str, status_id: str) -> None:
        try:
            self.request(
                "DELETE",
                f"{self.base}/api/v1/statuses/{status_id}",
                idempotent=True,
                headers=self._auth(token),
            )
        except PermanentChannelError as exc:
            if exc.code != 404:  # already deleted
                raise

    def check(self, token: str) -> Health:
        return self.timed_probe(f"{self.base}/api/v1/accounts/verify_credentials", headers=self._auth(token))


def _text_of(content: str) -> str:
    """A status's ``content`` (HTML: paragraphs, line breaks, links with hidden parts) as plain text."""
    text = re.sub(r"<br\s*/?>", "\n", content)
    text = re.sub(r"</p>\s*<p>", "\n\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _plain(text: str) -> str:
    return " ".join(text.split())
