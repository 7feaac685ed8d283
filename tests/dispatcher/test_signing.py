from __future__ import annotations

import json

import pytest

from dispatcher.errors import ConfigurationError
from dispatcher.signing import SignatureError, decoder, encoder, payload_key, signing_key
from settings import Settings, load_settings


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


def test_keys_are_generated_once_at_load_and_kept_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = signing_key(load_settings(var_dir=tmp_path))
    assert signing_key(load_settings(var_dir=tmp_path)) == first and len(first) == 64
    for name in ("task-signing.key", "payload-pin.key", "api-token"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    loaded = load_settings(var_dir=tmp_path)
    assert loaded.api.token.get_secret_value() == (tmp_path / "api-token").read_text().strip()
    assert loaded.sms.callback_token == loaded.api.token  # the callbacks carry the API's secret
    assert signing_key(load_settings(var_dir=tmp_path, task_signing_key="configured")) == b"configured"


def test_no_secret_has_a_working_default() -> None:
    """Settings made without loading have no keys, and nothing signs or pins with an empty one."""
    bare = Settings()
    assert not bare.api.token.get_secret_value()
    with pytest.raises(ConfigurationError, match="DISPATCH_PAYLOAD_KEY"):
        payload_key(bare)


def test_workers_starting_together_all_read_one_whole_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sixteen processes race to make the key: none crashes, none reads it empty, all agree."""
    import subprocess
    import sys

    path = tmp_path / "task-signing.key"
    code = (
        "import sys; from pathlib import Path; from settings import generated_secret;"
        "print(generated_secret(Path(sys.argv[1])))"
    )
    for _ in range(3):
        path.unlink(missing_ok=True)
        runs = [
            subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
            for _ in range(16)
        ]
        keys = {run.communicate(timeout=60)[0].strip() for run in runs}
        assert all(run.returncode == 0 for run in runs)
        assert len(keys) == 1 and len(keys.pop()) == 64
        assert path.stat().st_mode & 0o777 == 0o600
        assert not list(tmp_path.glob(".task-signing.key.*"))  # no temporary file left behind
