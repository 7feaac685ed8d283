"""``dispatch rota``: preview a file, and submit, approve, list, pause, resume and retire rotas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.ledger import ItemRow, Ledger
from settings import PROJECT_DIR
from tests.dispatcher.cli import run

EXAMPLE = PROJECT_DIR / "examples" / "rota.yaml"


def test_preview_prints_what_would_go_out_and_sends_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_QUIET_HOURS", '{"sms": "21:00-08:00"}')
    result = run("rota", "preview", str(EXAMPLE), "--from", "2031-03-03T00:00", "--days", "7", "--json")
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)
    assert len(entries) == 9  # every day at 10:00, and Tuesdays and Fridays at 21:30
    assert all(entry["at"].endswith("+08:00") and entry["title"] and entry["channels"] for entry in entries)
    evening = [entry for entry in entries if entry["at"].endswith("21:30:00+08:00")]
    assert evening and all(entry["sends"]["sms"].endswith("08:00:00+08:00") for entry in evening)
    assert all(entry["sends"]["website"] == entry["at"] for entry in entries)
    titles = [entry["title"] for entry in entries]
    assert len(set(titles[:8])) == 8  # eight tips, none repeated before all were used
    with ledger.session() as session:
        assert session.query(ItemRow).count() == 0


def test_a_rota_through_its_commands(tmp_path: Path, ledger: Ledger) -> None:
    submitted = run("rota", "submit", str(EXAMPLE))
    assert submitted.exit_code == 0 and "version 1 submitted" in submitted.stdout
    own = run("rota", "approve", "1", "--as", "张敏")
    assert own.exit_code == 1 and "another person" in own.stderr
    approved = run("rota", "approve", "1", "--as", "陈刚")
    assert approved.exit_code == 0, approved.stderr
    assert (
        run("rota", "pause", "1", "--as", "李娜", "--reason", "汛期结束").stdout.strip()
        == "rota 1: paused by 李娜 (汛期结束)"
    )
    assert run("rota", "resume", "1", "--as", "李娜").exit_code == 0
    listed = json.loads(run("rota", "list", "--json").stdout)
    assert (
        listed[0]["state"] == "active"
        and listed[0]["live_version"] == 1
        and listed[0]["approved_by"] == "陈刚"
    )
    assert run("rota", "retire", "1", "--as", "李娜").exit_code == 0
    again = run("rota", "resume", "1", "--as", "李娜")
    assert again.exit_code == 1 and "retired" in again.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        EXAMPLE.read_text(encoding="utf-8").replace("every day at 10:00", "every day at 25:00"),
        encoding="utf-8",
    )
    refused = run("rota", "submit", str(bad))
    assert refused.exit_code == 2 and "cadences.0" in refused.stderr
