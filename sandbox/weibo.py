"""An emulator of the Weibo open API's posting endpoints.

``POST /2/statuses/share.json`` (``access_token``, ``status``, ``rip``), ``POST
/2/statuses/destroy.json`` (``id``), ``GET /2/statuses/user_timeline.json`` (newest first) and
``GET /2/account/get_uid.json``, answering errors as Weibo
does: ``{"error": ..., "error_code": ..., "request": ...}``. It refuses a missing parameter
(10016), a status without a link (10017; share.json requires a link to the app's domain), a
status over 140 characters as Weibo counts them (20012), the same text twice on one account
(20019), an unknown token (21332) and an unknown status id (20101).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from channels.weibo import LINK_PATTERN, weibo_length
from sandbox.emulator import EmulatorState, emulator_app


def create_app(tokens: dict[str, int] | None = None) -> tuple[Flask, EmulatorState]:
    tokens = tokens or {"sandbox-token": 1000001}
    app, state = emulator_app(
        "weibo",
        lambda status: jsonify(
            {
                "error": "User requests out of rate limit!" if status == 429 else "System error!",
                "error_code": 10023 if status == 429 else 10001,
                "request": request.path,
            }
        ),
    )
    statuses: dict[str, dict[str, Any]] = {}
    ids = itertools.count(5200000000000001)

    def fail(code: int, message: str, status: int = 400) -> tuple[Response, int]:
        return jsonify({"error": message, "error_code": code, "request": request.path}), status

    def owner() -> int | None:
        return tokens.get(request.values.get("access_token", ""))

    @app.post("/2/statuses/share.json")
    def share() -> Any:
        uid = owner()
        if uid is None:
            return fail(21332, "invalid_access_token", 401)
        for field in ("status", "rip"):
            if not request.form.get(field):
                return fail(10016, f"miss required parameter ({field}) , see doc for more info")
        text = request.form["status"]
        if not LINK_PATTERN.search(text):
            return fail(
                10017, "parameter (status)'s value invalid, expect (text with a link), see doc for more info"
            )
        if weibo_length(text) > 140:
            return fail(20012, "Text too long, please input text less than 140 characters!")
        if any(s["text"] == text and s["uid"] == uid for s in statuses.values()):
            return fail(20019, "Repeat content!")
        idstr = str(next(ids))
        status = {
            "id": int(idstr),
            "idstr": idstr,
            "mid": idstr,
            "text": text,
            "uid": uid,
            "created_at": datetime.now(UTC).strftime("%a %b %d %H:%M:%S %z %Y"),
            "user": {"id": uid, "idstr": str(uid)},
        }
        statuses[idstr] = status
        state.keep({"action": "share", "id": idstr, "uid": uid, "status": text, "rip": request.form["rip"]})
        return jsonify(status)

    @app.post("/2/statuses/destroy.json")
    def destroy() -> Any:
        uid = owner()
        if uid is None:
            return fail(21332, "invalid_access_token", 401)
        status = statuses.get(request.form.get("id", ""))
        if status is None or status["uid"] != uid:
            return fail(20101, "Target weibo does not exist!")
        del statuses[status["idstr"]]
        state.keep({"action": "destroy", "id": status["idstr"], "uid": uid})
        return jsonify(status)

    @app.get("/2/statuses/user_timeline.json")
    def user_timeline() -> Any:
        uid = owner()
        if uid is None:
            return fail(21332, "invalid_access_token", 401)
        count = min(int(request.args.get("count", 20)), 100)
        page = max(int(request.args.get("page", 1)), 1)
        mine = list(reversed([s for s in statuses.values() if s["uid"] == uid]))
        return jsonify({"statuses": mine[(page - 1) * count : page * count], "total_number": len(mine)})

    @app.get("/2/account/get_uid.json")
    def get_uid() -> Any:
        uid = owner()
        if uid is None:
            return fail(21332, "invalid_access_token", 401)
        return jsonify({"uid": uid})

    return app, state
