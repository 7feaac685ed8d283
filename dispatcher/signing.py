"""Signed task messages: a kombu serializer that refuses any message without a valid HMAC.

Every task the dispatcher publishes is serialized as ``application/x-dispatch-signed``: the JSON body
with an HMAC-SHA256 of it under the signing key. The worker accepts only that content type, so a task
injected into the broker by anyone without the key — plain JSON, pickle, or a signed body altered
after signing — fails to decode: Celery logs it and drops it, and it never runs. Replaying a signed
message does nothing new: the ledger decides whether a delivery still needs sending.

The key is ``DISPATCH_TASK_SIGNING_KEY``; without it, one is generated once into ``var/`` (mode 0600)
— enough for the embedded set-up, where the producer and the workers share the machine. Workers on
other machines need the same key set in their environment.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from kombu.serialization import register

from settings import Settings

log = logging.getLogger(__name__)
SERIALIZER = "dispatch-signed"
CONTENT_TYPE = "application/x-dispatch-signed"


class SignatureError(ValueError):
    """A task message without a valid signature."""


def signing_key(settings: Settings) -> bytes:
    configured = settings.task_signing_key.get_secret_value()
    if configured:
        return configured.encode()
    path = settings.var_dir / "task-signing.key"
    if not path.exists():
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return Path(path).read_text().strip().encode()


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


def install(settings: Settings) -> None:
    """Register the signed serializer with kombu under the settings' key."""
    key = signing_key(settings)
    register(SERIALIZER, encoder(key), decoder(key), content_type=CONTENT_TYPE, content_encoding="utf-8")
