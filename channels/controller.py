"""The HTTP sign controller driver: one sign reached at its address over HTTP.

It speaks ``PUT <address>/message`` with the MULTI string, a priority, a duration and the message id,
``GET <address>/message`` (what is shown now), ``GET <address>/messages`` (every message it holds: the
lookup), ``DELETE <address>/message/<id>`` and ``GET <address>/config`` (its size, font and control
mode). Requests go through the display channel's HTTP boundary, which classifies the controller's
answers (``preempted`` and ``local_control`` are waits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

Request = Callable[..., requests.Response]


class ControllerSign:
    """A :class:`~channels.signs.SignDriver` for a sign behind an HTTP controller."""

    def __init__(self, address: str, request: Request, *, config_timeout: float = 5.0) -> None:
        self.address = address.rstrip("/")
        self.request = request
        self.config_timeout = config_timeout

    def activate(self, multi: str, priority: int, duration_minutes: int, key: str) -> None:
        self.request(
            "PUT",
            f"{self.address}/message",
            json={"id": key, "multi": multi, "priority": priority, "duration_minutes": duration_minutes},
        )

    def showing(self) -> dict[str, Any] | None:
        return self.request("GET", f"{self.address}/message", idempotent=True).json() or None

    def holds(self, key: str, priority: int) -> bool:
        messages = self.request("GET", f"{self.address}/messages", idempotent=True).json()
        return any(message.get("id") == key for message in messages)

    def clear(self, key: str) -> None:
        self.request("DELETE", f"{self.address}/message/{key}", idempotent=True)

    def configuration(self) -> dict[str, Any]:
        return self.request(
            "GET", f"{self.address}/config", idempotent=True, timeout=self.config_timeout
        ).json()
