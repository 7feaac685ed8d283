"""The ``dispatch`` group itself: errors as one line and an exit status, settings loaded once per
invocation, the ways it is started, and modules that import on their own."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import dispatcher.cli
from dispatcher.cli import cli, invocation
from settings import Settings, load_settings
from tests.dispatcher.cli import run, write


def test_a_bad_setting_stops_the_command_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_RATE_LIMITS", '{"sms": "fast"}')
    result = run("channels")
    assert result.exit_code == 2
    assert "DISPATCH_RATE_LIMITS" in result.stderr and "fast" in result.stderr


def test_help_needs_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_RATE_LIMITS", '{"sms": "fast"}')
    result = run("--help")
    assert result.exit_code == 0 and "preview" in result.stdout and "subscribers" in result.stdout


def test_the_settings_are_loaded_once_per_invocation(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[Settings] = []

    def counted() -> Settings:
        loads.append(load_settings())
        return loads[-1]

    monkeypatch.setattr(invocation, "load_settings", counted)
    run("submit", str(write(tmp_path)))
    result = run("approve", "1", "--as", "陈刚")  # asks for the settings, the ledger and the broker
    assert result.exit_code == 0, result.stderr
    assert len(loads) == 2  # one per invocation


def test_the_installed_script_is_this_group() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "dispatch"]
    assert script.value == "dispatcher.cli:main" and script.load() is cli


def test_python_m_runs_the_command_line() -> None:
    # How worker processes are started (dispatcher/processes.py).
    done = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "worker", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Run a Celery worker on the configured broker." in done.stdout


MODULES = [
    "dispatcher.cli",
    *(f"dispatcher.cli.{m.name}" for m in pkgutil.iter_modules(dispatcher.cli.__path__)),
    "dispatcher.demo",
    "dispatcher.previews",
    "dispatcher.text",
]


def test_every_module_imports_on_its_own_in_a_fresh_interpreter() -> None:
    # Started together: each interpreter takes a second or so, and they do not share anything.
    started = {
        name: subprocess.Popen([sys.executable, "-c", f"import {name}"], stderr=subprocess.PIPE, text=True)
        for name in MODULES
    }
    errors = {name: p.communicate(timeout=120)[1] for name, p in started.items()}
    failed = {name: error for name, error in errors.items() if started[name].returncode}
    assert not failed
    assert {"dispatcher.cli.items", "dispatcher.cli.serving", "dispatcher.cli.__main__"} <= set(MODULES)


def test_the_demo_does_not_import_the_command_line() -> None:
    code = "import sys, dispatcher.demo; sys.exit('dispatcher.cli' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_a_worker_with_a_bad_sign_registry_stops_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DISPATCH_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("DISPATCH_DISPLAY__REGISTRY", str(tmp_path / "missing.yaml"))
    result = run("worker")
    assert result.exit_code == 2
    assert "sign registry" in result.stderr and "missing.yaml" in result.stderr
