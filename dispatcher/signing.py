"""Signed task messages: a kombu serializer that refuses any message without a valid HMAC.

Every task the dispatcher publishes is serialized as ``application/x-dispatch-signed``: the JSON body
with an HMAC-SHA256 of it under the signing key. The worker accepts only that content type, so a task
injected into the broker by anyone without the key — plain JSON, pickle, or a signed body altered
after signing — fails to decode: Celery logs it and drops it, and it never runs. Replaying a signed
message does nothing new: the ledger decides whether a delivery still needs sending.

The signature covers the body, and the body names the task it was signed for (``signed_for``): the
task name travels in a header the serializer never sees, so every task refuses a body signed for
another. The key is ``DISPATCH_TASK_SIGNING_KEY``; without it, one is generated once into ``var/``
when the settings are loaded — enough for the embedded set-up, where the producer and the workers
share the machine. Workers on other machines need the same key set in their environment. This module
is plain HMAC; ``dispatcher.tasks`` registers the serializer with the queue library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any

from dispatcher.errors import ConfigurationError
from settings import Settings

log = logging.getLogger(__name__)
SERIALIZER = "dispatch-signed"
CONTENT_TYPE = "application/x-dispatch-signed"


class SignatureError(ValueError):
    """A task message without a valid signature."""


def signing_key(settings: Settings) -> bytes:
    """The key task messages are signed with (generated into ``var/`` by ``load_settings``)."""
    return _required(settings.task_signing_key.get_secret_value(), "DISPATCH_TASK_SIGNING_KEY")


def payload_key(settings: Settings) -> bytes:
    """The key that pins approved payloads; never stored in the ledger it protects."""
    return _required(settings.payload_key.get_secret_value(), "DISPATCH_PAYLOAD_KEY")


def _required(value: str, name: str) -> bytes:
    if not value:
        raise ConfigurationError(f"{name} is empty: load the settings with load_settings(), which makes one")
    return value.encode()


def pin(key: bytes, body: dict[str, Any], delivery: str) -> str:
    """The keyed digest approval pins a payload with, bound to its delivery (the idempotency key names
    revision, channel and target): whoever can edit the ledger can neither recompute it nor copy an
    approved payload with its pin onto another delivery."""
    canonical = json.dumps([delivery, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def pinned(key: bytes, body: dict[str, Any], delivery: str, digest: str) -> bool:
    """Whether ``body`` is exactly what was approved for this delivery (pinned with this key)."""
    return hmac.compare_digest(pin(key, body, delivery), str(digest))


def bound(task: str, **kwargs: Any) -> dict[str, Any]:
    """Keyword arguments that bind a task's signed body to its name: the body is signed, the name
    travels in a header that is not, so each task checks ``signed_for`` against its own name."""
    return {**kwargs, "signed_for": task}


def _sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def encoder(key: bytes) -> Any:
    def encode(payload: Any) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        return json.dumps({"body": body, "hmac": _sign(key, body.encode())})

    return encode


def decoder(key: bytes) -> Any:
    def decode(data: str | bytes) -> Any:
        try:
            envelope = json.loads(data)
            body, signature = envelope["body"], envelope["hmac"]
        except (ValueError, KeyError, TypeError) as exc:
            log.error("refused a task message that is not signed: %s", type(exc).__name__)
            raise SignatureError("task message is not signed") from None
        if not hmac.compare_digest(_sign(key, body.encode()), str(signature)):
            log.error("refused a task message with a wrong signature")
            raise SignatureError("task message signature does not match")
        return json.loads(body)

    return decode
