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


def test_workers_starting_together_all_read_one_whole_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Sixteen processes race to make the key: none crashes, none reads it empty, all agree."""
    import subprocess
    import sys

    path = tmp_path / "task-signing.key"
    code = (
        "import sys; from pathlib import Path; from dispatcher.signing import generated_secret;"
        "print(generated_secret(Path(sys.argv[1])).decode())"
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
