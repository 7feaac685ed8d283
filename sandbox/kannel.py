"""An emulator of Kannel's smsbox HTTP ``sendsms`` interface, with delivery reports and inbound SMS.

Answers as smsbox 1.4.5 does: ``202 0: Accepted for delivery`` for a good request, ``403
Authorization failed for sendsms`` for a bad login, ``400`` with the reason for a missing sender,
receiver or text or a bad ``coding``. Every recipient becomes one received message. When the request
carries ``dlr-url`` and a ``dlr-mask`` with bit 1 (delivered) or 8 (SMSC success), the emulator calls
the URL back for each recipient — SMSC success first, then delivered, as bearerbox does — filling in
``%d``, ``%p``, ``%T`` and ``%A``.

``POST /_sandbox/mo`` with ``{"from", "text"}`` plays a phone texting the gateway: the emulator calls
``mo_url`` as an ``sms-service`` group's ``get-url`` would (``%p`` sender, ``%P`` receiver, ``%a`` text).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
import urllib.request
from typing import Any

from flask import Flask, Response, request

from sandbox.emulator import EmulatorState, emulator_app


def _text(body: str, status: int) -> tuple[Response, int]:
    return Response(body, status=status, mimetype="text/html"), status


def _report(url: str, number: str, kind: int) -> None:
    filled = (
        url.replace("%d", str(kind))
        .replace("%p", urllib.parse.quote(number))
        .replace("%T", str(int(time.time())))
        .replace("%A", urllib.parse.quote("ACK/" if kind in (1, 8) else "NACK/"))
    )
    try:
        urllib.request.urlopen(filled, timeout=5).close()
    except OSError:
        pass  # nobody listening: a real gateway retries, the emulator gives up


def create_app(
    username: str = "dispatch",
    password: str = "sandbox",
    report_delay: float = 0.05,
    mo_url: str | None = None,
) -> tuple[Flask, EmulatorState]:
    app, state = emulator_app("kannel", lambda status: Response("Sending failed.", mimetype="text/html"))

    @app.route("/cgi-bin/sendsms", methods=["GET", "POST"])
    def sendsms() -> Any:
        args = request.values
        if args.get("username") != username or args.get("password") != password:
            return _text("Authorization failed for sendsms", 403)
        to = args.get("to", "").split()
        if not to:
            return _text("Missing receiver number", 400)
        if any(not number.lstrip("+").isdigit() for number in to):
            return _text("Number(s) has/have been denied by white- and/or black-lists.", 403)
        if not args.get("from"):
            return _text("Sender missing and no global set, rejected", 400)
        text = args.get("text")
        if text is None or text == "":
            return _text("Missing text", 400)
        coding = args.get("coding", "0")
        if coding not in ("0", "1", "2"):
            return _text("Coding field contains invalid value", 400)
        dlr_url = args.get("dlr-url")
        dlr_mask = int(args.get("dlr-mask", "0") or 0)
        for number in to:
            state.keep(
                {
                    "to": number,
                    "from": args.get("from"),
                    "text": text,
                    "coding": int(coding),
                    "charset": args.get("charset"),
                    "dlr_mask": dlr_mask,
                    "dlr_url": dlr_url,
                }
            )
        if dlr_url and dlr_mask & (1 | 8):
            kinds = [kind for kind in (8, 1) if dlr_mask & kind]

            def reports() -> None:
                time.sleep(report_delay)
                for number in to:
                    for kind in kinds:
                        _report(dlr_url, number, kind)

            threading.Thread(target=reports, daemon=True).start()
        return _text("0: Accepted for delivery", 202)

    @app.post("/_sandbox/mo")
    def inbound() -> Any:
        """A phone sends a text: call the sms-service get-url as smsbox does (%p sender, %a text)."""
        data = request.get_json(force=True)
        if not mo_url:
            return {"error": "no MO URL configured"}, 409
        url = (
            mo_url.replace("%p", urllib.parse.quote(data["from"]))
            .replace("%P", urllib.parse.quote(data.get("to", "12379")))
            .replace("%a", urllib.parse.quote(data["text"]))
        )
        with urllib.request.urlopen(url, timeout=5) as answer:
            return {"status": answer.status, "body": answer.read().decode()}

    return app, state
