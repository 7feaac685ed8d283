"""What tests share besides fixtures: item documents, settings values, waiting for a condition, talking to
the emulators' ``/_sandbox/`` routes, moving a delivery's time into the past, and a fake channel."""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from flask.testing import FlaskClient
from pydantic import BaseModel
from sqlalchemy import update

from channels.base import Channel, Health, Payload, Publication, Receipt, Renderer, Target
from dispatcher import approval, subscribers
from dispatcher.errors import (
    ChannelError,
    OutcomeUnknownError,
    PermanentChannelError,
    TemporaryChannelError,
)
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, Ledger, utcnow
from dispatcher.outbox import Broker
from sandbox.server import Sandbox
from settings import Settings

T = TypeVar("T")

WARNING: dict[str, Any] = {
    "kind": "warning",
    "title": "朝阳区暴雨橙色预警",
    "event": "暴雨",
    "body": "预计未来3小时内朝阳区将出现50毫米以上降雨，请减少外出。",
    "short_text": "朝阳区暴雨橙色预警：未来3小时强降雨，请减少外出。",
    "channels": ["website", "sms", "display", "microblog"],
    "areas": ["110105"],
    "author": "张敏",
    "department": "朝阳区应急管理局",
    "severity": "Moderate",  # one approver; severe warnings need two (tested on their own)
    "urgency": "Immediate",
    "certainty": "Likely",
}


