"""Shared fixtures: a clean environment, a sign registry, the sandbox emulators and a ledger."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatcher.ledger import Ledger
from dispatcher.outbox import Broker
from dispatcher.sandboxes import sandbox_for
from dispatcher.subscribers import import_csv
from dispatcher.tasks import broker_for
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import item_doc as item_doc  # still imported from here by some test modules

SIGNS = """\
signs:
  - {id: BJ-CY-001, area: "110105", lines: 2, chars_per_line: 12, max_pages: 6, address: BJ-CY-001}
  - {id: BJ-CY-002, area: "110105", lines: 3, chars_per_line: 16, max_pages: 4, address: BJ-CY-002}
  - {id: BJ-HD-001, area: "110108", lines: 2, chars_per_line: 10, max_pages: 2, address: BJ-HD-001}
"""

SUBSCRIBERS = """\
phone,areas,topics,consent
13800138000,110105,safety,yes
13800138001,110105,flood,yes
13800138002,110105,safety,no
13800138003,110108,safety,yes
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No DISPATCH_* variable or .env file of the machine leaks into a test."""
    for name in list(os.environ):
        if name.startswith("DISPATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "signs.yaml"
    path.write_text(SIGNS, encoding="utf-8")
    return path


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, registry: Path) -> dict[str, str]:
    """DISPATCH_* variables for a test: its own var dir, registry and quick retries."""
    env = {
        "DISPATCH_VAR_DIR": str(tmp_path / "var"),
        "DISPATCH_DISPLAY__REGISTRY": str(registry),
        "DISPATCH_RETRY_BASE_SECONDS": "0.2",
        "DISPATCH_RETRY_MAX_SECONDS": "1",
        "DISPATCH_SWEEP_INTERVAL": "0.5",
        # A short budget keeps retry tests quick; the default (48) is tested on its own.
        "DISPATCH_MAX_ATTEMPTS": "5",
        # No waiting out a peer's processing window unless a test is about it.
        "DISPATCH_PROCESSING_WINDOW": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def sandbox(environment: dict[str, str]) -> Iterator[Sandbox]:
    box = sandbox_for(load_settings()).start()
    yield box
    box.stop()


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> Settings:
    for name, value in sandbox.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DISPATCH_WEBSITE__TIMEOUT", "2")
    monkeypatch.setenv("DISPATCH_MICROBLOG__TIMEOUT", "2")
    monkeypatch.setenv("DISPATCH_DISPLAY__TIMEOUT", "2")
    monkeypatch.setenv("DISPATCH_SMS__TIMEOUT", "2")
    settings = load_settings()
    path = settings.var_dir / "subscribers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SUBSCRIBERS, encoding="utf-8")
    seed = Ledger(settings.ledger_url)
    import_csv(seed, path, settings.sms)
    seed.dispose()
    return settings


@pytest.fixture
def broker(settings: Settings) -> Broker:
    """The embedded broker of the test's settings, for approvals that enqueue."""
    return broker_for(settings)


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    ledger = Ledger(settings.ledger_url)
    yield ledger
    ledger.dispose()
