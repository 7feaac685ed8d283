"""SMS through a Kannel gateway's HTTP ``sendsms`` interface.

Speaks: ``GET /cgi-bin/sendsms`` with ``username``, ``password``, ``from``, ``to`` (several numbers
separated by spaces), ``text``, ``coding`` (0 = GSM 7-bit, 2 = UCS-2), ``charset``, ``dlr-mask`` and
``dlr-url`` — see the Kannel user guide, "Sending SMS messages" (https://www.kannel.org/userguide.shtml).
Kannel answers ``202 0: Accepted for delivery`` (or ``3: Queued for later delivery``); a bad login is
``403``, a missing or malformed field ``400``, a failed SMSC hand-over ``503``.

Limits: a single GSM-7 message holds 160 septets, each part of a concatenated one 153 (the UDH takes
the rest); UCS-2 holds 70 characters, 67 per part (3GPP TS 23.038 and 23.040). Extension-table
characters (``€[]{}\\^~|`` and the form feed) take two septets and their escape pair is never split;
a character outside UCS-2's basic plane (an emoji) takes two code units and is never split.

Kannel returns no message id, so the delivery's idempotency key travels in ``dlr-url`` and comes back
with each delivery report. Kannel offers no lookup of an earlier send: an in-doubt send cannot be
reconciled here, and a sent SMS cannot be recalled.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from channels.base import Channel, Findings, Health, Payload, Publication, Receipt, Renderer, Target
from dispatcher.errors import ChannelError, OutcomeUnknownError, PermanentChannelError
from dispatcher.rendering import context_for
from dispatcher.words import digest_of
from settings import SmsSettings

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


# smsbox 1.4.5's answer when no SMS centre routes the (first) number.
NOT_ROUTABLE = "Not routable"


def callback_signature(secret: str, key: str) -> str:
    """The signature a delivery's report URL carries: it vouches for that delivery's reports only, so a
    URL read in the gateway's access log cannot be used to forge reports for any other delivery."""
    return hmac.new(secret.encode(), f"dlr:{key}".encode(), hashlib.sha256).hexdigest()[:32]


def encoding_of(text: str) -> str:
    if all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text):
        return "GSM-7"
    return "UCS-2"


def _units(text: str, encoding: str) -> list[int]:
    """Size of each character in the encoding's units (septets or UTF-16 code units)."""
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segments_of(text: str) -> tuple[str, int]:
    """The encoding and the number of messages ``text`` takes."""
    encoding = encoding_of(text)
    single, part = (160, 153) if encoding == "GSM-7" else (70, 67)
    units = _units(text, encoding)
    if sum(units) <= single:
        return encoding, 1
    count, used = 1, 0
    for size in units:  # a two-unit character moves whole to the next part
        if used + size > part:
            count, used = count + 1, 0
        used += size
    return encoding, count


def split(text: str) -> list[str]:
    """The parts of a concatenated message: 153 septets or 67 UCS-2 units each, never splitting an
    escape pair or a surrogate pair."""
    encoding = encoding_of(text)
    part = 153 if encoding == "GSM-7" else 67
    parts, current, used = [], "", 0
    for ch, size in zip(text, _units(text, encoding), strict=True):
        if used + size > part:
            parts.append(current)
            current, used = "", 0
        current += ch
        used += size
    return parts + [current] if current else parts


