"""The ``dispatch`` command line, invoked in-process against a real ledger, broker and sandbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from dispatcher.cli import cli
from dispatcher.ledger import DeliveryRow, ItemRow, Ledger
from settings import Settings
from tests.conftest import item_doc


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write(tmp_path: Path, name: str = "item.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(item_doc(**changes), allow_unicode=True), encoding="utf-8")
    return path


def count(ledger: Ledger, model: type) -> int:
    with ledger.session() as session:
        return session.query(model).count()


def test_submit_prints_the_new_id(tmp_path: Path, ledger: Ledger) -> None:
    result = run("submit", str(write(tmp_path)))
    assert result.exit_code == 0
    assert result.stdout.strip() == "1"
    as_json = json.loads(run("submit", str(write(tmp_path)), "--json").stdout)
    assert as_json["id"] == 2 and as_json["state"] == "submitted"


def test_an_invalid_file_exits_2_naming_the_field_and_writes_nothing(tmp_path: Path, ledger: Ledger) -> None:
    result = run("submit", str(write(tmp_path, areas=["99"], severity="Huge")))
    assert result.exit_code == 2
    assert "areas" in result.stderr and "severity" in result.stderr
    assert "item.yaml" in result.stderr
    assert count(ledger, ItemRow) == 0


def test_approve_fans_out_and_a_second_approval_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    first = run("approve", "1", "--as", "陈刚")
    assert first.exit_code == 0
    assert "5 deliveries queued" in first.stdout
    second = run("approve", "1", "--as", "陈刚")
    assert second.exit_code == 1
    assert "already approved" in second.stderr
    assert count(ledger, DeliveryRow) == 5


def test_self_approval_is_refused_with_a_clear_message(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    result = run("approve", "1", "--as", "张敏")
    assert result.exit_code == 1
    assert "written by 张敏; another person must approve it" in result.stderr
    assert count(ledger, DeliveryRow) == 0


def test_approving_an_unknown_item_is_refused(ledger: Ledger) -> None:
    result = run("approve", "7", "--as", "陈刚")
    assert result.exit_code == 1 and "no item 7" in result.stderr


def test_preview_json_shows_each_channel_as_it_will_be_sent(tmp_path: Path, settings: Settings) -> None:
    result = run("preview", str(write(tmp_path)), "--json")
    assert result.exit_code == 0, result.stderr
    payloads = {p["channel"]: p for p in json.loads(result.stdout)["payloads"]}
    sms = payloads["sms"]
    assert sms["text"].startswith("【应急管理】") and sms["encoding"] == "UCS-2" and sms["segments"] >= 1
    assert payloads["display"]["multi"].startswith("[pt30o0]") and payloads["display"]["pages"]
    microblog = payloads["microblog"]
    assert microblog["length"] <= 140 and "http" in microblog["text"]
    assert payloads["website"]["title"] == "朝阳区暴雨橙色预警"


def test_preview_of_one_channel_and_of_a_stored_item(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    result = run("preview", "1", "--channel", "sms", "--json")
    assert {p["channel"] for p in json.loads(result.stdout)["payloads"]} == {"sms"}
    unknown = run("preview", "1", "--channel", "smss")
    assert unknown.exit_code == 2 and "did you mean 'sms'" in unknown.stderr


def test_preview_reports_a_text_too_long_for_a_sign(tmp_path: Path, settings: Settings) -> None:
    result = run("preview", str(write(tmp_path, areas=["110108"], short_text="长" * 60)))
    assert result.exit_code == 2
    assert "BJ-HD-001" in result.stderr


def test_status_lists_every_delivery(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    run("approve", "1", "--as", "陈刚")
    report = json.loads(run("status", "1", "--json").stdout)
    assert report["state"] == "approved" and report["approver"] == "陈刚"
    assert {(d["channel"], d["state"]) for d in report["deliveries"]} >= {
        ("website", "pending"),
        ("sms", "pending"),
    }
    text = run("status").stdout
    assert "pending:5" in text
    assert "BJ-CY-002" in run("status", "1").stdout


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


def test_a_draft_is_submitted_before_it_can_be_approved(tmp_path: Path, ledger: Ledger) -> None:
    assert json.loads(run("submit", str(write(tmp_path)), "--draft", "--json").stdout)["state"] == "draft"
    early = run("approve", "1", "--as", "陈刚")
    assert early.exit_code == 1 and "already draft" not in early.stderr and "draft" in early.stderr
    assert run("submit", "1").exit_code == 0
    assert run("submit", "1").exit_code == 1  # no longer a draft
    assert run("approve", "1", "--as", "陈刚").exit_code == 0


def test_redrive_needs_an_operator_and_a_known_channel(ledger: Ledger) -> None:
    assert run("redrive").exit_code == 2  # --as is required
    assert "did you mean 'microblog'" in run("redrive", "--as", "李雷", "--channel", "microblg").stderr
    assert run("redrive", "--as", "李雷").stdout.strip() == "re-drove 0 dead deliveries"


def test_approve_says_when_the_broker_took_nothing(
    tmp_path: Path, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_BROKER_URL", "redis://127.0.0.1:9/0")  # nothing listens there
    run("submit", str(write(tmp_path)))
    result = run("approve", "1", "--as", "陈刚")
    assert result.exit_code == 0
    assert "queued" not in result.stdout and "5 of them are waiting for the broker" in result.stdout


def test_status_pages_through_items_and_says_so(tmp_path: Path, ledger: Ledger) -> None:
    for _ in range(5):
        run("submit", str(write(tmp_path)))
    first = json.loads(run("status", "--json", "--limit", "2").stdout)
    assert [i["id"] for i in first["items"]] == [5, 4] and first["total"] == 5 and first["next_before"] == 4
    last = json.loads(run("status", "--json", "--limit", "2", "--before", "2").stdout)
    assert [i["id"] for i in last["items"]] == [1] and last["next_before"] is None
    assert "dispatch status --before 4" in run("status", "--limit", "2").stderr


def test_a_bad_setting_stops_the_command_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_RATE_LIMITS", '{"sms": "fast"}')
    result = run("channels")
    assert result.exit_code == 2
    assert "DISPATCH_RATE_LIMITS" in result.stderr and "fast" in result.stderr
