"""What an item would send, before anything is sent: every channel's payload for every target.

A preview renders an item file, or an item already in the ledger, exactly as approval would pin it,
and collects every limit problem and every note of the peers; it writes nothing. The command line
prints it (``dispatch preview``); an HTTP API or a page shows the same data.
"""

from __future__ import annotations

from typing import Any

from channels import build_channel
from channels.base import Channel
from dispatcher import approval
from dispatcher.approval import Plan
from dispatcher.errors import NotFoundError
from dispatcher.items import Item
from dispatcher.ledger import ItemRow, Ledger
from dispatcher.reports import payload_view
from dispatcher.words import Payload
from settings import Settings


def preview(ledger: Ledger, settings: Settings, item: Item | int, only: str | None = None) -> Plan:
    """Every payload of ``item`` — an item not yet stored, or the id of a stored one — with its problems
    and notes; with ``only``, that channel's alone (an unknown name is refused with a suggestion)."""
    with ledger.session() as session:
        if isinstance(item, int):
            row = session.get(ItemRow, item)
            if row is None:
                raise NotFoundError(f"no item {item}")
            publication = approval.stored_publication(session, settings, row)
        else:
            publication = approval.draft_publication(session, settings, item)
    if only:
        build_channel(only, settings)
    return approval.plan(settings, publication, only=only)


def described(settings: Settings, payloads: list[Payload]) -> list[tuple[Payload, list[str]]]:
    """Each payload with the lines its own channel gives a person (``Channel.describe``)."""
    adapters: dict[str, Channel] = {}
    for payload in payloads:
        if payload.channel not in adapters:
            adapters[payload.channel] = build_channel(payload.channel, settings)
    return [(payload, adapters[payload.channel].describe(payload)) for payload in payloads]


def preview_view(plan: Plan) -> dict[str, Any]:
    """A preview as JSON-ready data: the payloads as they will be sent, the problems, the notes."""
    return {
        "payloads": [payload_view(p) for p in plan.payloads],
        "problems": plan.problems,
        "notes": plan.notes,
    }