class SmsChannel(Channel):
    name = "sms"
    can_look_up = False
    can_withdraw = False
    reaches_subscribers = True
    reports_per_recipient = True
    max_segments = 10

    def __init__(self, settings: SmsSettings, **kwargs: Any) -> None:
        super().__init__(timeout=settings.timeout, **kwargs)
        self.settings = settings
        self._rendered: tuple[Publication, str, str, int] | None = None

    def targets(self, publication: Publication) -> list[Target]:
        # The core cuts the audience into batches of recipients_per_target and names them.
        return []

    @property
    def recipients_per_target(self) -> int:
        return self.settings.batch_size

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        # Every batch of an item carries the same text: rendered once per publication, not per batch.
        if self._rendered is None or self._rendered[0] is not publication:
            body = renderer.render(self.name, publication.item.kind.value, context_for(publication))
            text = f"【{self.settings.signature}】{body}" if self.settings.signature else body
            self._rendered = (publication, text, *segments_of(text))
        _, text, encoding, segments = self._rendered
        return Payload(
            channel=self.name,
            target=target.name,
            body={
                "text": text,
                "recipients": int(target.detail.get("recipients", 0)),
                "audience": str(target.detail.get("audience", "")),
                "encoding": encoding,
                "segments": segments,
                "characters": len(text),
            },
            measures={"segments": segments},
        )

    def direct(self, text: str, recipients: list[str]) -> Payload:
        encoding, segments = segments_of(text)
        return Payload(
            self.name,
            "direct",
            {
                "text": text,
                "to": list(recipients),
                "recipients": len(recipients),
                "encoding": encoding,
                "segments": segments,
                "characters": len(text),
                "direct": True,
            },
        )

    def addressed(self, payload: Payload, recipients: list[str]) -> Payload:
        body = payload.body
        if "audience" not in body:  # approved by an earlier release: the numbers are in the payload
            return payload
        if len(recipients) != body["recipients"] or digest_of(recipients) != body["audience"]:
            raise PermanentChannelError(
                f"sms {payload.target}: the ledger holds {len(recipients)} number(s) for this batch, not "
                f"the {body['recipients']} approved (altered in the ledger?); not sent"
            )
        return Payload(payload.channel, payload.target, {**body, "to": recipients}, payload.measures)

    def limits(self, target: Target) -> dict[str, int]:
        return {"segments": self.max_segments}

    def send(self, payload: Payload, key: str) -> Receipt:
        body = payload.body
        base: dict[str, Any] = {
            "username": self.settings.username,
            "password": self.settings.password.get_secret_value(),
            "from": self.settings.sender,
            "to": " ".join(body["to"]),
            "coding": 0 if body["encoding"] == "GSM-7" else 2,
            "charset": "UTF-8",
        }
        parts = [body["text"]]
        if self.settings.split == "dispatcher" and body["segments"] > 1:
            # Each part goes as its own message with a concatenation header, so a gateway without
            # max-messages (Kannel's default is 1) cannot cut the text to its first part — and would
            # not say so: it reports one delivery per phone for the whole message.
            parts = split(body["text"])
        reference = hashlib.sha256(key.encode()).digest()[0]  # the same on every retry
        answers = []
        for number, part in enumerate(parts, 1):
            params = {**base, "text": part}
            if len(parts) > 1:
                # 3GPP TS 23.040 §9.2.3.24.1: IEI 0 (8-bit reference), length 3, ref, total, sequence
                params["udh"] = bytes([5, 0, 3, reference, len(parts), number])
            if self.settings.dlr_url and not body.get("direct"):  # no delivery awaits a direct text's reports
                params.update(self.report_parameters(key, number if len(parts) > 1 else None))
            try:
                answers.append(self.submit(params, len(body["to"])))
            except ChannelError as exc:
                if number == 1:
                    raise
                # Earlier parts went out: sending all again would double them, calling it failed would
                # lose the rest. The outcome is unknown; the reports of every part settle it.
                raise OutcomeUnknownError(
                    f"sms: part {number} of {len(parts)} failed after {number - 1} were taken: {exc}"
                ) from exc
        refused = next((a for a in answers if a.startswith("first number not routable")), None)
        return Receipt(
            provider_id=key,
            detail={"answer": answers[-1], "recipients": len(body["to"]), "parts": len(parts)},
            alert=f"sms: the gateway has no route for {body['to'][0]} ({refused})" if refused else None,
        )

    def report_parameters(self, key: str, part: int | None) -> dict[str, Any]:
        # Kannel fills in %d (report type), %p (recipient) and %T (time) when it calls back. The URL
        # carries a signature for this delivery only, never the shared secret: Kannel's access log
        # records every dlr-url.
        secret = self.settings.callback_token.get_secret_value()
        query = {"key": key, "sig": callback_signature(secret, key)}
        if part is not None:
            query["part"] = str(part)
        joiner = "&" if "?" in (self.settings.dlr_url or "") else "?"
        return {
            "dlr-mask": self.settings.dlr_mask,
            "dlr-url": f"{self.settings.dlr_url}{joiner}{urlencode(query)}&type=%d&to=%p&at=%T",
        }

    def submit(self, params: dict[str, Any], recipients: int) -> str:
        """One sendsms request; the answer speaks for the first routable number only (smsbox 1.4.5)."""
        try:
            response = self.request("GET", self.settings.sendsms_url, params=params)
        except PermanentChannelError as exc:
            if recipients > 1 and exc.code == 403 and NOT_ROUTABLE in str(exc):
                # The other phones were given the text; the first one's refusal comes back as its
                # own delivery report (type 16), so the batch stands on what the gateway accepted.
                return f"first number not routable: {str(exc)[:120]}"
            raise
        answer = response.text.strip()
        if not answer.startswith(("0:", "3:")):
            raise PermanentChannelError(f"sms: gateway answered {answer[:200]!r}")
        return answer

    def check(self, payloads: list[Payload]) -> Findings:
        findings = Findings()
        longest = max((int(p.body["segments"]) for p in payloads), default=1)
        if self.settings.split == "gateway" and longest > 1:
            findings.notes.append(
                f"sms: the text needs {longest} messages and the gateway splits it: Kannel must have "
                f"max-messages of at least {longest}, or it sends the first part only and reports delivery"
            )
        return findings

    def remarks(self, payload: Payload) -> list[str]:
        segments = int(payload.body.get("segments", 1))
        return [f"sms {payload.target}: the text needs {segments} messages"] if segments > 1 else []

    def reports_expected(self, payload: Payload) -> int:
        # Split here, each part is its own message and is reported on; split by the gateway, Kannel
        # sends one report set per phone however many parts (observed on Kannel 1.4.5).
        return int(payload.body["segments"]) if self.settings.split == "dispatcher" else 1

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        raise PermanentChannelError("sms: a sent text cannot be recalled; send a correction")

    def probe(self) -> Health:
        # Kannel answers 400 "Missing receiver number" to a good login without `to`, 403 to a bad one.
        health = self.timed_probe(
            self.settings.sendsms_url,
            params={
                "username": self.settings.username,
                "password": self.settings.password.get_secret_value(),
            },
        )
        if not health.ok and "HTTP 400" in health.detail:
            return Health(True, "gateway reachable, login accepted", health.latency_ms)
        return health

    def describe(self, payload: Payload) -> list[str]:
        body = payload.body
        return [
            f"{body['encoding']}, {body['segments']} segment(s), {body['characters']} characters, "
            f"{body.get('recipients', len(body.get('to', [])))} recipient(s)",
            *body["text"].split("\n"),
        ]
