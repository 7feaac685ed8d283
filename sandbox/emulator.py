"""What every channel emulator shares: a record of what it received, and fault injection.

Each emulator is a Flask app built by :func:`emulator_app`. Besides its channel's real API it
answers, under ``/_sandbox/``:

- ``GET /_sandbox/received``: every state-changing request it accepted, in order, as JSON; an emulator
  told to keep counts only (``state.summary`` set, ``state.received`` kept short) answers its counts
  instead, with the entries it kept under ``last``;
- ``POST /_sandbox/faults``: queue faults, a JSON list (or one object) of
  ``{"mode": "status"|"delay"|"lost", "status": 503, "retry_after": 2, "seconds": 3,
  "count": 1, "method": "POST", "path": "/2/statuses/share.json"}``:
  ``status`` answers with that status (and a ``Retry-After`` header) instead of acting;
  ``delay`` waits ``seconds`` before acting; ``lost`` acts, then waits ``seconds`` before answering,
  so a client with a shorter timeout never learns the outcome; ``reset`` drops the connection with a
  TCP reset before acting, ``reset_after`` after acting (the answer is lost);
- ``POST /_sandbox/chaos``: random faults instead of queued ones, ``{"rates": {"status503": 0.05,
  "status429": 0.03, "delay": 0.02, "lost": 0.02, "reset": 0.02, "reset_after": 0.02}, "seconds": 3,
  "seed": 7}`` (an empty ``rates`` stops them); ``GET`` tells how many of each were injected;
- ``GET``/``POST /_sandbox/clock``: the emulator's clock (``state.clock``), moved on by
  ``{"advance": seconds}``;
- ``POST /_sandbox/reset``: forget everything received and every queued fault, put the clock back,
  and run each emulator's own ``state.on_reset`` hooks.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, jsonify, request


@dataclass
class Fault:
    mode: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    count: int = 1
    method: str | None = None
    path: str | None = None

    def matches(self) -> bool:
        if self.method and request.method != self.method.upper():
            return False
        return not self.path or request.path.startswith(self.path)


@dataclass
class Chaos:
    """Random faults: each request draws one with the given probabilities, from a seeded generator."""

    rates: dict[str, float]
    seconds: float = 3.0
    random: random.Random = field(default_factory=random.Random)
    injected: dict[str, int] = field(default_factory=dict)

    def draw(self) -> Fault | None:
        roll = self.random.random()
        for name, rate in sorted(self.rates.items()):
            if roll < rate:
                self.injected[name] = self.injected.get(name, 0) + 1
                if name.startswith("status"):
                    status = int(name.removeprefix("status"))
                    return Fault("status", status=status, retry_after=1 if status == 429 else None)
                return Fault(name, seconds=self.seconds)
            roll -= rate
        return None


class Clock:
    """The emulator's time: the real clock plus an offset the tests move with ``/_sandbox/clock``."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@dataclass
class EmulatorState:
    received: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    chaos: Chaos | None = None
    clock: Clock = field(default_factory=Clock)
    #: what an emulator forgets besides the harness's record when ``/_sandbox/reset`` is posted
    on_reset: list[Callable[[], None]] = field(default_factory=list)
    #: counts only: what ``/_sandbox/received`` answers instead of every entry
    summary: Callable[[], dict[str, Any]] | None = None

    def keep(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.received.append({"at": time.time(), **entry})

    def take_fault(self) -> Fault | None:
        with self.lock:
            if self.chaos is not None:
                return self.chaos.draw()
            for fault in self.faults:
                if fault.matches():
                    fault.count -= 1
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return fault
        return None


ErrorBody = Callable[[int], Response]


def _reset_connection() -> None:
    """Drop the client's connection with a TCP reset, as a crashing server or a proxy would."""
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # shutdown, not close: the server's own file objects still hold the socket open.
        sock.shutdown(socket.SHUT_RDWR)


def emulator_app(name: str, error_body: ErrorBody) -> tuple[Flask, EmulatorState]:
    """A Flask app with the sandbox routes; ``error_body(status)`` shapes injected errors like the API."""
    app = Flask(name)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    state = EmulatorState()

    @app.before_request
    def _inject() -> Response | None:
        if request.path.startswith("/_sandbox/"):
            return None
        fault = state.take_fault()
        if fault is None:
            return None
        if fault.mode == "status":
            response = error_body(fault.status)
            response.status_code = fault.status
            if fault.retry_after is not None:
                response.headers["Retry-After"] = str(int(fault.retry_after))
            return response
        if fault.mode == "delay":
            time.sleep(fault.seconds)
        elif fault.mode == "lost":
            g.lost_for = fault.seconds
        elif fault.mode == "reset":
            _reset_connection()
            return Response(status=500)
        elif fault.mode == "reset_after":
            g.reset_after = True
        return None

    @app.after_request
    def _lose(response: Response) -> Response:
        seconds = g.pop("lost_for", None)
        if seconds:
            time.sleep(seconds)
        if g.pop("reset_after", False):
            _reset_connection()
        return response

    @app.get("/_sandbox/received")
    def _received() -> Response:
        with state.lock:
            if state.summary is not None:
                return jsonify({**state.summary(), "last": list(state.received)})
            return jsonify(list(state.received))

    @app.post("/_sandbox/faults")
    def _faults() -> tuple[Response, int]:
        data = request.get_json(force=True)
        specs = data if isinstance(data, list) else [data]
        try:
            faults = [Fault(**spec) for spec in specs]
        except TypeError as exc:
            return jsonify({"error": str(exc)}), 400
        with state.lock:
            state.faults.extend(faults)
        return jsonify({"queued": len(faults)}), 201

    @app.route("/_sandbox/chaos", methods=["GET", "POST"])
    def _chaos() -> Any:
        if request.method == "POST":
            data = request.get_json(force=True) or {}
            with state.lock:
                if data.get("rates"):
                    state.chaos = Chaos(
                        dict(data["rates"]), float(data.get("seconds", 3.0)), random.Random(data.get("seed"))
                    )
                else:
                    state.chaos = None
        with state.lock:
            return jsonify({"injected": dict(state.chaos.injected) if state.chaos else {}})

    @app.post("/_sandbox/reset")
    def _reset() -> Response:
        with state.lock:
            state.received.clear()
            state.faults.clear()
            state.clock.offset = 0.0
            for forget in state.on_reset:
                forget()
        return jsonify({"reset": True})

    @app.route("/_sandbox/clock", methods=["GET", "POST"])
    def _clock() -> Response:
        if request.method == "POST":
            data = request.get_json(force=True, silent=True) or {}
            with state.lock:
                state.clock.offset += float(data.get("advance", 0))
        return jsonify({"now": state.clock.now(), "offset": state.clock.offset})

    return app, state
