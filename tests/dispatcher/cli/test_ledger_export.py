"""``dispatch ledger export``: the disclosure ledger as CSV and as an Excel workbook."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from dispatcher import approval
from dispatcher.delivery import deliver
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, Ledger
from dispatcher.withdrawals import retract
from settings import Settings
from tests.dispatcher.cli import run
from tests.support import item_doc


def published(ledger: Ledger, settings: Settings, **changes: object) -> int:
    item_id = approval.submit(ledger, parse_item(item_doc(**changes)))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        ids = [d.id for d in session.query(DeliveryRow).filter_by(item_id=item_id)]
    for delivery_id in ids:
        deliver(ledger, settings, delivery_id, "w")
    return item_id


def test_the_ledger_exports_one_row_per_item_channel_and_target(
    tmp_path: Path, ledger: Ledger, settings: Settings
) -> None:
    first = published(ledger, settings, channels=["website", "display"])
    approval.revise(
        ledger, first, parse_item(item_doc(author="李娜", channels=["website", "display"], body="更正。"))
    )
    approval.approve(ledger, settings, first, "王强")
    second = published(ledger, settings, channels=["website"], title="第二条预警")
    retract(ledger, settings, second, "王强", "误发")
    today = datetime.now(UTC).astimezone(ZoneInfo(settings.time_zone)).date()

    result = run("ledger", "export", "--from", today.isoformat(), "--to", today.isoformat())
    assert result.exit_code == 0, result.stderr
    table = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["item"], r["channel"], r["target"]) for r in table] == [
        (str(first), "website", "site"),
        (str(first), "display", "BJ-CY-001"),
        (str(first), "display", "BJ-CY-002"),
        (str(second), "website", "site"),
    ]
    corrected = table[0]
    assert corrected["revision"] == "2" and corrected["approvers"] == "王强" and corrected["department"]
    assert corrected["first_sent_at"].endswith("+08:00") and corrected["outcome"] in ("sent", "pending")
    withdrawn = table[3]
    assert withdrawn["outcome"] == "withdrawn" and withdrawn["withdrawn_at"].endswith("+08:00")
    assert "3 row(s)" not in result.stderr and "4 row(s)" in result.stderr

    book = tmp_path / "ledger.xlsx"
    saved = run(
        "ledger",
        "export",
        "--from",
        today.isoformat(),
        "--to",
        today.isoformat(),
        "--format",
        "xlsx",
        "-o",
        str(book),
    )
    assert saved.exit_code == 0, saved.stderr
    sheet = load_workbook(book).active
    values = [
        [str(cell) if cell is not None else "" for cell in row] for row in sheet.iter_rows(values_only=True)
    ]
    assert values[0][:3] == ["item", "kind", "title"] and len(values) == 5
    assert [row[0] for row in values[1:]] == [str(first)] * 3 + [str(second)]

    tomorrow = (today + timedelta(days=1)).isoformat()
    assert (
        list(
            csv.DictReader(io.StringIO(run("ledger", "export", "--from", tomorrow, "--to", tomorrow).stdout))
        )
        == []
    )
    backwards = run("ledger", "export", "--from", tomorrow, "--to", today.isoformat())
    assert backwards.exit_code == 2 and "--to" in backwards.stderr
    no_file = run(
        "ledger", "export", "--from", today.isoformat(), "--to", today.isoformat(), "--format", "xlsx"
    )
    assert no_file.exit_code == 2 and "-o" in no_file.stderr
