from __future__ import annotations

import json

import pytest

from dispatcher.signing import SignatureError, decoder, encoder, signing_key
from settings import Settings


def test_a_signed_body_round_trips() -> None:
    key = b"k" * 32
    assert decoder(key)(encoder(key)([[42], {}, {}])) == [[42], {}, {}]


@pytest.mark.parametrize(
    "message",
    [
        json.dumps([[42], {}, {}]),  # plain JSON, as any Celery client would send
        encoder(b"another key")([[42], {}, {}]),  # signed with the wrong key
        json.dumps({"body": json.dumps([[43], {}, {}]), "hmac": "0" * 64}),  # altered
        "not json at all",
    ],
)
def test_anything_else_is_refused(message: str) -> None:
    with pytest.raises(SignatureError):
        decoder(b"k" * 32)(message)


def test_a_key_is_generated_once_and_kept_private(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DISPATCH_VAR_DIR", str(tmp_path))
    settings = Settings()
    first = signing_key(settings)
    assert signing_key(settings) == first and len(first) == 64
    assert (tmp_path / "task-signing.key").stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("DISPATCH_TASK_SIGNING_KEY", "configured")
    assert signing_key(Settings()) == b"configured"
