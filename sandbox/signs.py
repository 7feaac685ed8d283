"""An emulator of a sign controller serving several signs over HTTP, checking NTCIP 1203 MULTI.

Per sign (``/signs/<id>``): ``PUT /message`` activates ``{"id", "multi", "priority",
"duration_minutes"}`` after checking the MULTI string (known tags only, doubled brackets for literal
ones) against the sign's lines, width in cells, pages and character set; a message of lower priority
than the one showing is refused with 409 and the seconds until that one expires. When a message
expires or is cleared, the one it covered shows again if still valid. ``GET /message`` tells what is
showing (or ``null``), ``GET /messages`` every valid message it holds (a covered one included),
``DELETE /message/<id>`` removes that message, ``GET /status`` reports.
Errors are ``{"error": "..."}``; an offline sign answers 504.

For the tests: ``POST /_sandbox/clock {"advance": seconds}`` moves the controller's clock,
``POST /_sandbox/signs/<id>/reboot`` makes a sign forget its messages, ``POST
/_sandbox/signs/<id>/offline {"offline": true|false}`` takes it off the network.
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
    by_id = {
        sign.address if "://" not in sign.address else sign.id: sign
        for sign in signs
        if sign.driver == "http"
    }
    # Per sign, the messages it holds: the last one shows; when it expires or is cleared, the one
    # beneath it (if still valid) shows again, as a sign restores what a pre-empting warning covered.
    stacks: dict[str, list[dict[str, Any]]] = {sign_id: [] for sign_id in by_id}
    offline: set[str] = set()
    clock = {"offset": 0.0}

    def now() -> float:
        return time.time() + clock["offset"]

    def current(sign_id: str) -> dict[str, Any] | None:
        stack = stacks[sign_id]
        while stack and stack[-1]["until"] <= now():
            stack.pop()
        return stack[-1] if stack else None

    def problem(sign: Sign, pages: list[list[str]], multi: str) -> str | None:
        if len(pages) > sign.max_pages:
            return f"{len(pages)} pages, the sign shows {sign.max_pages}"
        for number, page in enumerate(pages, 1):
            if len(page) > sign.lines:
                return f"page {number} has {len(page)} lines, the sign has {sign.lines}"
            for line in page:
                if sign.width(line) > sign.chars_per_line:
                    return f"line {line!r} is wider than {sign.chars_per_line} cells"
        unshowable = sign.unshowable("".join("".join(page) for page in pages))
        if unshowable:
            return f"characters outside {sign.charset}: {' '.join(unshowable)}"
        return None

    @app.before_request
    def _reachable() -> Any:
        parts = request.path.split("/")
        if len(parts) > 2 and parts[1] == "signs":
            if parts[2] not in by_id:
                return jsonify({"error": f"no sign {parts[2]}"}), 404
            if parts[2] in offline:
                return jsonify({"error": f"sign {parts[2]} does not answer"}), 504
        return None

    @app.put("/signs/<sign_id>/message")
    def activate(sign_id: str) -> Any:
        sign = by_id[sign_id]
        data = request.get_json(silent=True) or {}
        for field in ("id", "multi", "priority"):
            if field not in data:
                return jsonify({"error": f"missing field {field}"}), 400
        try:
            pages = parse_multi(str(data["multi"]))
        except ValueError as exc:
            return jsonify({"error": f"bad MULTI: {exc}"}), 400
        refused = problem(sign, pages, str(data["multi"]))
        if refused:
            return jsonify({"error": refused}), 400
        shown_now = current(sign_id)
        if any(m["id"] == data["id"] for m in stacks[sign_id]):
            # The message id is the idempotency key: a repeat of a held message changes nothing.
            status = "active" if shown_now and shown_now["id"] == data["id"] else "held"
            return jsonify({"id": data["id"], "status": status})
        if shown_now and int(data["priority"]) < shown_now["priority"]:
            wait = max(1, int(shown_now["until"] - now()))
            return jsonify(
                {"error": "a message of higher priority is showing", "code": "preempted", "retry_after": wait}
            ), 409
        minutes = float(data.get("duration_minutes") or 60)
        message = {
            "id": data["id"],
            "multi": data["multi"],
            "pages": pages,
            "priority": int(data["priority"]),
            "until": now() + minutes * 60,
        }
        stacks[sign_id].append(message)
        state.keep(
            {
                "sign": sign_id,
                "id": data["id"],
                "multi": data["multi"],
                "priority": message["priority"],
                "pages": pages,
            }
        )
        return jsonify({"id": data["id"], "status": "active"})

    @app.get("/signs/<sign_id>/message")
    def shown(sign_id: str) -> Any:
        message = current(sign_id)
        return jsonify(message and {k: message[k] for k in ("id", "multi", "priority")})

    @app.get("/signs/<sign_id>/messages")
    def held(sign_id: str) -> Any:
        """Every valid message the sign holds, the one showing last."""
        current(sign_id)
        return jsonify(
            [{"id": m["id"], "priority": m["priority"]} for m in stacks[sign_id] if m["until"] > now()]
        )

    @app.delete("/signs/<sign_id>/message/<message_id>")
    def blank(sign_id: str, message_id: str) -> Any:
        before = len(stacks[sign_id])
        stacks[sign_id] = [m for m in stacks[sign_id] if m["id"] != message_id]
        cleared = len(stacks[sign_id]) < before
        if cleared:
            state.keep({"sign": sign_id, "id": message_id, "cleared": True})
        return jsonify({"cleared": cleared})

    @app.get("/signs/<sign_id>/status")
    def status(sign_id: str) -> Any:
        message = current(sign_id)
        return jsonify({"id": sign_id, "online": True, "showing": message["id"] if message else None})

    @app.post("/_sandbox/clock")
    def advance() -> Any:
        clock["offset"] += float((request.get_json(force=True) or {}).get("advance", 0))
        return jsonify({"offset": clock["offset"]})

    @app.post("/_sandbox/signs/<sign_id>/reboot")
    def reboot(sign_id: str) -> Any:
        stacks[sign_id] = []  # a controller that restarts forgets what it showed
        return jsonify({"rebooted": sign_id})

    @app.post("/_sandbox/signs/<sign_id>/offline")
    def go_offline(sign_id: str) -> Any:
        wanted = (request.get_json(force=True) or {}).get("offline", True)
        (offline.add if wanted else offline.discard)(sign_id)
        return jsonify({"offline": sorted(offline)})

    return app, state
