"""An emulator of a sign controller serving several signs over HTTP, checking NTCIP 1203 MULTI.

Per sign (``/signs/<id>``): ``PUT /message`` activates ``{"id", "multi", "priority",
"duration_minutes"}`` after checking the MULTI string (known tags only, doubled brackets for literal
ones) against the sign's lines, characters per line and pages; a message of lower priority than the
one showing is refused with 409. ``GET /message`` tells what is showing (or ``null``),
``DELETE /message/<id>`` blanks the sign if that message is showing, ``GET /status`` reports.
Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Flask, jsonify, request

from channels.display import Sign
from sandbox.emulator import EmulatorState, emulator_app

# Tags of NTCIP 1203 MULTI this controller understands (a subset, as real signs support subsets).
KNOWN_TAG = re.compile(
    r"nl\d*|np|pt\d*o\d*|jl[1-5]|jp[1-4]|fo\d*(,[0-9a-fA-F]{4})?|fl(t\d+o\d+)?|/fl|sc\d+|/sc|cf\d+(,\d+,\d+)?"
)


def parse_multi(multi: str) -> list[list[str]]:
    """Pages of lines of visible text; raises ValueError naming the first problem."""
    pages: list[list[str]] = [[""]]
    i = 0
    while i < len(multi):
        ch = multi[i]
        if multi.startswith("[[", i) or multi.startswith("]]", i):
            pages[-1][-1] += ch
            i += 2
            continue
        if ch == "]":
            raise ValueError(f"unmatched ']' at {i}")
        if ch == "[":
            end = multi.find("]", i)
            if end == -1:
                raise ValueError(f"unterminated tag at {i}")
            tag = multi[i + 1 : end]
            if not KNOWN_TAG.fullmatch(tag):
                raise ValueError(f"unsupported tag [{tag}] at {i}")
            if tag.startswith("nl"):
                pages[-1].append("")
            elif tag == "np":
                pages.append([""])
            i = end + 1
            continue
        pages[-1][-1] += ch
        i += 1
    return pages


def create_app(signs: list[Sign]) -> tuple[Flask, EmulatorState]:
    app, state = emulator_app("signs", lambda status: jsonify({"error": "controller unavailable"}))
    by_id = {sign.address if "://" not in sign.address else sign.id: sign for sign in signs}
    showing: dict[str, dict[str, Any]] = {}

    def current(sign_id: str) -> dict[str, Any] | None:
        message = showing.get(sign_id)
        if message and message["until"] <= time.time():
            del showing[sign_id]
            return None
        return message

    @app.put("/signs/<sign_id>/message")
    def activate(sign_id: str) -> Any:
        sign = by_id.get(sign_id)
        if sign is None:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        data = request.get_json(silent=True) or {}
        for field in ("id", "multi", "priority"):
            if field not in data:
                return jsonify({"error": f"missing field {field}"}), 400
        try:
            pages = parse_multi(str(data["multi"]))
        except ValueError as exc:
            return jsonify({"error": f"bad MULTI: {exc}"}), 400
        if len(pages) > sign.max_pages:
            return jsonify({"error": f"{len(pages)} pages, the sign shows {sign.max_pages}"}), 400
        for number, page in enumerate(pages, 1):
            if len(page) > sign.lines:
                return jsonify(
                    {"error": f"page {number} has {len(page)} lines, the sign has {sign.lines}"}
                ), 400
            for line in page:
                if len(line) > sign.chars_per_line:
                    return jsonify({"error": f"line {line!r} is longer than {sign.chars_per_line}"}), 400
        now_showing = current(sign_id)
        if now_showing and now_showing["id"] == data["id"]:
            return jsonify({"id": data["id"], "status": "active"})
        if now_showing and int(data["priority"]) < now_showing["priority"]:
            return jsonify({"error": "a message of higher priority is showing"}), 409
        minutes = float(data.get("duration_minutes") or 60)
        message = {
            "id": data["id"],
            "multi": data["multi"],
            "pages": pages,
            "priority": int(data["priority"]),
            "until": time.time() + minutes * 60,
        }
        showing[sign_id] = message
        state.keep(
            {
                "sign": sign_id,
                "id": data["id"],
                "multi": data["multi"],
                "priority": int(data["priority"]),
                "pages": pages,
            }
        )
        return jsonify({"id": data["id"], "status": "active"})

    @app.get("/signs/<sign_id>/message")
    def shown(sign_id: str) -> Any:
        if sign_id not in by_id:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        message = current(sign_id)
        return jsonify(message and {k: message[k] for k in ("id", "multi", "priority")})

    @app.delete("/signs/<sign_id>/message/<message_id>")
    def blank(sign_id: str, message_id: str) -> Any:
        if sign_id not in by_id:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        message = current(sign_id)
        cleared = bool(message and message["id"] == message_id)
        if cleared:
            del showing[sign_id]
            state.keep({"sign": sign_id, "id": message_id, "cleared": True})
        return jsonify({"cleared": cleared})

    @app.get("/signs/<sign_id>/status")
    def status(sign_id: str) -> Any:
        if sign_id not in by_id:
            return jsonify({"error": f"no sign {sign_id}"}), 404
        message = current(sign_id)
        return jsonify({"id": sign_id, "online": True, "showing": message["id"] if message else None})

    return app, state
