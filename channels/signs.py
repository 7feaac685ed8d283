"""The sign registry: every sign's size, character set, page time and driver, as the office lists them,
and what every sign driver does (``SignDriver``: the HTTP controller in ``channels/controller.py``,
NTCIP 1203 over SNMP in ``channels/ntcip.py``).

A YAML file (``DISPATCH_DISPLAY__REGISTRY``) with a list ``signs``; each entry is checked when it is
read, and a bad entry stops the process with the entry and field named.
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dispatcher.errors import ConfigurationError


class Sign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100)
    name: str = ""
    area: str = Field(pattern=r"^\d{6}$")
    #: where the sign stands (WGS 84): an item placed by a polygon or circle reaches the signs inside it
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    group: str | None = None
    lines: int = Field(ge=1, le=32)
    chars_per_line: int = Field(ge=1, le=200)
    max_pages: int = Field(1, ge=1, le=16)
    charset: str = Field("gb2312", description="What the sign's font can show; other characters are refused.")
    cjk_cells: int = Field(1, ge=1, le=2, description="Cells a CJK character takes (1 on most LED fonts).")
    page_time: float | None = Field(None, gt=0, description="Seconds per page; default from the settings.")
    driver: Literal["http", "ntcip"] = "http"
    address: str = Field(
        description="http: a URL or an id under http_base_url; ntcip: host:port of the agent"
    )

    @field_validator("charset")
    @classmethod
    def _known_charset(cls, charset: str) -> str:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise ValueError(f"unknown character set {charset!r}") from None
        return charset

    def width(self, text: str) -> int:
        """Cells ``text`` takes on this sign."""
        return sum(self.cjk_cells if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    def unshowable(self, text: str) -> list[str]:
        """Characters of ``text`` outside the sign's character set, each once."""
        bad = []
        for ch in dict.fromkeys(text):
            try:
                ch.encode(self.charset)
            except UnicodeEncodeError:
                bad.append(ch)
        return bad


def load_registry(path: Path) -> list[Sign]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigurationError(f"sign registry {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"sign registry {path} cannot be parsed: {exc}") from None
    signs = []
    for index, entry in enumerate(data.get("signs") or []):
        try:
            signs.append(Sign.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            field = ".".join(str(p) for p in first["loc"])
            raise ConfigurationError(
                f"sign registry {path}: signs[{index}].{field}: {first['msg']}"
            ) from None
    ids = [sign.id for sign in signs]
    if len(ids) != len(set(ids)):
        raise ConfigurationError(f"sign registry {path}: sign ids are not unique")
    return signs


class SignDriver(Protocol):
    """One sign's controller, whatever protocol it speaks. The message id is the delivery's
    idempotency key: a controller takes a repeated activation of an id it holds as the same message."""

    def activate(self, multi: str, priority: int, duration_minutes: int, key: str) -> None:
        """Show ``multi`` at ``priority`` for ``duration_minutes`` under the id ``key``."""
        ...

    def showing(self) -> dict[str, Any] | None:
        """The message shown now (``id``, ``multi``, ``priority``, ``blanked_by``), or None when blank."""
        ...

    def holds(self, key: str, priority: int) -> bool:
        """Whether the sign holds the message ``key`` (showing it, or keeping it under a newer one)."""
        ...

    def clear(self, key: str) -> None:
        """Take the message ``key`` off the sign (nothing when the sign no longer shows it)."""
        ...

    def configuration(self) -> dict[str, Any]:
        """What the sign says about itself: lines, characters per line, pages, font, control mode."""
        ...
