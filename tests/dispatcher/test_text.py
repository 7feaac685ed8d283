"""Plain text tables: columns line up on a terminal even when cells hold Chinese."""

from __future__ import annotations

from dispatcher.text import table, width


def test_a_chinese_character_takes_two_columns() -> None:
    assert width("朝阳 sms") == 8
    assert width("ＡＢ") == 4  # full-width Latin too


def test_columns_line_up_whatever_the_script() -> None:
    text = table([["朝阳区", "sent"], ["site", "dead"]], ["target", "state"])
    header, rule, first, second = text.split("\n")
    assert rule == "------  -----"
    # Each row's second column starts at the same terminal column.
    assert width(first[: first.index("sent")]) == width(second[: second.index("dead")]) == len("target  ")
    assert header == "target  state"


def test_trailing_spaces_are_trimmed_and_cells_may_be_any_value() -> None:
    assert table([[1, ""]], ["id", "note"]).split("\n")[-1] == "1"
