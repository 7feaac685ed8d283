"""Laying text out for a sign in NTCIP 1203 MULTI markup (the Mark-Up Language for Transportation
Information), and how long a message may show.

``[nl]`` starts a new line, ``[np]`` a new page, ``[ptXoY]`` sets the page on-time and off-time in
tenths of a second, ``[fltXoY]…[/fl]`` flashes, and a literal bracket is written doubled (``[[``,
``]]``). Text is wrapped and paginated to the sign's lines and characters per line and never
truncated: a text that needs more pages than the sign allows is refused at approval.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from dispatcher.errors import TooLateError

_TOKEN = re.compile(r"[A-Za-z0-9]+|\s+|.", re.DOTALL)


# Characters a line never starts with (Chinese line-breaking rules, 行首禁则): closing punctuation and
# brackets. A line that would start with one takes the character before it along.
_NO_LINE_START = frozenset("，。、；：！？）》」』】〕〉”’…,.;:!?)]}%")


def wrap(text: str, width: int, measure: Callable[[str], int] = len) -> list[str]:
    """Break text into lines of at most ``width`` cells, at spaces where a word allows it, and never
    before closing punctuation (a full stop alone on a line, or a page, says nothing)."""
    lines: list[str] = []

    def close(current: str, following: str) -> str:
        """End the line ``current`` before ``following``; return what the next line starts with."""
        kept = current.rstrip()
        if following in _NO_LINE_START and len(kept) > 1 and measure(kept[-1] + following) <= width:
            lines.append(kept[:-1].rstrip())
            return kept[-1]
        lines.append(kept)
        return ""

    for paragraph in text.splitlines() or [""]:
        current = ""
        for token in _TOKEN.findall(paragraph):
            if token.isspace():
                current += " " if current else ""
                continue
            if measure(current.rstrip() + token) > width and current.strip():
                current = close(current, token[0])
            for ch in token:  # a word longer than a line is split where it must be
                if measure(current + ch) > width and current:
                    current = close(current, ch)
                current += ch
        if current.strip():
            lines.append(current.rstrip())
    return lines


def duration_minutes(body: dict[str, Any], now: datetime | None = None) -> int:
    """Whole minutes the message may show from now: rounded down, so it never outlives its item.

    Raises :class:`TooLateError` when less than a minute is left (signs count in minutes).
    """
    if "expires" not in body:  # a payload pinned before durations were worked out at activation
        return int(body["duration_minutes"])
    left = (datetime.fromisoformat(body["expires"]) - (now or datetime.now(UTC))).total_seconds()
    if left < 60:
        raise TooLateError(
            f"display: the item expires in {max(0, int(left))}s, too soon to show (signs count in minutes)"
        )
    return min(int(left // 60), 0xFFFE)


def escape_multi(text: str) -> str:
    return text.replace("[", "[[").replace("]", "]]")


def lay_out(
    text: str, lines: int, width: int, measure: Callable[[str], int], on_time: int, flash: bool
) -> tuple[str, list[list[str]]]:
    """The MULTI string and the pages (lists of lines) of ``text`` on a sign of ``lines`` × ``width``."""
    wrapped = wrap(text, width, measure)
    pages = [wrapped[i : i + lines] for i in range(0, len(wrapped), lines)] or [[]]
    bodies = ["[nl]".join(escape_multi(line) for line in page) for page in pages]
    if flash:  # warnings flash: half a second on, half off (NTCIP 1203 [fltXoY]…[/fl])
        bodies = [f"[flt5o5]{body}[/fl]" for body in bodies]
    return f"[pt{on_time}o0]" + "[np]".join(bodies), [list(page) for page in pages]
