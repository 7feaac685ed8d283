"""The SMS gateway's callbacks: delivery reports and inbound texts.

- ``GET /sms/dlr?key=…&sig=…&type=%d&to=%p`` — a Kannel delivery report for one recipient of the
  delivery whose idempotency key is ``key``. ``sig`` vouches for that delivery only (an HMAC of the key
  under the callback secret, put in ``dlr-url`` by the SMS adapter): Kannel's access log records every
  dlr-url, and a leaked line must not let anyone forge reports for other deliveries.
- ``GET /sms/mo?token=…&from=%p&text=%a&coding=%c&charset=%C`` — an inbound SMS (a Kannel
  ``sms-service`` with ``get-url``); ``TD``, ``T``, ``STOP`` or ``退订`` opts the sender out. Without
  smsbox's ``mo-recode``, a Chinese text arrives as its UCS-2 bytes (``coding=2``): the text is decoded
  from ``coding`` and ``charset`` either way, read from the raw query string.
- ``GET /health`` — liveness, changes nothing.

These carry their own credentials (the signature, the token), not a user's bearer token: the gateway is
not a person. Parameters are read from the query string only (Kannel sends none in a body) and must be
ASCII where the protocol says so; anything malformed gets a 4xx naming the parameter, never a 500, and a
failure of ours a 503, which the gateway retries.
"""

from __future__ import annotations

import hmac
import logging
import queue
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from sqlalchemy.exc import SQLAlchemyError

from channels.sms import callback_signature
from dispatcher import subscribers
from dispatcher.ledger import Ledger
from dispatcher.spool import Spool
from settings import Settings

log = logging.getLogger(__name__)
ASCII_DIGITS = re.compile(r"[0-9]{1,3}")
KEY = re.compile(r"[0-9a-f]{1,64}")
SIGNATURE = re.compile(r"[0-9a-f]{32}")
# What a UCS-2 text is called in smsbox's %C (and what its %c=2 means).
UCS2_CHARSETS = frozenset({"UTF-16BE", "UTF-16", "UCS-2", "UCS-2BE", "ISO-10646-UCS-2"})


