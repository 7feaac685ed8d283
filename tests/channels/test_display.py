from __future__ import annotations

from pathlib import Path

import pytest

from channels.display import DisplayChannel
from channels.multi import escape_multi, wrap
from channels.signs import load_registry
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


def test_wide_cjk_cells_halve_a_line(tmp_path: Path) -> None:
    from channels.signs import Sign

    wide = Sign(id="W", area="110105", lines=2, chars_per_line=8, address="W", cjk_cells=2)
    assert wrap("一二三四五六", 8, wide.width) == ["一二三四", "五六"]
    assert wrap("AB一二三", 8, wide.width) == ["AB一二三"]


def render_for(registry_text: str, tmp_path: Path, **changes: object) -> list:  # type: ignore[type-arg]
    from dispatcher.items import parse_item
    from dispatcher.rendering import TemplateRenderer, publication_for
    from settings import PROJECT_DIR, DisplaySettings
    from tests.support import item_doc

    path = tmp_path / "signs.yaml"
    path.write_text(registry_text, encoding="utf-8")
    channel = DisplayChannel(DisplaySettings(registry=path))
    pub = publication_for(
        parse_item(item_doc(**changes)), item_id=1, uid="d" * 32, revision=1, public_url="http://x"
    )
    renderer = TemplateRenderer(PROJECT_DIR / "templates")
    return [channel.prepare(pub, target, renderer) for target in channel.targets(pub)]


SIGN_YAML = "signs:\n  - {id: A, area: '110105', lines: 2, chars_per_line: 10, max_pages: 8, address: A%s}\n"


def test_warnings_flash_and_routine_items_do_not(tmp_path: Path) -> None:
    warning = render_for(SIGN_YAML % "", tmp_path)[0]
    assert "[flt5o5]" in warning.body["multi"] and warning.body["multi"].count("[/fl]") == len(
        warning.body["pages"]
    )
    tip = render_for(
        SIGN_YAML % "", tmp_path, kind="safety_tip", severity=None, urgency=None, certainty=None
    )[0]
    assert "[fl" not in tip.body["multi"]


def test_a_sign_page_time_overrides_the_default(tmp_path: Path) -> None:
    payload = render_for(SIGN_YAML % ", page_time: 5", tmp_path)[0]
    assert payload.body["multi"].startswith("[pt50o0]")


def test_characters_outside_the_sign_charset_are_refused_naming_the_sign(tmp_path: Path) -> None:
    from dispatcher.errors import ContentError

    with pytest.raises(ContentError, match="display target A: 😀 not in the sign's character set GB2312"):
        render_for(SIGN_YAML % "", tmp_path, short_text="暴雨预警😀")
    big5 = render_for(SIGN_YAML % ", charset: big5", tmp_path, short_text="暴雨預警")
    assert big5


def test_an_unknown_charset_in_the_registry_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "signs.yaml"
    path.write_text(SIGN_YAML % ", charset: klingon", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="signs\\[0\\].charset"):
        load_registry(path)


def test_no_line_starts_with_closing_punctuation() -> None:
    """Found by a newcomer trying the README: lines began with a full-width comma, and a page held only
    a full stop. The character before it goes along (行首禁则)."""
    from channels.multi import wrap

    text = "朝阳区暴雨橙色预警：未来3小时将有50毫米以上强降雨，请减少外出，远离低洼地带。"
    for width in range(4, 16):
        lines = wrap(text, width)
        assert "".join(lines) == text  # nothing lost, nothing added
        assert all(len(line) <= width for line in lines)
        assert not any(line[0] in "，。：" for line in lines[1:]), (width, lines)
