from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dispatcher.errors import InvalidItemError
from dispatcher.items import SHORT_TEXT_MAX, Kind, load_item, parse_item
from tests.support import item_doc


def problems_of(doc: object) -> dict[str, str]:
    with pytest.raises(InvalidItemError) as caught:
        parse_item(doc, "test.yaml")
    return dict(caught.value.problems)


def test_a_valid_warning_parses_with_every_channel() -> None:
    item = parse_item(item_doc())
    assert item.kind is Kind.warning
    assert item.channels == ["website", "sms", "display", "microblog"]


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"title": None}, "title", "Field required"),
        ({"title": ""}, "title", "at least 1 character"),
        ({"kind": "rumour"}, "kind", "'warning', 'safety_tip' or 'release'"),
        ({"areas": ["1101"]}, "areas", "6-digit"),
        ({"areas": ["990000"]}, "areas", "province"),
        ({"areas": []}, "areas", "at least 1 item"),
        ({"channels": ["Fax!"]}, "channels", "not a channel name"),
        ({"expires": "2030-01-01T00:00:00"}, "expires", "timezone"),
        ({"expires": "tomorrow"}, "expires", "date and time with its offset"),
        ({"severity": "Catastrophic"}, "severity", "'Extreme'"),
        ({"severity": None, "urgency": None}, "(item)", "a warning needs severity, urgency"),
        ({"interpretation": "解读"}, "(item)", "only a release carries an interpretation"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"short_text": "长" * (SHORT_TEXT_MAX + 1)}, "short_text", f"at most {SHORT_TEXT_MAX}"),
    ],
)
def test_a_bad_field_is_named_with_its_problem(changes: dict, field: str, fragment: str) -> None:
    problems = problems_of(item_doc(**changes))
    assert field in problems, problems
    assert fragment in problems[field]


def test_cap_fields_on_a_safety_tip_are_refused() -> None:
    doc = item_doc(kind="safety_tip")
    assert "belong to warnings only" in problems_of(doc)["(item)"]


def test_a_release_carries_its_interpretation() -> None:
    doc = item_doc(kind="release", severity=None, urgency=None, certainty=None, interpretation="解读")
    assert parse_item(doc).interpretation == "解读"


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(item_doc(title=None, areas=["12"], author=None))
    assert {"title", "areas", "author"} <= set(problems)


def test_short_text_is_derived_when_absent() -> None:
    item = parse_item(item_doc(short_text=None, body="短文。"))
    assert item.short == "朝阳区暴雨橙色预警：短文。"
    long_body = "第一句话。" + "很长" * 100
    assert parse_item(item_doc(short_text=None, body=long_body)).short == "朝阳区暴雨橙色预警：第一句话。"


def test_yaml_and_json_files_load(tmp_path: Path) -> None:
    doc = item_doc()
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    (tmp_path / "w.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    assert load_item(tmp_path / "w.yaml") == load_item(tmp_path / "w.json")


def test_a_yaml_timestamp_without_offset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    text = yaml.safe_dump({**item_doc(), "expires": "X"}, allow_unicode=True)
    path.write_text(text.replace("expires: X", "expires: 2030-01-01 08:00:00"), encoding="utf-8")
    with pytest.raises(InvalidItemError) as caught:
        load_item(path)
    assert "expires" in dict(caught.value.problems)


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("broken.yaml", "kind: [warning\n", "cannot be parsed"),
        ("broken.json", "{", "cannot be parsed"),
        ("list.yaml", "- a\n- b\n", "must be a mapping"),
        ("latin1.yaml", None, "not UTF-8"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, name: str, content: str | None, fragment: str) -> None:
    path = tmp_path / name
    if content is None:
        path.write_bytes("title: caf\xe9".encode("latin-1"))
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidItemError) as caught:
        load_item(path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_the_shipped_examples_are_valid() -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    # every YAML example is an item file, but the sign registry and the rota (tested with the rotas)
    kinds = {
        load_item(path).kind
        for path in examples.glob("*.yaml")
        if path.name not in ("signs.yaml", "rota.yaml")
    }
    assert kinds == set(Kind)


def test_yaml_aliases_are_refused_before_they_unfold(tmp_path: Path) -> None:
    laughs = "kind: warning\nauthor: &a0 [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"a{i}: &a{i} [*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1},*a{i - 1}]\n" for i in range(1, 12)
    )
    path = tmp_path / "laughs.yaml"
    path.write_text(laughs, encoding="utf-8")
    with pytest.raises(InvalidItemError, match="aliases") as caught:
        load_item(path, author="张敏")
    assert len(str(caught.value)) < 1000


def test_an_author_that_is_not_a_name_is_refused_without_quoting_it() -> None:
    with pytest.raises(InvalidItemError, match="author: must be a name") as caught:
        parse_item(item_doc(author=[["x"] * 50] * 50), author="张敏")
    assert len(str(caught.value)) < 200
