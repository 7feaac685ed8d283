"""An emulator of a Mastodon server's REST API for posting and deleting statuses.

Real API and its documentation:

- statuses: https://docs.joinmastodon.org/methods/statuses/ (``POST /api/v1/statuses`` with ``status``,
  ``spoiler_text``, ``visibility``, ``in_reply_to_id``, ``language``, ``sensitive`` and an
  ``Idempotency-Key`` header; ``GET`` and ``DELETE /api/v1/statuses/:id``, the delete answering the status
  with its source ``text``);
- accounts: https://docs.joinmastodon.org/methods/accounts/ (``GET /api/v1/accounts/verify_credentials``;
  ``GET /api/v1/accounts/:id/statuses``: the account's statuses newest first, ``limit`` 20 by default and
  40 at most, ``max_id`` to page back; the caller sees private ones of its own account only);
- statuses' source: ``GET /api/v1/statuses/:id/source`` (``id``, ``text``, ``spoiler_text``: the plain text as
  written, for the status's author only; another's is 404);
- rate limits: https://docs.joinmastodon.org/api/rate-limits/ (``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining``, ``X-RateLimit-Reset`` as an ISO 8601 time; 300 statuses per 3 hours;
  30 deletions per 30 minutes).

Mastodon's own source (github.com/mastodon/mastodon), restated here:

- ``app/validators/status_length_validator.rb``: the length is the number of grapheme clusters of
  ``spoiler_text`` + ``text``, where each URL counts as 23 characters (``URL_PLACEHOLDER``) and each mention
  ``@user@domain`` as ``@user``; over ``MAX_CHARS`` (500) is the validation error
  ``statuses.over_character_limit`` ("character limit of %{max} exceeded") on ``text``;
- ``app/lib/extractor.rb``, ``app/models/account.rb`` (``MENTION_RE``) and
  ``config/initializers/twitter_regex.rb``: which URLs and mentions are entities (URLs need a scheme and
  a domain with a top-level domain, as twitter-text's ``valid_domain``);
- ``app/services/post_status_service.rb``: an ``Idempotency-Key`` remembered per account for 3,600 s after a
  status was made, answering that status (looked up among the account's statuses, so a deleted one is 404);
- ``app/lib/rate_limiter.rb`` and ``app/controllers/concerns/rate_limit_headers.rb``: the ``statuses``
  family, 300 per 3 hours in windows aligned on the epoch, recorded after the status validates, its
  headers on every create answer; ``config/initializers/rack_attack.rb``: ``throttle_api_delete`` (30 per
  30 minutes) and the 429 ``{"error": "Too many requests"}`` with its headers;
- ``app/lib/text_formatter.rb``: ``content`` is the text HTML-escaped, links as
  ``<a href … target="_blank" rel="nofollow noopener" translate="no">`` with the scheme in an invisible
  span and the display cut at 30 characters, hashtags linked, paragraphs in ``<p>`` and lines broken by
  ``<br />`` (Rails' ``simple_format``).

Not emulated: media, polls, scheduled statuses, edits, federation; the per-token 300 requests per 5 minutes
limit (Mastodon lets loopback through it anyway). Simplified: twitter-text's URL grammar (any alphabetic
top-level domain is taken, its list is not), Tag::HASHTAG_RE, and Unicode's grapheme rules (Prepend is left
out, Extended_Pictographic is taken by blocks). Not settled by the source read: the wording of the refusal
of an unknown ``visibility`` (Rails' enum validation is assumed).

The harness's ``/_sandbox/clock`` drives the idempotency keys and the rate limits, and its
``/_sandbox/reset`` also forgets statuses, keys and counts here.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.emulator import EmulatorState, emulator_app

URL_PLACEHOLDER_CHARS = 23
IDEMPOTENCY_SECONDS = 3600
VISIBILITIES = ("public", "unlisted", "private", "direct")
INVALID_TOKEN = "The access token is invalid"
NOT_FOUND = "Record not found"
REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."  # statuses.errors

# twitter-text's URL, as Mastodon configures it, simplified: not after a letter, digit, @, $ or #
# (valid_url_preceding_chars); a scheme (URLs without one are not extracted); a domain whose last label
# is a top-level domain (so bare IP addresses and single-label hosts are no links); a port; then a path and
# query of anything but white space and <>.
URL = re.compile(
    r"(?<![A-Za-z0-9@＠$#＃])https?://"
    r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}"
    r"(?::\d+)?"
    r"(?:[/?#][^\s<>]*)?",
    re.IGNORECASE,
)
# valid_url_path_ending_chars and valid_url_query_ending_chars refuse these at a URL's end.
URL_TRAILING = "()?!*\"'「」<>;:=,.$%[]~&|@"
# Account::MENTION_RE: @username, optionally @domain, not after "=", "/" or a word character.
MENTION = re.compile(r"(?<![=/\w])@([a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)(?:@\w+(?:[.-]+\w+)*)?", re.IGNORECASE)
# twitter-text's end_mention_match: a mention followed by another @ or by "://" is no mention.
MENTION_END = re.compile(r"@|://")
# Tag::HASHTAG_RE, simplified: a # not after a word character, "/" or ")", then word characters with at
# least one letter.
HASHTAG = re.compile(r"(?<![=/)\w])#(\w*[^\W\d_]\w*)")
URL_PREFIX = re.compile(r"^https?://(?:www\.)?")


def _grapheme_kind(char: str) -> str:
    """The Unicode grapheme cluster break property of ``char`` (UAX #29), as far as it matters here."""
    code = ord(char)
    category = unicodedata.category(char)
    if char == "\r":
        return "CR"
    if char == "\n":
        return "LF"
    if code == 0x200D:
        return "ZWJ"
    if 0x1F1E6 <= code <= 0x1F1FF:
        return "RI"
    if 0x1F3FB <= code <= 0x1F3FF or code == 0x200C or 0xE0020 <= code <= 0xE007F:
        return "Extend"  # emoji skin tones, ZWNJ and emoji tag characters extend the previous cluster
    if category in ("Mn", "Me"):
        return "Extend"
    if category == "Mc":
        return "SpacingMark"
    if category in ("Cc", "Cf", "Zl", "Zp"):
        return "Control"
    if 0x1100 <= code <= 0x115F or 0xA960 <= code <= 0xA97C:
        return "L"
    if 0x1160 <= code <= 0x11A7 or 0xD7B0 <= code <= 0xD7C6:
        return "V"
    if 0x11A8 <= code <= 0x11FF or 0xD7CB <= code <= 0xD7FB:
        return "T"
    if 0xAC00 <= code <= 0xD7A3:
        return "LV" if (code - 0xAC00) % 28 == 0 else "LVT"
    if _pictographic(code):
        return "Pictographic"
    return "Other"


def _pictographic(code: int) -> bool:
    """Extended_Pictographic, by the blocks that hold it."""
    return (
        0x1F000 <= code <= 0x1FAFF
        or 0x1FC00 <= code <= 0x1FFFD
        or 0x2600 <= code <= 0x27BF
        or 0x2190 <= code <= 0x21FF
        or 0x2300 <= code <= 0x23FF
        or 0x2B00 <= code <= 0x2BFF
        or code in (0xA9, 0xAE, 0x203C, 0x2049, 0x2122, 0x2139, 0x24C2, 0x3030, 0x303D, 0x3297, 0x3299)
    )


def grapheme_count(text: str) -> int:
    """How many extended grapheme clusters ``text`` holds (Ruby's ``each_grapheme_cluster.size``)."""
    count = 0
    previous = ""
    regional = 0  # regional indicators in a row so far: they pair into flags
    after_pictographic = False  # the cluster so far ends with a pictograph and its extenders
    for char in text:
        kind = _grapheme_kind(char)
        if not previous or _breaks(previous, kind, regional, after_pictographic):
            count += 1
        regional = (regional + 1 if previous == "RI" else 1) if kind == "RI" else 0
        if kind == "Pictographic":
            after_pictographic = True
        elif kind not in ("Extend", "ZWJ"):
            after_pictographic = False
        previous = kind
    return count


def _breaks(before: str, after: str, regional: int, after_pictographic: bool) -> bool:
    """UAX #29's rules GB3 to GB999 between two characters of the given kinds."""
    if before == "CR" and after == "LF":
        return False
    if before in ("CR", "LF", "Control") or after in ("CR", "LF", "Control"):
        return True
    if before == "L" and after in ("L", "V", "LV", "LVT"):
        return False
    if before in ("LV", "V") and after in ("V", "T"):
        return False
    if before in ("LVT", "T") and after == "T":
        return False
    if after in ("Extend", "ZWJ", "SpacingMark"):
        return False
    if before == "ZWJ" and after == "Pictographic" and after_pictographic:
        return False
    return not (before == "RI" and after == "RI" and regional % 2 == 1)


def _entities(text: str, hashtags: bool = True) -> list[tuple[int, int, str, str]]:
    """URLs, mentions (and hashtags) as ``(start, end, kind, value)``, overlapping ones dropped."""
    found: list[tuple[int, int, str, str]] = []
    for match in URL.finditer(text):
        url = match[0]
        while url and url[-1] in URL_TRAILING and not (url[-1] == ")" and url.count("(") >= url.count(")")):
            url = url[:-1]
        found.append((match.start(), match.start() + len(url), "url", url))
    for match in MENTION.finditer(text):
        if not MENTION_END.match(text, match.end()):
            found.append((match.start(), match.end(), "mention", match[0][1:]))
    for match in HASHTAG.finditer(text) if hashtags else ():
        found.append((match.start(), match.end(), "hashtag", match[1]))
    # Extractor.remove_overlapping_entities: in order of start, an entity overlapping an earlier one goes.
    kept: list[tuple[int, int, str, str]] = []
    for entity in sorted(found, key=lambda e: e[0]):
        if not kept or entity[0] >= kept[-1][1]:
            kept.append(entity)
    return kept


def mastodon_length(text: str, spoiler_text: str = "") -> int:
    """The length StatusLengthValidator measures: spoiler + text, URLs as 23, mentions without domain."""
    countable = []
    last = 0
    if text.strip():
        # The validator extracts URLs and mentions only.
        for start, end, kind, value in _entities(text, hashtags=False):
            countable.append(text[last:start])
            countable.append("x" * URL_PLACEHOLDER_CHARS if kind == "url" else "@" + value.split("@")[0])
            last = end
        countable.append(text[last:])
    return grapheme_count(spoiler_text + "".join(countable))


def _escape(text: str) -> str:
    """ERB::Util.html_escape: & < > " ' as entities (the apostrophe as &#39;)."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#39;")
    )


def content_html(text: str, base: str, local_usernames: set[str]) -> str:
    """The ``content`` Mastodon's TextFormatter builds from a local status's text."""
    if not text.strip():
        return ""
    html = []
    last = 0
    for start, end, kind, value in _entities(text):
        html.append(_escape(text[last:start]))
        html.append(_entity_html(kind, value, base, local_usernames))
        last = end
    html.append(_escape(text[last:]))
    # Rails' simple_format: paragraphs split on blank lines, single line breaks as <br />, then Mastodon
    # deletes the remaining newlines.
    formatted = "".join(html).replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = re.split(r"\n\n+", formatted)
    return "".join(
        "<p>" + re.sub(r"([^\n]\n)(?=[^\n])", r"\1<br />", p).replace("\n", "") + "</p>" for p in paragraphs
    )


def _entity_html(kind: str, value: str, base: str, local_usernames: set[str]) -> str:
    if kind == "url":
        prefix = URL_PREFIX.match(value)
        scheme = prefix[0] if prefix else ""
        rest = value[len(scheme) :]
        cut = "ellipsis" if len(rest) > 30 else ""
        return (
            f'<a href="{_escape(value)}" target="_blank" rel="nofollow noopener" translate="no">'
            f'<span class="invisible">{_escape(scheme)}</span><span class="{cut}">{_escape(rest[:30])}</span>'
            f'<span class="invisible">{_escape(rest[30:])}</span></a>'
        )
    if kind == "hashtag":
        tag = _escape(value)
        return f'<a href="{base}/tags/{tag}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'
    username = value.split("@")[0]
    if username.lower() in local_usernames:
        return (
            f'<span class="h-card" translate="no"><a href="{base}/@{_escape(username)}" '
            f'class="u-url mention">@<span>{_escape(username)}</span></a></span>'
        )
    # A mention of an account the server does not know stays text.
    return "@" + _escape(value)


def _iso(moment: float, digits: int = 3) -> str:
    """A UTC time as Mastodon writes it: ``2019-12-08T03:48:33.901Z`` (``iso8601(6)`` for the headers)."""
    stamp = datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return stamp[: len(stamp) - 6 + digits] + "Z"


class Window:
    """A Mastodon rate limit: ``limit`` events per ``period`` seconds, in windows aligned on the epoch."""

    def __init__(self, limit: int, period: int) -> None:
        self.limit = limit
        self.period = period
        self.counts: dict[tuple[str, int], int] = {}

    def used(self, who: str, now: float) -> int:
        return self.counts.get((who, int(now // self.period)), 0)

    def record(self, who: str, now: float) -> None:
        key = (who, int(now // self.period))
        self.counts[key] = self.counts.get(key, 0) + 1

    def headers(self, who: str, now: float) -> dict[str, str]:
        reset = now + (self.period - int(now) % self.period)
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.limit - self.used(who, now), 0)),
            "X-RateLimit-Reset": _iso(reset, 6),
        }


def create_app(
    tokens: dict[str, str] | None = None,
    *,
    max_characters: int = 500,
    posts_per_window: int = 300,
    window_seconds: int = 3 * 3600,
    deletes_per_window: int = 30,
    delete_window_seconds: int = 30 * 60,
) -> tuple[Flask, EmulatorState]:
    """The Mastodon emulator: ``tokens`` maps bearer tokens to usernames; ``max_characters`` is the
    instance's status length; the two limits are the ``statuses`` rate limit family and the delete
    throttle."""
    tokens = tokens or {"sandbox-mastodon-token": "dispatch"}
    app, state = emulator_app(
        "mastodon",
        lambda status: jsonify({"error": "Too many requests" if status == 429 else "Internal server error"}),
    )
    clock = state.clock
    lock = threading.RLock()
    statuses: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    sources: dict[str, str] = {}  # each status's text as sent, which only the delete answer shows
    keys: dict[tuple[str, str], tuple[float, str]] = {}
    posting = Window(posts_per_window, window_seconds)
    deleting = Window(deletes_per_window, delete_window_seconds)
    sequence = itertools.count()
    usernames = sorted(set(tokens.values()))
    account_ids = {name: str(109000000000000000 + i + 1) for i, name in enumerate(usernames)}
    local = {name.lower() for name in usernames}

    def fail(message: str, status: int, headers: dict[str, str] | None = None) -> tuple[Response, int]:
        response = jsonify({"error": message})
        response.headers.update(headers or {})
        return response, status

    def base() -> str:
        return request.host_url.rstrip("/")

    def caller() -> str | None | tuple[Response, int]:
        """The username the bearer token stands for; None without a token; a 401 for a bad one."""
        header = request.headers.get("Authorization", "")
        if not header:
            return None
        user = tokens.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None
        return user if user is not None else fail(INVALID_TOKEN, 401)

    def account(username: str) -> dict[str, Any]:
        return {
            "id": account_ids[username],
            "username": username,
            "acct": username,
            "display_name": username,
            "locked": False,
            "bot": False,
            "url": f"{base()}/@{username}",
            "note": "",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": sum(1 for owner in owners.values() if owner == username),
        }

    def new_id() -> str:
        # Mastodon's snowflake ids: milliseconds since the epoch shifted 16 bits, plus a sequence.
        return str((int(clock.now() * 1000) << 16) + next(sequence) % 65536)

    def visible(status: dict[str, Any], user: str | None) -> bool:
        return status["visibility"] in ("public", "unlisted") or owners[status["id"]] == user

    def _forget() -> None:
        # The harness's reset forgets what was received; a fresh start also forgets statuses and limits.
        with lock:
            statuses.clear()
            owners.clear()
            sources.clear()
            keys.clear()
            posting.counts.clear()
            deleting.counts.clear()

    state.on_reset.append(_forget)

    @app.post("/api/v1/statuses")
    def post() -> Any:
        user = caller()
        if user is None:
            return fail(INVALID_TOKEN, 401)
        if not isinstance(user, str):
            return user
        data = request.get_json(silent=True) if request.is_json else None
        params = data if isinstance(data, dict) else request.form
        text = str(params.get("status") or "")
        spoiler = str(params.get("spoiler_text") or "")
        visibility = str(params.get("visibility") or "public")
        reply_to = str(params.get("in_reply_to_id") or "")
        key = request.headers.get("Idempotency-Key", "")
        with lock:
            now = clock.now()
            limit_headers = posting.headers(user, now)
            if reply_to and (reply_to not in statuses or not visible(statuses[reply_to], user)):
                return fail(
                    "The post you are trying to reply to does not appear to exist.", 404, limit_headers
                )
            if key and (user, key) in keys and keys[(user, key)][0] > now:
                # The key answers the status it made, found among the account's statuses: gone is 404.
                earlier = statuses.get(keys[(user, key)][1])
                # Recorded: the key absorbed a second post of the same status.
                state.keep({"action": "replayed", "key": key, "account": user, "status": text})
                if earlier is None:
                    return fail(NOT_FOUND, 404, limit_headers)
                return jsonify(earlier), 200, limit_headers
            problems = []
            if not text.strip():
                problems.append("Text can't be blank")
            elif mastodon_length(text, spoiler) > max_characters:
                problems.append(f"Text character limit of {max_characters} exceeded")
            if visibility not in VISIBILITIES:
                problems.append("Visibility is not included in the list")
            if problems:
                return fail("Validation failed: " + ", ".join(problems), 422, limit_headers)
            # The limit is recorded after the status validates; a refused one is rolled back.
            if posting.used(user, now) >= posting.limit:
                return fail("Too many requests", 429, posting.headers(user, now))
            posting.record(user, now)
            status_id = new_id()
            status: dict[str, Any] = {
                "id": status_id,
                "created_at": _iso(now),
                "in_reply_to_id": reply_to or None,
                "in_reply_to_account_id": account_ids[owners[reply_to]] if reply_to else None,
                "sensitive": bool(spoiler) or str(params.get("sensitive", "")).lower() in ("true", "1"),
                "spoiler_text": spoiler,
                "visibility": visibility,
                "language": params.get("language") or None,
                "uri": f"{base()}/users/{user}/statuses/{status_id}",
                "url": f"{base()}/@{user}/{status_id}",
                "replies_count": 0,
                "reblogs_count": 0,
                "favourites_count": 0,
                "edited_at": None,
                "content": content_html(text, base(), local),
                "reblog": None,
                "application": {"name": "dispatcher", "website": None},
                "account": account(user),
                "media_attachments": [],
                "mentions": [],
                "tags": [],
                "emojis": [],
                "card": None,
                "poll": None,
            }
            statuses[status_id] = status
            owners[status_id] = user
            if key:
                keys[(user, key)] = (now + IDEMPOTENCY_SECONDS, status_id)
            sources[status_id] = text
            headers = posting.headers(user, now)
        state.keep(
            {
                "action": "post",
                "id": status_id,
                "key": key or None,
                "status": text,
                "account": user,
                "visibility": visibility,
                "spoiler_text": spoiler,
            }
        )
        return jsonify(status), 200, headers

    @app.get("/api/v1/statuses/<status_id>")
    def show(status_id: str) -> Any:
        user = caller()
        if isinstance(user, tuple):
            return user
        with lock:
            status = statuses.get(status_id)
            if status is None or not visible(status, user):
                # A status the caller may not see is answered as missing, not as forbidden.
                return fail(NOT_FOUND, 404)
            return jsonify(status)

    @app.delete("/api/v1/statuses/<status_id>")
    def delete(status_id: str) -> Any:
        user = caller()
        if user is None:
            return fail(INVALID_TOKEN, 401)
        if not isinstance(user, str):
            return user
        with lock:
            now = clock.now()
            # Rack::Attack counts every DELETE on a status path before the app looks at it.
            if deleting.used(user, now) >= deleting.limit:
                return fail("Too many requests", 429, deleting.headers(user, now))
            deleting.record(user, now)
            status = statuses.get(status_id)
            if status is None or owners[status_id] != user:
                return fail(NOT_FOUND, 404)
            del statuses[status_id]
            del owners[status_id]
            # The answer carries the source, for "delete and redraft".
            answer = {**status, "text": sources.pop(status_id, "")}
        state.keep({"action": "delete", "id": status_id, "account": user})
        return jsonify(answer)

    @app.get("/api/v1/statuses/<status_id>/source")
    def source(status_id: str) -> Any:
        user = caller()
        if user is None:
            return fail(INVALID_TOKEN, 401)
        if not isinstance(user, str):
            return user
        with lock:
            status = statuses.get(status_id)
            if status is None or owners[status_id] != user:
                return fail(NOT_FOUND, 404)
            return jsonify(
                {"id": status_id, "text": sources.get(status_id, ""), "spoiler_text": status["spoiler_text"]}
            )

    @app.get("/api/v1/accounts/<account_id>/statuses")
    def account_statuses(account_id: str) -> Any:
        user = caller()
        if isinstance(user, tuple):
            return user
        try:
            limit = min(max(int(request.args.get("limit", 20)), 1), 40)
        except ValueError:
            limit = 20
        max_id = request.args.get("max_id")
        with lock:
            names = [name for name, number in account_ids.items() if str(number) == account_id]
            if not names:
                return fail(NOT_FOUND, 404)
            mine = [
                status
                for status_id, status in statuses.items()
                if owners[status_id] == names[0]
                and visible(status, user)
                and (max_id is None or int(status_id) < int(max_id))
            ]
            mine.sort(key=lambda status: -int(status["id"]))
            return jsonify(mine[:limit])

    @app.get("/api/v1/accounts/verify_credentials")
    def verify() -> Any:
        user = caller()
        if user is None:
            return fail(INVALID_TOKEN, 401)
        if not isinstance(user, str):
            return user
        with lock:
            me = account(user)
        me["source"] = {"privacy": "public", "sensitive": False, "language": None, "note": "", "fields": []}
        return jsonify(me)

    return app, state
