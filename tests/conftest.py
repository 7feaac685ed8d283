"""Shared fixtures. Every test has settings of its own, made from explicit values and handed to what it
calls; nothing is configured through the environment. The emulators start only for a test that asks
for them (``sandbox``, and ``sandboxed``: the test's settings pointed at them). Helpers live in
tests/support.py.

    values ─▶ settings ─▶ ledger (subscribers imported), broker
       └────▶ sandbox ─▶ sandboxed
    values ─▶ environment   DISPATCH_* variables for a subprocess (a worker, ``dispatch sandbox``)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.ledger import Ledger
from dispatcher.outbox import Broker
from dispatcher.sandboxes import sandbox_for
from dispatcher.subscribers import import_csv
from dispatcher.tasks import broker_for
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import NOWHERE, environment_of, merged, pointed_at
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

# The command line reads its settings from DISPATCH_* variables, as a process does: in its tests,
# `settings` is pointed at a running sandbox and exported to the environment too.
IN_ENVIRONMENT = "tests.dispatcher.cli."


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
def values(tmp_path: Path, registry: Path) -> dict[str, Any]:
    """The values a test's settings are made from: its own var dir and sign registry, quick retries,
    2 s timeouts, and every channel pointed where nothing listens."""
    return {
        "var_dir": tmp_path / "var",
        "retry_base_seconds": 0.2,
        "retry_max_seconds": 1,
        "sweep_interval": 0.5,
        # A short budget keeps retry tests quick; the default (48) is tested on its own.
        "max_attempts": 5,
        # No waiting out a peer's processing window unless a test is about it.
        "processing_window": 0,
        # No quiet hours unless a test is about them: the suite runs at any hour.
        "quiet_hours": {},
        "website": {"base_url": NOWHERE, "public_url": NOWHERE, "timeout": 2},
        # a test's phones may take more routine texts in a day than the default cap allows
        "sms": {"sendsms_url": f"{NOWHERE}/cgi-bin/sendsms", "timeout": 2, "daily_cap": 1000},
        "display": {"registry": registry, "http_base_url": NOWHERE, "timeout": 2},
        "microblog": {"api_base": NOWHERE, "timeout": 2},
        # Delivery reports go where nothing listens unless a test serves the API: never to a dispatcher
        # running on this machine's default port.
        "api": {"public_url": NOWHERE},
    }


@pytest.fixture
def settings(request: pytest.FixtureRequest, values: dict[str, Any]) -> Settings:
    """The test's settings, parsed once from ``values``: no server stands behind any channel."""
    if request.module.__name__.startswith(IN_ENVIRONMENT):
        return request.getfixturevalue("exported")
    return load_settings(**values)


@pytest.fixture
def environment(values: dict[str, Any]) -> dict[str, str]:
    """The test's values as DISPATCH_* variables, for a subprocess that reads its settings at start."""
    return environment_of(values)


@pytest.fixture
def sandbox(values: dict[str, Any]) -> Iterator[Sandbox]:
    """The emulators, on free ports, configured as the test's settings expect them."""
    box = sandbox_for(load_settings(**values)).start()
    yield box
    box.stop()


@pytest.fixture
def sandboxed(values: dict[str, Any], sandbox: Sandbox) -> Settings:
    """The test's settings, every channel pointed at the running emulators."""
    return load_settings(**merged(values, pointed_at(sandbox)))


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    """The test's ledger, with the subscribers of SUBSCRIBERS imported."""
    ledger = Ledger(settings.ledger_url)
    subscribe(ledger, settings)
    yield ledger
    ledger.dispose()


@pytest.fixture
def broker(settings: Settings) -> Broker:
    """The embedded broker of the test's settings, for approvals that enqueue."""
    return broker_for(settings)


@pytest.fixture
def exported(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, Any], sandbox: Sandbox, sandboxed: Settings
) -> Settings:
    """For the command line's tests: the sandboxed settings, in the environment too."""
    for name, value in {**environment_of(values), **sandbox.environment()}.items():
        monkeypatch.setenv(name, value)
    ledger = Ledger(sandboxed.ledger_url)
    subscribe(ledger, sandboxed)  # the command line's own ledger finds them too
    ledger.dispose()
    return sandboxed


def subscribe(ledger: Ledger, settings: Settings) -> None:
    path = settings.var_dir / "subscribers.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SUBSCRIBERS, encoding="utf-8")
    import_csv(ledger, path, settings.sms)
