"""People's names as the four-eyes rule compares them.

Until users have real identities, an author and an approver are names typed by people, and a name
can be made to look like another's: full-width letters (`Ｚｈａｎｇ`), a no-break or double space,
zero-width characters, a soft hyphen, the traditional form of a simplified character (`張敏` for
`张敏`), a CJK compatibility ideograph, or a Cyrillic `І` among Latin letters. :func:`person_key`
reduces a name to what a reader sees — Unicode NFKC, traditional characters as simplified (OpenCC),
case folded, every space and invisible character removed — and two names with the same key are the
same person. :func:`checked_name` refuses a name that is nothing but invisible characters or that
mixes look-alike alphabets (Latin with Cyrillic or Greek, after Unicode TR 39's mixed-script idea).
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from confusable_homoglyphs import categories
from opencc_purepy import OpenCC

# Categories a reader cannot see: controls, format characters (zero-width, soft hyphen, bidi
# controls) and every kind of space.
INVISIBLE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
# Alphabets with letters that look alike; a name may use one of them, not several.
LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE"})


@lru_cache(maxsize=1)
def _simplified() -> OpenCC:
    return OpenCC("t2s")


def person_key(name: str) -> str:
    """What a name is, for comparing people: NFKC, simplified, case folded, no space or invisible."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in INVISIBLE)
    return _simplified().convert(text).casefold()


def checked_name(name: str) -> str:
    """The name, stripped; ValueError when it cannot name a person."""
    stripped = name.strip()
    if not person_key(stripped):
        raise ValueError("is empty or made only of spaces and invisible characters")
    scripts = {alias for alias in categories.unique_aliases(stripped) if alias in LOOKALIKE_SCRIPTS}
    if len(scripts) > 1:
        raise ValueError(f"mixes look-alike alphabets ({', '.join(sorted(scripts))})")
    return stripped


def same_person(first: str, second: str) -> bool:
    return person_key(first) == person_key(second)