def changed(document: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``document`` with ``changes`` applied: a value set, or None removing the field."""
    doc = copy.deepcopy(document)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def item_doc(**changes: Any) -> dict[str, Any]:
    """A valid warning document, expiring tomorrow, with ``changes`` applied (None removes a field)."""
    expiring = {**WARNING, "expires": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    return changed(expiring, changes)


# -- settings -----------------------------------------------------------------------------------

#: Where nothing listens: the channels of a test that starts no emulator point here, not at the default
#: addresses, where a sandbox a developer left running (``dispatch sandbox``) would answer.
NOWHERE = "http://127.0.0.1:9"

_SECTIONS = {
    name
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def merged(*layers: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """Settings values, later layers over earlier ones; a section (``website``, ``sms``…) given as a dict
    is merged key by key, so ``merged(values, sms={"timeout": 5})`` keeps the rest of ``sms``."""
    result: dict[str, Any] = {}
    for layer in (*layers, changes):
        for key, value in layer.items():
            if key in _SECTIONS and isinstance(value, dict) and isinstance(result.get(key), dict):
                result[key] = {**result[key], **value}
            else:
                result[key] = value
    return result


def pointed_at(sandbox: Sandbox) -> dict[str, Any]:
    """The settings values that point every channel at ``sandbox``'s emulators."""
    values: dict[str, Any] = {}
    for name, value in sandbox.environment().items():
        section, _, key = name.removeprefix("DISPATCH_").lower().partition("__")
        values.setdefault(section, {})[key] = value
    return values


def environment_of(values: dict[str, Any]) -> dict[str, str]:
    """``DISPATCH_*`` variables carrying ``values``, for a process that reads its settings at start."""

    def text(value: Any) -> str:
        return json.dumps(value) if isinstance(value, dict | list) else str(value)

    variables = {}
    for key, value in values.items():
        if key in _SECTIONS and isinstance(value, dict):
            for inner, setting in value.items():
                variables[f"DISPATCH_{key.upper()}__{inner.upper()}"] = text(setting)
        else:
            variables[f"DISPATCH_{key.upper()}"] = text(value)
    return variables


# -- time ---------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float = 10, what: str = "") -> T:
    """The first truthy answer of ``predicate``, asked until ``timeout`` seconds have passed; after that
    the test fails naming ``what`` it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        answer = predicate()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        time.sleep(0.05)


def holds_for(predicate: Callable[[], object], seconds: float, what: str = "") -> None:
    """``predicate`` stays true for ``seconds``: for something that must not happen (a second report, a
    part past the first) there is no event to wait for, only a time to watch."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"no longer true: {what or predicate}"
        time.sleep(0.05)
    assert predicate(), f"no longer true: {what or predicate}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the emulators ------------------------------------------------------------------------------


def numbers(ledger: Ledger, delivery: DeliveryRow) -> list[str]:
    """The phones of an SMS batch, as approval wrote them into the ledger."""
    with ledger.session() as session:
        return subscribers.phones_of(session, delivery.id)


def received(sandbox: Sandbox, name: str) -> list[dict[str, Any]]:
    """Every state-changing request emulator ``name`` accepted, in order."""
    return requests.get(f"{sandbox.urls[name]}/_sandbox/received", timeout=5).json()


def inject(sandbox: Sandbox, name: str, **fault: Any) -> None:
    """Queue one fault in emulator ``name`` (``mode``, ``status``, ``seconds``, ``method``, ``path``…)."""
    requests.post(f"{sandbox.urls[name]}/_sandbox/faults", json=fault, timeout=5).raise_for_status()


def faults_left(sandbox: Sandbox, name: str) -> int:
    """How many injected faults emulator ``name`` has still to use: zero once the request it waited for
    has arrived. Read from the emulator's state in this process: its routes cannot say."""
    state = sandbox.states[name]
    with state.lock:
        return sum(fault.count for fault in state.faults)


def site_posts(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Every post the WordPress emulator holds, trashed and draft ones included."""
    return requests.get(f"{sandbox.urls['website']}/_sandbox/posts", timeout=5).json()


def start_of_window(client: FlaskClient, seconds: int) -> None:
    """Move an emulator's clock just past the start of its next rate-limit window of ``seconds``, so a
    test's requests share one window whatever the time of day."""
    now = client.get("/_sandbox/clock").get_json()["now"]
    client.post("/_sandbox/clock", json={"advance": seconds - now % seconds + 1})


# -- the ledger ---------------------------------------------------------------------------------


def approved(
    ledger: Ledger, settings: Settings, *, broker: Broker | None = None, **changes: Any
) -> list[DeliveryRow]:
    """Submit a warning with ``changes``, approve it as someone else, and return its deliveries."""
    item_id = approval.submit(ledger, parse_item(item_doc(**changes)))
    approval.approve(ledger, settings, item_id, "陈刚", broker)
    with ledger.session() as session:
        return session.query(DeliveryRow).filter_by(item_id=item_id).order_by(DeliveryRow.id).all()


def make_due(ledger: Ledger, delivery_id: int | None = None) -> None:
    """Bring a delivery's next attempt (every delivery's, without an id) into the past."""
    statement = update(DeliveryRow).values(next_attempt_at=utcnow() - timedelta(seconds=1))
    if delivery_id is not None:
        statement = statement.where(DeliveryRow.id == delivery_id)
    with ledger.session() as session:
        session.execute(statement)


# -- a channel without a peer -------------------------------------------------------------------


class FakeChannel(Channel):
    """A channel with no peer, for flow tests where an emulator adds nothing (circuits, rate limits,
    retries): it records what it was asked, keeps what landed, and fails as it is told to.

    Hand it to the flow as ``deliver(..., channel_for=fake.named)``.
    """

    name = "fake"

    def __init__(self) -> None:
        super().__init__(public_url=NOWHERE)
        #: every call, in order: (verb, idempotency key or provider id)
        self.calls: list[tuple[str, str]] = []
        #: what reached the peer, by idempotency key
        self.landed: dict[str, Receipt] = {}
        self._failures: list[Callable[[], ChannelError]] = []

    def named(self, _channel: str) -> FakeChannel:
        """This fake, whichever channel the flow asks for."""
        return self

    def asked(self, verb: str) -> list[str]:
        """The keys (or provider ids) of every call of ``verb``, in order."""
        return [key for called, key in self.calls if called == verb]

    # -- what to fail -------------------------------------------------------------------------

    def fail_temporarily(self, times: int = 1, **details: Any) -> None:
        """The next ``times`` sends fail as a 503 would (``retry_after``, ``wait``… as given)."""
        details.setdefault("code", 503)
        self._failures += [lambda: TemporaryChannelError("fake: HTTP 503", **details)] * times

    def fail_permanently(self, times: int = 1, **details: Any) -> None:
        """The next ``times`` sends are refused for good (``alert=True`` for bad credentials)."""
        details.setdefault("code", 400)
        self._failures += [lambda: PermanentChannelError("fake: HTTP 400: refused", **details)] * times

    def lose_answers(self, times: int = 1) -> None:
        """The next ``times`` sends land, but their answers are lost: the outcome is unknown."""
        self._failures += [lambda: OutcomeUnknownError("fake: no answer")] * times

    # -- the verbs ----------------------------------------------------------------------------

    def targets(self, publication: Publication) -> list[Target]:
        return [Target("fake")]

    def render(self, publication: Publication, target: Target, renderer: Renderer) -> Payload:
        return Payload(self.name, target.name, {"text": publication.item.short})

    def send(self, payload: Payload, key: str) -> Receipt:
        self.calls.append(("send", key))
        failure = self._failures.pop(0)() if self._failures else None
        if isinstance(failure, OutcomeUnknownError) or failure is None:
            self.landed.setdefault(key, Receipt(f"fake-{len(self.landed) + 1}"))
        if failure is not None:
            raise failure
        return self.landed[key]

    def lookup(self, payload: Payload, key: str) -> Receipt | None:
        self.calls.append(("lookup", key))
        return self.landed.get(key)

    def retract(self, payload: Payload, receipt: Receipt) -> None:
        self.calls.append(("retract", receipt.provider_id or ""))
        self.landed = {k: r for k, r in self.landed.items() if r.provider_id != receipt.provider_id}

    def probe(self) -> Health:
        self.calls.append(("probe", ""))
        return Health(True, "fake: no peer to ask", 0.0)
