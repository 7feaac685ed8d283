"""``dispatch channels``: every channel probed, and the exit status says whether all are up."""

from __future__ import annotations

import json

import pytest

from settings import Settings
from tests.dispatcher.cli import run


def test_channels_probes_every_channel(settings: Settings) -> None:
    result = run("channels", "--json")
    assert result.exit_code == 0
    assert {r["channel"]: r["ok"] for r in json.loads(result.stdout)["channels"]} == {
        "website": True,
        "sms": True,
        "display": True,
        "microblog": True,
    }


def test_channels_exits_1_when_one_is_down(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_SMS__PASSWORD", "wrong")
    result = run("channels")
    assert result.exit_code == 1 and "DOWN" in result.stdout