def _text(body: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(body, status_code=status)


def raw_query(request: Request) -> dict[str, bytes]:
    """The query string's parameters as bytes: a UCS-2 text is not UTF-8 and must not be decoded as it."""
    query: bytes = request.scope["query_string"]
    pairs = parse_qs(query.decode("latin-1"), encoding="latin-1", keep_blank_values=True)
    return {name: values[0].encode("latin-1") for name, values in pairs.items()}


def decode_text(raw: bytes, coding: str, charset: str) -> str:
    """An inbound text from Kannel's ``%a`` given ``%c`` (coding) and ``%C`` (charset)."""
    charset = charset.strip().upper()
    if coding == "2" or charset in UCS2_CHARSETS:
        return raw.decode("utf-16-be", errors="replace")
    try:
        return raw.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("utf-8", errors="replace")


class ReportApplier:
    """Delivery reports written to the ledger in bulk, each request still answered with its outcome.

    A gateway calls back once per phone, hundreds at a time (smsbox keeps up to 512 calls in flight):
    one transaction per report would queue them all on the ledger's write lock, beside the workers.
    Each request hands its report to one writer thread and waits; the writer applies every report
    that arrived meanwhile (up to ``REPORTS_PER_TRANSACTION``) in one transaction, then answers them
    all. A request whose lot could not be written gets the error, and keeps its report on disk.
    """

    #: seconds between the starts of two lots
    PAUSE = 0.25

    def __init__(self, ledger: Ledger, spool: Spool) -> None:
        self.ledger, self.spool = ledger, spool
        self.next_lot = 0.0
        self.waiting: queue.Queue[tuple[subscribers.Report, Future[str | None]]] = queue.Queue()
        self.lock = threading.Lock()
        self.writer: threading.Thread | None = None

    def apply(self, report: subscribers.Report) -> str | None:
        answer: Future[str | None] = Future()
        self.waiting.put((report, answer))
        with self.lock:
            if self.writer is None or not self.writer.is_alive():
                self.writer = threading.Thread(target=self._write, name="report-writer", daemon=True)
                self.writer.start()
        return answer.result(timeout=120)

    def _write(self) -> None:
        while True:
            try:
                lot = [self.waiting.get(timeout=30)]
            except queue.Empty:
                return  # idle: the next report starts a writer again
            # At most one lot per PAUSE: the reports that come meanwhile join the next one, and
            # between lots the ledger's write lock is the workers'. Written as fast as they came,
            # a stream of reports kept SQLite's lock taken and the workers' claims waiting for it.
            time.sleep(max(0.0, self.next_lot - time.monotonic()))
            self.next_lot = time.monotonic() + self.PAUSE
            while len(lot) < subscribers.REPORTS_PER_TRANSACTION:
                try:
                    lot.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                subscribers.apply_kept_reports(self.ledger, self.spool)
                with self.ledger.session() as session:
                    states = subscribers.apply_reports(session, [report for report, _ in lot])
            except Exception as exc:  # noqa: BLE001 - every waiting request learns why
                for _, answer in lot:
                    answer.set_exception(exc)
                continue
            for (_, answer), state in zip(lot, states, strict=True):
                answer.set_result(state)


def answered(endpoint: Callable[[Request], PlainTextResponse]) -> Callable[[Request], PlainTextResponse]:
    """``endpoint``, answering 503 (which the gateway retries) for a failure of ours, never a 500."""

    def guarded(request: Request) -> PlainTextResponse:
        try:
            return endpoint(request)
        except Exception:  # noqa: BLE001 - the gateway needs an answer it retries, whatever broke
            log.exception("callback %s failed", request.url.path)
            return _text("the callback could not be processed; try again", 503)

    guarded.__name__ = endpoint.__name__
    guarded.__doc__ = endpoint.__doc__
    return guarded


def router(settings: Settings, ledger: Ledger) -> APIRouter:
    """The callbacks' routes, and ``/health``."""
    routes = APIRouter(tags=["callbacks"])
    spool = subscribers.report_spool(settings.var_dir)
    applier = ReportApplier(ledger, spool)
    token = settings.api.token.get_secret_value()
    callback_secret = settings.sms.callback_token.get_secret_value()

    @routes.get("/health", response_class=PlainTextResponse)
    def health() -> PlainTextResponse:
        """Liveness: ``ok``; changes nothing."""
        return _text("ok")

    @answered
    def delivery_report(request: Request) -> PlainTextResponse:
        """A Kannel delivery report (``dlr-url``), signed for its delivery."""
        args = request.query_params
        key, sig = args.get("key", ""), args.get("sig", "")
        raw_type, to = args.get("type", ""), args.get("to", "")
        if not KEY.fullmatch(key):
            return _text("key: missing or not a delivery key", 400)
        if not SIGNATURE.fullmatch(sig) or not hmac.compare_digest(
            sig, callback_signature(callback_secret, key)
        ):
            log.warning("delivery report refused: bad or missing signature")
            return _text("sig: missing or wrong for this delivery", 401)
        if not ASCII_DIGITS.fullmatch(raw_type) or int(raw_type) not in subscribers.REPORTS:
            return _text(f"type: must be one of {sorted(subscribers.REPORTS)}", 400)
        if not to.isascii():
            return _text("to: not a phone number", 400)
        raw_part = args.get("part", "")
        if raw_part and not ASCII_DIGITS.fullmatch(raw_part):
            return _text("part: must be a part number", 400)
        part = int(raw_part) if raw_part else None
        try:
            phone = subscribers.normalise(to, settings.sms.default_region)
        except ValueError as exc:
            return _text(f"to: {exc}", 400)
        try:
            state = applier.apply((key, phone, int(raw_type), part))
        except SQLAlchemyError as exc:
            # The ledger is locked, its disk full or its server gone: keep the report on disk (the
            # gateway will not call again) and apply it once the ledger answers.
            log.warning("delivery report kept for later: the ledger is unavailable (%s)", type(exc).__name__)
            try:
                spool.keep(
                    {"kind": "report", "key": key, "phone": phone, "type": int(raw_type), "part": part}
                )
            except OSError:
                log.error("delivery report could not be kept either (disk full?); asking to retry")
                return _text("the ledger is unavailable; try again", 503)
            return _text("kept; applied when the ledger answers", 202)
        if state is None:
            return _text("no such delivery or recipient", 404)
        return _text(state)

    @answered
    def inbound(request: Request) -> PlainTextResponse:
        """An inbound SMS (Kannel ``get-url``): an opt-out word opts the sender out."""
        given = request.query_params.get("token", "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            log.warning("inbound SMS refused: bad or missing token")
            return _text("token: bad or missing", 401)
        raw = raw_query(request)
        sender = raw.get("from", b"")
        if not sender.isascii():
            return _text("from: not a phone number", 400)
        coding = raw.get("coding", b"").decode("latin-1")
        if coding and not ASCII_DIGITS.fullmatch(coding):
            return _text("coding: must be 0, 1 or 2", 400)
        charset = raw.get("charset", b"").decode("latin-1")
        text = decode_text(raw.get("text", b""), coding, charset)
        try:
            phone = subscribers.normalise(sender.decode(), settings.sms.default_region)
        except ValueError as exc:
            return _text(f"from: {exc}", 400)
        try:
            with ledger.session() as session:
                subscribers.opt_out(session, phone, text)
        except SQLAlchemyError as exc:
            # Kannel calls get-url once: an opt-out is kept on disk, never lost, and applied later.
            log.warning("inbound text kept for later: the ledger is unavailable (%s)", type(exc).__name__)
            try:
                spool.keep({"kind": "opt_out", "phone": phone, "text": text})
            except OSError:
                return _text("the ledger is unavailable; try again", 503)
        # An empty answer: Kannel sends no reply text (the sms-service has max-messages = 0).
        return _text("")

    routes.add_api_route("/sms/dlr", delivery_report, methods=["GET"], response_class=PlainTextResponse)
    routes.add_api_route("/sms/mo", inbound, methods=["GET"], response_class=PlainTextResponse)
    return routes
