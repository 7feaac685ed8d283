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


def test_the_order_check_catches_an_older_revision_landing_after_a_newer() -> None:
    from tests.chaos import order_violations

    assert (
        order_violations({"display/CH-1": [(1, 1), (2, 1), (1, 2), (1, 2)], "sms/+86139": [(1, 1), (1, 2)]})
        == []
    )
    planted = order_violations({"display/CH-1": [(1, 1), (1, 2), (2, 1), (1, 1)]})
    assert planted == ["display/CH-1: revision 1 of item 1 landed after revision 2"]


def test_the_final_state_check_catches_a_stale_revision_and_a_withdrawn_item_still_showing() -> None:
    from tests.chaos import showing_violations

    live = {1: 2, 2: None, 3: 1}
    clean = {"website/site": [(1, 2), (3, 1)], "display/CH-1": [(1, 2)]}
    assert showing_violations(clean, live, excused=set()) == []
    planted = {"website/site": [(1, 2)], "display/CH-1": [(1, 1)], "microblog/weibo": [(2, 1)]}
    assert showing_violations(planted, live, excused=set()) == [
        "display/CH-1 shows revision 1 of item 1, not revision 2",
        "microblog/weibo still shows revision 1 of withdrawn item 2",
    ]
    # a takedown that failed on the record excuses what it could not take down
    assert showing_violations(planted, live, excused={("display/CH-1", 1), ("microblog/weibo", 2)}) == []
