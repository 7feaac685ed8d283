"""The channel contract, and the one boundary where HTTP errors become dispatcher errors.

An adapter is one class that fills in a few verbs; the core owns the flow around them
(render → check limits → send → record) and never lets an adapter retry, log to the ledger or
pick its own queue:

- ``targets(publication)``: the outlets an item reaches on this channel (a site, SMS batches,
  signs in the item's areas, microblog accounts);
- ``render(publication, target, renderer)``: the exact payload for one target, with its measures;
- ``limits(target)``: the maxima the measures must respect, as data; checked by :meth:`prepare`;
- ``send(payload, key)``: deliver, using ``key`` wherever the API offers idempotency;
- ``lookup(payload, key)``: find an earlier send whose answer was lost, or ``None``;
- ``retract(receipt)``: withdraw what was sent;
- ``check(payloads)``: what the peer says before approval (problems refuse it, notes inform);
- ``probe()``: is the channel reachable and are the credentials good;
- ``describe(payload)``: the payload for a person, as the lines a preview prints.

What a channel can or cannot do is declared on the class, and the core asks instead of naming
channels: ``can_look_up``, ``can_update``, ``can_withdraw`` (and ``replaces_on_correction``),
``reaches_subscribers`` (with
``recipients_per_target`` and ``addressed``), ``reports_per_recipient`` (with ``reports_expected``),
``remarks`` for the approver, and, for targets that can lose what they were sent, ``forgets`` with
``rank`` and ``presence``.
"""

from __future__ import annotations

import abc
import json
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import requests

from dispatcher.errors import (
    ChannelError,
    ConfigurationError,
    ContentError,
    OutcomeUnknownError,
    PermanentChannelError,
    TemporaryChannelError,
)
from dispatcher.words import (  # the core's words, used by every adapter
    Findings,
    Health,
    Payload,
    Presence,
    Publication,
    Receipt,
    Renderer,
    Target,
)

