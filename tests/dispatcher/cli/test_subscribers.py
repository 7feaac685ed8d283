"""``dispatch subscribers``: importing the SMS subscriber store and listing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from settings import Settings
from tests.dispatcher.cli import run


def test_import_lists_bad_rows_by_line_and_exits_1(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "more.csv"
    path.write_text("phone,areas\n13800138009,110105\nnot-a-phone,110105\n", encoding="utf-8")
    result = run("subscribers", "import", str(path))
    assert result.exit_code == 1
    assert f"{path}:3: 'not-a-phone' is not a phone number" in result.stderr
    assert result.stdout.strip() == (
        "imported 1 subscribers (1 new, 0 updated, 0 duplicates merged), refused 1 rows"
    )


def test_list_shows_every_subscriber_as_a_table_or_json(settings: Settings) -> None:
    table = run("subscribers", "list").stdout.splitlines()
    assert table[0].split() == ["phone", "areas", "topics", "consent", "opted", "out"]
    assert table[2].split() == ["+8613800138000", "110105", "safety", "yes"]
    assert len(table) == 2 + 4
    rows = json.loads(run("subscribers", "list", "--json").stdout)
    assert [r["phone"] for r in rows] == [f"+861380013800{n}" for n in range(4)]
    assert rows[2]["consent"] is False and rows[2]["opted_out_at"] is None


def test_an_empty_store_says_so(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_VAR_DIR", str(settings.var_dir / "elsewhere"))
    assert run("subscribers", "list").stdout.strip() == "no subscribers"
