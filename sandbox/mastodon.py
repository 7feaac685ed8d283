"""An emulator of a Mastodon instance's status endpoints.

``POST /api/v1/statuses`` (bearer token; ``status``, ``visibility``; an ``Idempotency-Key`` seen in the
last hour answers with the status it created, creating nothing), ``DELETE /api/v1/statuses/:id`` and
``GET /api/v1/accounts/verify_credentials``, answering errors as Mastodon does: ``{"error": "..."}``
with 401 for a bad token, 404 for an unknown status and 422 for a blank or too long status (500
characters, each link counted as 23).
"""

from __future__ import annotations

import html
import itertools
import time
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, jsonify, request

from channels.mastodon import mastodon_length
from sandbox.emulator import EmulatorState, emulator_app

KEY_LIFETIME = 3600


def create_app(tokens: dict[str, str] | None = None, limit: int = 500) -> tuple[Flask, EmulatorState]:
    tokens = tokens or {"sandbox-mastodon-token": "dispatch"}
    app, state = emulator_app(
        "mastodon",
        lambda status: jsonify({"error": "Too many requests" if status == 429 else "Internal server error"}),
    )
    statuses: dict[str, dict[str, Any]] = {}
    keys: dict[tuple[str, str], tuple[float, str]] = {}
    ids = itertools.count(109000000000000001)

    def fail(message: str, status: int) -> tuple[Response, int]:
        return jsonify({"error": message}), status

    def account() -> str | None:
        header = request.headers.get("Authorization", "")
        return tokens.get(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else None

    @app.post("/api/v1/statuses")
    def post() -> Any:
        user = account()
        if user is None:
            return fail("The access token is invalid", 401)
        data = request.get_json(silent=True) or request.form
        text = str(data.get("status") or "")
        key = request.headers.get("Idempotency-Key")
        if key and (user, key) in keys and keys[(user, key)][0] > time.time() - KEY_LIFETIME:
            return jsonify(statuses[keys[(user, key)][1]])
        if not text.strip():
            return fail("Validation failed: Text can't be blank", 422)
        if mastodon_length(text) > limit:
            return fail(f"Validation failed: Text character limit of {limit} exceeded", 422)
        status_id = str(next(ids))
        status = {
            "id": status_id,
            "created_at": datetime.now(UTC).isoformat(),
            "content": f"<p>{html.escape(text)}</p>",
            "text": text,
            "visibility": data.get("visibility", "public"),
            "url": f"{request.host_url.rstrip('/')}/@{user}/{status_id}",
            "account": {"username": user, "acct": user},
        }
        statuses[status_id] = status
        if key:
            keys[(user, key)] = (time.time(), status_id)
        state.keep({"action": "post", "id": status_id, "account": user, "status": text, "key": key})
        return jsonify(status)

    @app.delete("/api/v1/statuses/<status_id>")
    def delete(status_id: str) -> Any:
        user = account()
        if user is None:
            return fail("The access token is invalid", 401)
        status = statuses.get(status_id)
        if status is None or status["account"]["username"] != user:
            return fail("Record not found", 404)
        del statuses[status_id]
        state.keep({"action": "delete", "id": status_id, "account": user})
        return jsonify(status)

    @app.get("/api/v1/accounts/verify_credentials")
    def verify() -> Any:
        user = account()
        if user is None:
            return fail("The access token is invalid", 401)
        return jsonify({"id": "1", "username": user, "acct": user})

    return app, state
