"""Items through review: submit, preview, approve, reject and status."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.ledger import DeliveryRow, ItemRow, Ledger
from settings import Settings
from tests.dispatcher.cli import count, run, write


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
    one = run("status", "1").stdout
    assert "BJ-CY-002" in one
    [sms] = [d for d in report["deliveries"] if d["channel"] == "sms"]
    phones = " ".join(f"{n} {state}" for state, n in sorted(sms["recipients"].items()))
    assert phones and any("sms" in line and phones in line for line in one.splitlines())  # each phone's state


def test_a_draft_is_submitted_before_it_can_be_approved(tmp_path: Path, ledger: Ledger) -> None:
    assert json.loads(run("submit", str(write(tmp_path)), "--draft", "--json").stdout)["state"] == "draft"
    early = run("approve", "1", "--as", "陈刚")
    assert early.exit_code == 1 and "already draft" not in early.stderr and "draft" in early.stderr
    assert run("submit", "1").exit_code == 0
    assert run("submit", "1").exit_code == 1  # no longer a draft
    assert run("approve", "1", "--as", "陈刚").exit_code == 0


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


def test_preview_prints_each_payload_as_its_channel_describes_it(tmp_path: Path, settings: Settings) -> None:
    result = run("preview", str(write(tmp_path)))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    headers = [line for line in lines if line.startswith("── ")]
    assert headers == [
        "── website / site",
        "── sms / batch-001",
        "── display / BJ-CY-001",
        "── display / BJ-CY-002",
        "── microblog / sandbox",
    ]
    sms = lines.index("── sms / batch-001")
    assert lines[sms + 1] == "UCS-2, 1 segment(s), 31 characters, 3 recipient(s)"
    assert lines[sms + 2] == "【应急管理】朝阳区暴雨橙色预警：未来3小时强降雨，请减少外出。"
    first_sign = lines.index("── display / BJ-CY-001")
    assert lines[first_sign + 1] == "2 page(s), priority 200"
    # the full stop is not left alone at the start of page 2: "出" goes along with it
    assert lines[first_sign + 2] == "  page 1: 朝阳区暴雨橙色预警：未来 / 3小时强降雨，请减少外"
    assert lines[lines.index("── microblog / sandbox") + 1] == "@sandbox, 39 characters"
    assert lines[lines.index("── website / site") + 1].startswith("朝阳区暴雨橙色预警  (slug warning-")


def test_reject_says_who_and_a_rejected_item_cannot_be_approved(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    result = run("reject", "1", "--as", "陈刚", "--reason", "wrong district")
    assert result.exit_code == 0 and result.stdout.strip() == "item 1 rejected by 陈刚"
    later = run("approve", "1", "--as", "陈刚")
    assert later.exit_code == 1 and "already rejected" in later.stderr
    assert count(ledger, DeliveryRow) == 0


def test_update_submits_a_correction_that_is_approved_like_any_item(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    run("approve", "1", "--as", "陈刚")
    result = run(
        "update", "1", str(write(tmp_path, "fix.yaml", author="李娜", body="更正后的正文。")), "--as", "李娜"
    )
    assert result.exit_code == 0 and result.stdout.strip() == "revision 2 of item 1 submitted for review"
    refused = run("approve", "1", "--as", "李娜")
    assert refused.exit_code == 1 and "revision 2 of item 1 was written by 李娜" in refused.stderr
    approved = run("approve", "1", "--as", "陈刚")
    assert approved.exit_code == 0, approved.stderr
    assert approved.stdout.startswith("revision 2 of item 1 (a correction) approved by 陈刚")
    status = json.loads(run("status", "1", "--json").stdout)
    assert status["live_revision"] == 2
    assert [r["state"] for r in status["revisions"]] == ["approved", "live"]
    assert {d["state"] for d in status["deliveries"] if d["revision"] == 1} == {"superseded"}
    bad = run("update", "1", str(write(tmp_path, "bad.yaml", areas=["99"])))
    assert bad.exit_code == 2 and "areas" in bad.stderr


def test_retract_withdraws_at_once_and_says_what_it_set_in_motion(tmp_path: Path, ledger: Ledger) -> None:
    run("submit", str(write(tmp_path)))
    run("approve", "1", "--as", "陈刚")
    missing = run("retract", "1", "--as", "李娜", "--reason", " ")
    assert missing.exit_code == 1 and "reason" in missing.stderr
    result = run("retract", "1", "--as", "李娜", "--reason", "预警发布有误", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "id": 1,
        "state": "withdrawn",
        "cancelled": 5,
        "taking_down": {},
        "notified": 0,
        "enqueued": 0,
    }
    status = run("status", "1")
    assert "withdrawn by 李娜" in status.stdout and "预警发布有误" in status.stdout
    again = run("retract", "1", "--as", "李娜", "--reason", "again")
    assert again.exit_code == 1 and "withdrawn already" in again.stderr


def test_only_its_author_submits_a_draft_for_review(tmp_path: Path, ledger: Ledger) -> None:
    assert run("submit", str(write(tmp_path)), "--draft").exit_code == 0  # 张敏's draft
    other = run("submit", "1", "--as", "李娜")
    assert other.exit_code == 1 and "张敏's draft; only they can submit it" in other.stderr
    assert run("submit", "1").exit_code == 0
    assert json.loads(run("status", "1", "--json").stdout)["state"] == "submitted"
