"""People's names as the four-eyes rule compares them.

Until users have real identities, an author and an approver are names typed by people, and a name
can be made to look like another's: full-width letters (`Ｚｈａｎｇ`), a no-break or double space,
zero-width characters, a soft hyphen, the traditional form of a simplified character (`張敏` for
`张敏`), a CJK compatibility ideograph, or a Cyrillic `І` among Latin letters. :func:`person_key`
reduces a name to what a reader sees — Unicode NFKC, traditional characters as simplified (OpenCC),
case folded, every space and invisible or default-ignorable character removed, Cyrillic and Greek
look-alikes read as the Latin letters they resemble — and two names with the same key are the same
person. :func:`checked_name` refuses a name that is nothing but invisible characters or that
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
# Default-ignorable characters outside those categories (Unicode's DerivedCoreProperties): the
# combining grapheme joiner, variation selectors, Hangul and Mongolian fillers — drawn as nothing.
IGNORABLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0]
    + list(range(0x180B, 0x1810))
    + list(range(0xFE00, 0xFE10))
    + list(range(0xE0100, 0xE01F0))
)
# Cyrillic and Greek letters drawn like Latin ones (after case folding), from Unicode's confusables
# (TR 39): a name written wholly in look-alike letters is the Latin name.
LOOKALIKE = str.maketrans(
    {
        "а": "a",
        "в": "b",
        "е": "e",
        "ё": "e",
        "з": "3",
        "і": "i",
        "ї": "i",
        "ј": "j",
        "к": "k",
        "м": "m",
        "н": "h",
        "о": "o",
        "п": "n",
        "р": "p",
        "с": "c",
        "т": "t",
        "у": "y",
        "х": "x",
        "ѕ": "s",
        "һ": "h",
        "ԁ": "d",
        "ԛ": "q",
        "ԝ": "w",
        "ӏ": "l",
        "ɡ": "g",
        "α": "a",
        "β": "b",
        "ε": "e",
        "η": "n",
        "ι": "i",
        "κ": "k",
        "ν": "v",
        "ο": "o",
        "ρ": "p",
        "τ": "t",
        "υ": "u",
        "χ": "x",
        "ζ": "z",
        "μ": "u",
    }
)
# Alphabets with letters that look alike; a name may use one of them, not several.
LOOKALIKE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK", "ARMENIAN", "CHEROKEE"})


@lru_cache(maxsize=1)
def _simplified() -> OpenCC:
    return OpenCC("t2s")


def person_key(name: str) -> str:
    """What a name is, for comparing people: NFKC, simplified, case folded, no space or invisible."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in INVISIBLE and ord(ch) not in IGNORABLE
    )
    return _simplified().convert(text).casefold().translate(LOOKALIKE)


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
