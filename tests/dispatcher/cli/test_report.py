"""``dispatch report``: the quarterly disclosure report as tables, as JSON and as an HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dispatcher.ledger import Ledger
from settings import Settings
from tests.dispatcher.cli import run
from tests.dispatcher.test_disclosure import HOSTILE, plant_quarter


@pytest.fixture
def quarter(ledger: Ledger) -> dict[str, int]:
    return plant_quarter(ledger)


def test_the_report_prints_its_tables_and_writes_its_page(tmp_path: Path, quarter: dict[str, int]) -> None:
    page = tmp_path / "2026Q4.html"
    result = run("report", "--quarter", "2026Q4", "--html", str(page))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert out.startswith("Disclosure report 2026Q4: 2026-10-01 to 2026-12-31 (Asia/Shanghai)\n")
    assert "3 item(s) approved, 1 correction(s), 1 withdrawal(s)" in out
    assert "median 30 s, p95 10 min (3 revision(s))" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    # channel  deliveries  sent failed dead expired superseded cancelled  on the way  success  median  p95
    assert rows["website"][1:] == ["4", "3", "1", "0", "0", "0", "0", "0", "75.0%", "30", "s", "10", "min"]
    assert rows["display"][1:10] == ["4", "1", "0", "1", "0", "2", "0", "0", "50.0%"]
    assert rows["warning"] == ["warning", "2"] and rows["release"] == ["release", "1"]
    assert f"{HOSTILE}  2" in out  # the terminal shows what was typed; the page escapes it
    assert "corrections:" in out and "2026-12-31T23:50:00+08:00" in out
    assert "withdrawals:" in out and "误发" in out

    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert HOSTILE not in html and "&lt;script&gt;" in html
    assert len(re.findall(r"<svg id=\"chart-", html)) == 4


def test_the_report_as_json_and_over_chosen_days(quarter: dict[str, int]) -> None:
    data = json.loads(run("report", "--quarter", "2027Q1", "--json").stdout)
    assert data["period"] == "2027Q1" and data["items"] == 1
    assert data["items_by_department"] == {"海淀区": 1} and data["latency"]["median_seconds"] == 5.0
    days = json.loads(run("report", "--from", "2026-09-30", "--to", "2026-10-01", "--json").stdout)
    assert days["items"] == 2 and days["from"] == "2026-09-30"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--quarter", "2026Q5"], "--quarter"),
        (["--quarter", "Q4-2026"], "--quarter"),
        ([], "--quarter"),
        (["--from", "2026-10-01"], "--to"),
        (["--from", "2026-10-02", "--to", "2026-10-01"], "--to"),
        (["--from", "yesterday", "--to", "2026-10-01"], "--from"),
        (["--quarter", "2026Q4", "--from", "2026-10-01"], "not both"),
    ],
)
def test_a_period_it_cannot_read_is_refused(args: list[str], says: str, settings: Settings) -> None:
    result = run("report", *args)
    assert result.exit_code == 2 and says in result.stderr, result.stderr


def test_a_page_that_cannot_be_written_is_a_clear_error(tmp_path: Path, settings: Settings) -> None:
    result = run("report", "--quarter", "2026Q4", "--html", str(tmp_path / "no" / "such" / "dir" / "q4.html"))
    assert result.exit_code == 2 and "--html" in result.stderr and "cannot write" in result.stderr
