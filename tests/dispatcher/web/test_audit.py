"""The ledger for auditors over HTTP: the export round trip and the chain's check."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select

from dispatcher.cli import cli
from dispatcher.exports import COLUMNS
from dispatcher.ledger import DeliveryRow, EventRow
from settings import Settings
from tests.dispatcher.web import Api
from tests.support import item_doc


def published(api: Api, **changes: object) -> int:
    item_id = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None, **changes)).json()["id"]
    assert api.call("POST", f"/api/v1/items/{item_id}/approve", "审核一").status_code == 200
    return item_id


def test_the_export_over_http_is_the_ledger_and_the_command_lines_file(
    api: Api, settings: Settings, environment: dict[str, str], tmp_path: Path
) -> None:
    first = published(api, channels=["website", "display"])
    second = published(api, channels=["website", "sms"], title="第二条预警")
    today = datetime.now(ZoneInfo(settings.time_zone)).date()
    span = {"from": str(today - timedelta(days=1)), "to": str(today + timedelta(days=1))}

    answer = api.call("GET", "/api/v1/ledger/export", "审计", params=span)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert tuple(rows[0]) == COLUMNS
    with api.ledger.session() as session:
        targets = {
            (str(d.item_id), d.channel, d.target)
            for d in session.scalars(select(DeliveryRow).where(DeliveryRow.item_id.in_([first, second])))
        }
    # one row per item × channel × target; an SMS audience is one row, as in the ledger's batches' item
    exported = {(r["item"], r["channel"], r["target"]) for r in rows}
    assert {(i, c) for i, c, _ in exported} == {(i, c) for i, c, _ in targets}
    assert {(i, c, t) for i, c, t in exported if c != "sms"} == {
        (i, c, t) for i, c, t in targets if c != "sms"
    }
    assert {r["approvers"] for r in rows} == {"审核一"}

    output = tmp_path / "ledger.csv"
    by_cli = CliRunner().invoke(
        cli,
        ["ledger", "export", "--from", span["from"], "--to", span["to"], "-o", str(output)],
        env={**environment, "DISPATCH_TOKEN": api.tokens["审计"]},
        catch_exceptions=False,
    )
    assert by_cli.exit_code == 0, by_cli.output
    assert output.read_bytes() == answer.content

    workbook = api.call("GET", "/api/v1/ledger/export", "审计", params={**span, "format": "xlsx"})
    sheet = load_workbook(io.BytesIO(workbook.content)).active
    assert sheet is not None
    assert sheet.max_row == len(rows) + 1

    assert (
        api.call("GET", "/api/v1/ledger/export", "审计", params={**span, "to": "2000-01-01"}).status_code
        == 422
    )


def test_verify_names_a_broken_link(api: Api) -> None:
    published(api)
    intact = api.call("GET", "/api/v1/ledger/verify", "审计").json()
    assert intact["intact"] is True
    assert intact["checked"] > 0
    with api.ledger.session() as session:
        event = session.scalars(select(EventRow).order_by(EventRow.id).limit(1)).one()
        victim = event.id
    with api.ledger.engine.begin() as connection:
        for trigger in ("events_no_update", "events_no_delete"):
            connection.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger}")
        connection.exec_driver_sql(f"UPDATE events SET actor = 'someone else' WHERE id = {victim}")
    broken = api.call("GET", "/api/v1/ledger/verify", "审计").json()
    assert broken["intact"] is False
    assert broken["broken_at"] == victim


def test_the_report_over_http_is_the_command_lines(
    api: Api, settings: Settings, environment: dict[str, str]
) -> None:
    published(api, channels=["website", "display"], department="海淀区<气象局>")
    today = datetime.now(ZoneInfo(settings.time_zone)).date()
    quarter = f"{today.year}Q{(today.month - 1) // 3 + 1}"
    answer = api.call("GET", "/api/v1/ledger/report", "审计", params={"quarter": quarter})
    assert answer.status_code == 200, answer.text
    by_cli = CliRunner().invoke(
        cli,
        ["report", "--quarter", quarter, "--json"],
        env={**environment, "DISPATCH_TOKEN": api.tokens["审计"]},
        catch_exceptions=False,
    )
    assert by_cli.exit_code == 0, by_cli.output
    assert answer.json() == json.loads(by_cli.stdout)
    page = api.call("GET", "/api/v1/ledger/report", "审计", params={"quarter": quarter, "format": "html"})
    assert page.headers["content-type"].startswith("text/html")
    assert "海淀区&lt;气象局&gt;" in page.text and "<svg" in page.text
    for wrong in ({"quarter": "2026Q5"}, {"from": "2026-02-01"}, {"quarter": quarter, "from": "2026-01-01"}):
        assert api.call("GET", "/api/v1/ledger/report", "审计", params=wrong).status_code == 422
    odd = api.call("GET", "/api/v1/ledger/report", "审计", params={"quarter": "2026Q5"}).json()
    assert odd["detail"][0]["loc"] == ["query", "quarter"] and "like 2026Q4" in odd["detail"][0]["msg"]


def test_metrics_are_the_ledgers_counts_in_prometheus_format(api: Api) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    published(api, channels=["website"])
    answer = api.call("GET", "/metrics", "审计")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    items = {s.labels["state"]: s.value for s in families["dispatch_items"].samples}
    assert sum(items.values()) == 1
    assert api.call("GET", "/metrics").status_code == 401
