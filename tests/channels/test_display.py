from __future__ import annotations

from pathlib import Path

import pytest

from channels.display import DisplayChannel, escape_multi, load_registry, wrap
from dispatcher.errors import ConfigurationError
from dispatcher.items import covers


def test_wrap_breaks_cjk_by_cell_and_latin_at_spaces() -> None:
    assert wrap("一二三四五六七", 3) == ["一二三", "四五六", "七"]
    assert wrap("Road closed ahead", 11) == ["Road closed", "ahead"]
    assert wrap("Supercalifragilistic", 8) == ["Supercal", "ifragili", "stic"]
    assert wrap("第一行\n第二行", 10) == ["第一行", "第二行"]


def test_literal_brackets_are_doubled_in_multi() -> None:
    assert escape_multi("[注意]") == "[[注意]]"


@pytest.mark.parametrize(
    ("area", "sign_area", "expected"),
    [
        ("110000", "110105", True),  # the city covers its districts
        ("110100", "110105", True),
        ("110105", "110105", True),
        ("110108", "110105", False),
        ("120000", "110105", False),
    ],
)
def test_an_area_covers_the_divisions_inside_it(area: str, sign_area: str, expected: bool) -> None:
    assert covers(area, sign_area) is expected


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("signs:\n  - {id: A, area: '110105', lines: 0, chars_per_line: 8, address: A}\n", "signs[0].lines"),
        ("signs:\n  - {id: A, area: '11', lines: 2, chars_per_line: 8, address: A}\n", "signs[0].area"),
        ("signs:\n  - {id: A, area: '110105', lines: 2, chars_per_line: 8}\n", "signs[0].address"),
        ("signs: [\n", "cannot be parsed"),
        (
            "signs:\n  - {id: A, area: '110105', lines: 2, chars_per_line: 8, address: A}\n"
            "  - {id: A, area: '110105', lines: 2, chars_per_line: 8, address: B}\n",
            "not unique",
        ),
    ],
)
def test_a_bad_registry_is_refused_naming_the_entry(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "signs.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_registry(path)


def test_a_missing_registry_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_registry(tmp_path / "none.yaml")


def test_addresses_are_urls_or_ids_under_the_base(registry: Path) -> None:
    from settings import DisplaySettings

    channel = DisplayChannel(DisplaySettings(registry=registry, http_base_url="http://h:1/"))
    assert channel.address("BJ-CY-001") == "http://h:1/signs/BJ-CY-001"
    with pytest.raises(ConfigurationError, match="not in the registry"):
        channel.address("nope")
