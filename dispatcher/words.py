"""The words the core and the adapters share: what is published, to whom, with what, and what came back.

They live in the core; adapters depend on them, never the other way round (``channels/base.py`` holds
the contract and the HTTP boundary, and re-exports these for adapters' convenience).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dispatcher.items import Item


@dataclass(frozen=True)
class Publication:
    """What every adapter renders from: the item, its identity and the link to its article."""

    item: Item
    item_id: int
    uid: str
    revision: int
    slug: str
    link: str
    #: how many subscribers the item reaches (counted by the core from the subscriber store); the
    #: numbers themselves are streamed into the ledger at approval, never held here
    audience: int = 0
    #: what this publication does: ``publish`` (the first approved revision), ``correction`` (a later
    #: revision of an item already out) or ``withdrawal`` (a notice that the item was withdrawn)
    stage: str = "publish"
    #: the title of the revision a correction replaces, for channels that quote it
    previous_title: str | None = None
    #: why the item was withdrawn (``stage == "withdrawal"``)
    reason: str | None = None


@dataclass(frozen=True)
class Target:
    name: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Payload:
    """Exactly what will be sent to one target; its digest is pinned at approval."""

    channel: str
    target: str
    body: dict[str, Any]
    measures: dict[str, int] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest_of(self.body)


@dataclass(frozen=True)
class Receipt:
    provider_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    #: sent, but people must look (the site dropped a category, gave another link): the core records
    #: a channel alert beside the sent delivery
    alert: str | None = None


@dataclass
class Findings:
    """What a channel's peer says about payloads before approval: problems refuse it, notes inform."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Health:
    """What a probe found. A channel of several outlets that it checked one by one says which it could
    not use (``down``) of how many it checked (``checked``): some signs offline is a channel of which
    those signs are down, not a channel that is down."""

    ok: bool
    detail: str
    latency_ms: float
    down: tuple[str, ...] = ()
    checked: int = 0


@dataclass(frozen=True)
class Presence:
    """What a target shows compared with what it was sent (for channels whose targets can forget)."""

    SHOWN: ClassVar[str] = "shown"  # it, or something that rightly outranks it
    LOST: ClassVar[str] = "lost"  # blank, or something it outranks: send it again
    WITHDRAWN: ClassVar[str] = "withdrawn"  # taken down on purpose at the target: never put back
    ENDED: ClassVar[str] = "ended"  # its time at the target is over (it ends before the item expires)

    state: str
    detail: str = ""


class Renderer(Protocol):
    def render(self, channel: str, kind: str, context: dict[str, Any]) -> str: ...


def digest_of(body: Any) -> str:
    """The SHA-256 of a JSON value in its canonical form (sorted keys, no spaces)."""
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