# Status codes worth another try; every other 4xx is final. An adapter adds provider codes found in
# response bodies through ``temporary_codes`` and ``permanent_codes``.
TEMPORARY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now, whether given as seconds or as an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class HttpApi:
    """The one boundary where HTTP outcomes become dispatcher errors, shared by adapters and drivers.

    A subclass names itself and extends the classification with its provider's own codes.
    """

    name: ClassVar[str]
    #: provider error codes (from response bodies) that mean "try again later"
    temporary_codes: ClassVar[frozenset[str]] = frozenset()
    #: provider error codes that mean "this will never succeed"
    permanent_codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.timeout = timeout
        self.http = session or requests.Session()

    def timed_probe(self, url: str, **kwargs: Any) -> Health:
        started = time.monotonic()
        try:
            response = self.request("GET", url, idempotent=True, **kwargs)
        except ChannelError as exc:
            return Health(False, str(exc), (time.monotonic() - started) * 1000)
        return Health(True, f"HTTP {response.status_code}", (time.monotonic() - started) * 1000)

    def provider_code(self, response: requests.Response) -> str | None:
        """The provider's own error code in an error response, if it has one."""
        return None

    @staticmethod
    def json_field(response: requests.Response, name: str) -> str | None:
        """A field of a JSON error body as text, or None when the body is not JSON or lacks it."""
        try:
            value = response.json().get(name)
        except (ValueError, AttributeError):
            return None
        return str(value) if value not in (None, "") else None

    def request(self, method: str, url: str, *, idempotent: bool = False, **kwargs: Any) -> requests.Response:
        """Send one request; return a 2xx/3xx response or raise a classified ChannelError.

        A failure after the request may have reached the server (read timeout, connection dropped
        mid-answer) raises :class:`OutcomeUnknownError` unless the call is ``idempotent``.
        """
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.http.request(method, url, **kwargs)
        except requests.ConnectTimeout as exc:
            raise TemporaryChannelError(f"{self.name}: connect timeout: {url}") from exc
        except requests.ConnectionError as exc:
            if _never_connected(exc):
                raise TemporaryChannelError(f"{self.name}: cannot connect: {url}") from exc
            if idempotent:
                raise TemporaryChannelError(f"{self.name}: connection lost: {url}") from exc
            raise OutcomeUnknownError(f"{self.name}: connection lost, outcome unknown") from exc
        except requests.Timeout as exc:
            if idempotent:
                raise TemporaryChannelError(f"{self.name}: read timeout: {url}") from exc
            raise OutcomeUnknownError(f"{self.name}: no answer in {self.timeout}s") from exc
        except requests.RequestException as exc:
            # Only the type: the text of these errors can quote the URL, query secrets included.
            raise PermanentChannelError(f"{self.name}: request refused: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise self.error_for(response)
        return response

    def error_for(self, response: requests.Response) -> ChannelError:
        code = self.provider_code(response)
        text = response.text.strip().replace("\n", " ")[:300]
        message = f"{self.name}: HTTP {response.status_code}" + (f" [{code}]" if code else "")
        message += f": {text}" if text else ""
        if code is not None and code in self.permanent_codes:
            return PermanentChannelError(message, code=code)
        if (code is not None and code in self.temporary_codes) or (response.status_code in TEMPORARY_STATUS):
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            return TemporaryChannelError(
                message,
                code=code or response.status_code,
                retry_after=retry_after,
                # 429 with a time to come back is the peer pacing us, not failing: a wait.
                wait=response.status_code == 429 and retry_after is not None,
            )
        return PermanentChannelError(message, code=code or response.status_code)


class Channel(HttpApi, abc.ABC):
    """An adapter: the verbs of one channel; the HTTP boundary comes from :class:`HttpApi`."""

    #: False when the API can neither find an earlier send nor take a repeat safely (a plain SMS
    #: gateway): an unknown outcome is then resolved by the per-kind policy, not by a lookup.
    can_look_up: ClassVar[bool] = True
    #: A later revision can replace what a target shows, in place (the same post, the same sign's
    #: message); otherwise a correction is a follow-up (a microblog cannot edit, a text cannot).
    can_update: ClassVar[bool] = False
    #: What was sent can be taken back (``retract``); a text on a phone cannot.
    can_withdraw: ClassVar[bool] = True

    #: The channel reaches people from the subscriber store. Its targets are made by the core, not by
    #: ``targets``: the core streams the item's audience (``publication.audience`` says how many) into
    #: batches of ``recipients_per_target``, writes each batch's numbers into the ledger and asks
    #: ``render`` for a target whose detail holds ``recipients`` (how many) and ``audience`` (the
    #: digest of the batch's numbers, in order, see ``words.digest_of``). At send time the core reads
    #: the numbers back and hands them to ``addressed``, which checks them against that digest.
    reaches_subscribers: ClassVar[bool] = False
    #: The peer reports on each recipient after it took a payload (SMS delivery reports): the core keeps
    #: one record per recipient, expects ``reports_expected`` final reports for each, and a doubt about
    #: an earlier send is settled by the reports that came back.
    reports_per_recipient: ClassVar[bool] = False
    #: A target can lose what it was sent (a sign controller that restarts forgets its messages): the
    #: core's watch asks ``presence`` of the highest-``rank`` live payload per target, and sends again
    #: what was lost, through the delivery path.
    forgets: ClassVar[bool] = False

    def __init__(self, *, public_url: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: where readers find the item's article (links on other channels point there)
        self.public_url = public_url

    # -- the verbs an adapter fills in ---------------------------------------------------------

    @abc.abstractmethod
    def targets(self, publication: Publication) -> list[Target]: ...

    @abc.abstractmethod
    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload: ...

    def limits(self, target: Target) -> dict[str, int]:
        return {}

    @abc.abstractmethod
    def send(self, payload: Payload, key: str) -> Receipt: ...

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        """Find an earlier send of ``key``; channels that cannot look up return ``None``."""
        return None

    @abc.abstractmethod
    def retract(self, payload: Payload, receipt: Receipt) -> None: ...

    def check(self, payloads: list[Payload]) -> Findings:
        """Ask the peer, before approval, whether it will take these payloads as they are (the site's
        categories, a sign's own configuration). A peer that cannot be reached gives a note, never a
        problem: an urgent warning is not held back because a check could not be made."""
        return Findings()

    @abc.abstractmethod
    def probe(self) -> Health: ...

    # -- what a channel declares about itself; the defaults fit a channel without the ability ----

    def remarks(self, payload: Payload) -> list[str]:
        """What the approver should know about one payload (not a problem): shown and recorded."""
        return []

    @property
    def on_expiry(self) -> str:
        """What becomes of what a target shows when the item expires: ``keep`` it, ``withdraw`` it (a
        withdrawal at expiry carries ``ending: "expired"`` in its payload), or ``mark`` it (the core
        renders the item with ``stage == "expired"`` and sends that in its place)."""
        return "keep"

    @property
    def replaces_on_correction(self) -> bool:
        """Whether a correction takes the place of what the target shows (the same post edited, a sign's
        message replaced; or, where the channel cannot edit, the earlier send withdrawn once the
        corrected one is out) rather than following it up."""
        return self.can_update

    @property
    def recipients_per_target(self) -> int:
        """How many subscribers one target carries (``reaches_subscribers``): one request's worth."""
        return 0

    def direct(self, text: str, recipients: list[str]) -> Payload:
        """A payload of ``text`` for ``recipients`` outside any item (an alert to the operators on call),
        for channels that address people (``reaches_subscribers``); others cannot."""
        raise ConfigurationError(f"the {self.name} channel cannot send a message to people directly")

    def addressed(self, payload: Payload, recipients: list[str]) -> Payload:
        """The payload with its recipients (``reaches_subscribers``), read from the ledger at send time;
        refused when they are not the ones approved."""
        return payload

    def reports_expected(self, payload: Payload) -> int:
        """Final reports each recipient of ``payload`` gets (one per message the text is sent in)."""
        return 1

    def rank(self, payload: Payload) -> int:
        """Among live payloads for one target, the highest rank is the one it should show (``forgets``)."""
        return 0

    def presence(self, payload: Payload, key: str, now: datetime) -> Presence:
        """Whether the target still shows ``payload`` (sent under ``key``) at ``now``, for channels that
        ``forget``."""
        return Presence(Presence.SHOWN)

    def describe(self, payload: Payload) -> list[str]:
        """The payload for a person: the lines a preview prints. By default the body on one line; an
        adapter shows instead what its readers will see and the measures that matter for it."""
        return [json.dumps(payload.body, ensure_ascii=False, sort_keys=True, default=str)]

    # -- the flow the core runs; not overridden ------------------------------------------------

    def prepare(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        """Render for one target and check the measures against the limits, in one place."""
        payload = self.render(publication, target, renderer)
        for measure, limit in self.limits(target).items():
            value = payload.measures.get(measure)
            if value is not None and value > limit:
                raise ContentError(
                    f"{self.name} target {target.name}: {measure} is {value}, the limit is {limit}"
                )
        return payload


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the connection was refused or never established, so nothing was sent."""
    reason = exc.args[0] if exc.args else None
    chain = [reason, getattr(reason, "reason", None)]
    names = {type(part).__name__ for part in chain if part is not None}
    return bool(names & {"NewConnectionError", "ConnectTimeoutError", "NameResolutionError"})
