"""The dispatcher's HTTP API: callbacks from the SMS gateway.

- ``GET|POST /sms/dlr?token=…&key=…&type=%d&to=%p`` — a Kannel delivery report for one recipient of
  the delivery whose idempotency key is ``key`` (the SMS adapter puts these in ``dlr-url``);
- ``GET|POST /sms/mo?token=…&from=%p&text=%a`` — an inbound SMS (a Kannel ``sms-service`` with
  ``get-url``); ``TD``, ``T``, ``STOP`` or ``退订`` opts the sender out;
- ``GET /health`` — liveness, changes nothing.

Every endpoint that changes state needs the shared token (``DISPATCH_API__TOKEN``); Kannel cannot
send headers with its callbacks, so the token travels in the URL, and the server keeps no access log.
"""

from __future__ import annotations

import hmac
import logging

from flask import Flask, Response, request

from dispatcher import subscribers
from dispatcher.ledger import Ledger
from settings import Settings

log = logging.getLogger(__name__)


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")


def create_api(settings: Settings, ledger: Ledger) -> Flask:
    app = Flask("dispatcher")
    token = settings.api.token.get_secret_value()

    @app.before_request
    def _authenticate() -> Response | None:
        if request.path == "/health":
            return None
        given = request.values.get("token", "")
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            log.warning("callback refused: bad or missing token (%s %s)", request.method, request.path)
            return _text("bad or missing token", 401)
        return None

    @app.get("/health")
    def health() -> Response:
        return _text("ok")

    @app.route("/sms/dlr", methods=["GET", "POST"])
    def delivery_report() -> Response:
        key = request.values.get("key", "")
        raw_type = request.values.get("type", "")
        if not key or not raw_type.isdigit():
            return _text("key and a numeric type are required", 400)
        try:
            phone = subscribers.normalise(request.values.get("to", ""), settings.sms.default_region)
        except ValueError as exc:
            return _text(str(exc), 400)
        with ledger.session() as session:
            state = subscribers.apply_report(session, key, phone, int(raw_type))
        if state is None:
            return _text("no such delivery or recipient", 404)
        return _text(state)

    @app.route("/sms/mo", methods=["GET", "POST"])
    def inbound() -> Response:
        try:
            phone = subscribers.normalise(request.values.get("from", ""), settings.sms.default_region)
        except ValueError as exc:
            return _text(str(exc), 400)
        with ledger.session() as session:
            subscribers.opt_out(session, phone, request.values.get("text", ""))
        # An empty answer: Kannel sends no reply text (the sms-service has max-messages = 0).
        return _text("")

    return app
