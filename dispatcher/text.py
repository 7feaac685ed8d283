"""Text for a terminal: tables whose columns line up when cells hold Chinese.

Both the command line and the demo print them, so they live apart from either.
"""

from __future__ import annotations

import unicodedata
from typing import Any


def width(text: str) -> int:
    """Columns a terminal gives ``text``: a wide or full-width (CJK) character takes two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain text table under a header and a rule, its columns padded to the widest cell."""
    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c + " " * (w - width(c)) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
