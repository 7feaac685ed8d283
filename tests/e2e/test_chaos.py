"""A small run of the fault suite inside `make test`; `make chaos` runs the full one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


# Several seeds on each broker, CI-sized; `make chaos` runs the full size (README: figures of three seeds).
@pytest.mark.parametrize(
    ("broker", "seed"), [("embedded", 11), ("embedded", 2027), ("redis", 37), ("redis", 4099)]
)
def test_nothing_is_lost_or_doubled_under_faults(broker: str, seed: int) -> None:
    if broker == "redis" and shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (`make test` installs Debian's redis-server)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCH_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # the fault suite lives in tests/
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.chaos",
            "--items",
            "8",
            "--kills",
            "2",
            "--broker",
            broker,
            "--seed",
            str(seed),
            "--timeout",
            "240",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
        check=False,
    )
    print(result.stdout[-3000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-2000:]
    assert "all invariants hold" in result.stdout
    assert "worker kills (SIGKILL)" in result.stdout
