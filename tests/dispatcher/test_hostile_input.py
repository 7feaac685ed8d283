"""Hostile input: every piece is refused with the field named, and nothing crashes or is let through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher import approval
from dispatcher.errors import InvalidItemError, RefusedError
from dispatcher.items import load_item, parse_item
from dispatcher.ledger import Ledger
from dispatcher.people import checked_name, person_key
from dispatcher.subscribers import import_csv
from settings import Settings
from tests.support import item_doc

# The fuzz corpus: (changes to a valid warning, the field the refusal must name, a fragment of it).
CORPUS = [
    ({"title": "预警\u202e文明"}, "title", "U+202E"),  # right-to-left override
    ({"title": "预警\u2066x\u2069"}, "title", "U+2066"),
    ({"title": "预警\x1b[2J"}, "title", "U+001B"),  # a terminal escape
    ({"body": "第一段\n第二段\x07"}, "body", "U+0007"),
    ({"short_text": "短\u200f文"}, "short_text", "U+200F"),
    ({"department": "应急\x00管理局"}, "department", "U+0000"),
    ({"instruction": "请\u061c撤离"}, "instruction", "U+061C"),
    ({"expires": "1767225600"}, "expires", "offset"),  # a Unix timestamp as text
    ({"expires": 1767225600}, "expires", "offset"),  # … and as a number
    ({"expires": "tomorrow"}, "expires", "offset"),
    ({"areas": ["11٠١٠٥", "１１０１０５", "990000"]}, "areas", "'990000'"),  # every bad area, not the first
    ({"author": "\u200b\u00ad\u2060"}, "author", "invisible"),
    ({"author": "Zhang Mіn"}, "author", "look-alike"),  # a Cyrillic і among Latin letters
]


@pytest.mark.parametrize(("changes", "field", "fragment"), CORPUS)
def test_hostile_fields_are_refused_naming_the_field(changes: dict, field: str, fragment: str) -> None:
    with pytest.raises(InvalidItemError) as caught:
        parse_item(item_doc(**changes))
    problems = dict(caught.value.problems)
    assert field in problems and fragment in problems[field], problems


def test_every_bad_area_is_named() -> None:
    with pytest.raises(InvalidItemError) as caught:
        parse_item(item_doc(areas=["11٠١٠٥", "990000"]))
    message = dict(caught.value.problems)["areas"]
    assert "'11٠١٠٥'" in message and "'990000'" in message


def test_line_breaks_stay_allowed_where_text_has_paragraphs() -> None:
    assert parse_item(item_doc(body="第一段\n第二段\t（续）")).body.count("\n") == 1


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_deeply_nested_file_is_refused_not_a_traceback(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    path.write_text(("[" * 100_000) + ("]" * 100_000) if suffix == ".json" else "a: " + "[" * 100_000)
    with pytest.raises(InvalidItemError) as caught:
        load_item(path)
    assert caught.value.exit_code == 2


def test_a_csv_field_over_the_module_limit_refuses_its_line_only(tmp_path: Path, settings: Settings) -> None:
    path = tmp_path / "subscribers.csv"
    path.write_text(
        "phone,areas\n13800138000,110105\n13800138001," + "1" * 200_000 + "\n13800138002,110105\n",
        encoding="utf-8",
    )
    report = import_csv(Ledger(settings.ledger_url), path, settings.sms)
    assert report.created + report.updated == 2 and [line for line, _ in report.refused] == [3]


LOOKALIKES_OF_ZHANG_MIN = [
    "張敏",  # traditional
    "张 敏",
    "张\u00a0敏",  # no-break space
    "张\u3000敏",  # ideographic space
    " 张敏 ",
    "张\u200b敏",  # zero-width space
    "张\u200d敏",  # zero-width joiner
    "张\u2060敏",  # word joiner
    "张\u00ad敏",  # soft hyphen
    "张\ufeff敏",  # zero-width no-break space
    "张\ufa41",  # a CJK compatibility ideograph of 敏
    "張\ufa41",
]
LOOKALIKES_OF_LATIN = ["ＺＨＡＮＧ ＭＩＮ", "zhang  min", "ZHANG MIN", "Zhang\u00a0Min", "Zhang\u200bMin"]


@pytest.mark.parametrize("name", LOOKALIKES_OF_ZHANG_MIN)
def test_a_lookalike_of_the_authors_name_cannot_approve(
    name: str, ledger: Ledger, settings: Settings
) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(author="张敏")))
    with pytest.raises(RefusedError, match="another person"):
        approval.approve(ledger, settings, item_id, name)


@pytest.mark.parametrize("name", LOOKALIKES_OF_LATIN)
def test_a_lookalike_of_a_latin_name_is_the_same_person(name: str) -> None:
    assert person_key(name) == person_key("Zhang Min")


@pytest.mark.parametrize("name", ["Zhang Mіn", "Ζhang Min", "\u200b\u200c", "   "])
def test_names_made_to_deceive_are_refused(name: str, ledger: Ledger, settings: Settings) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(author="Zhang Min")))
    with pytest.raises(RefusedError):
        approval.approve(ledger, settings, item_id, name)
    with pytest.raises(ValueError):
        checked_name(name)


def test_different_people_stay_different() -> None:
    assert person_key("张敏") != person_key("张明") and person_key("陈刚") != person_key("陈钢")


def test_json_numbers_are_not_dates(tmp_path: Path) -> None:
    path = tmp_path / "item.json"
    path.write_text(json.dumps(item_doc(expires=1767225600)), encoding="utf-8")
    with pytest.raises(InvalidItemError, match="expires"):
        load_item(path)


@pytest.mark.parametrize(
    ("name", "author"),
    [
        ("Хіа", "Xia"),  # wholly Cyrillic look-alikes
        ("ΧΙΑ", "Xia"),  # wholly Greek capitals
        ("张\ufe00敏", "张敏"),  # a variation selector
        ("张\u3164敏", "张敏"),  # the Hangul filler
        ("张\u034f敏", "张敏"),  # the combining grapheme joiner
        ("张\u180b敏", "张敏"),  # a Mongolian variation selector
    ],
)
def test_default_ignorables_and_whole_script_lookalikes_are_the_same_person(name: str, author: str) -> None:
    assert person_key(name) == person_key(author)
