"""Previews: every payload an item would send, for a file or a stored item, and nothing written."""

from __future__ import annotations

import json

import pytest

from dispatcher import approval
from dispatcher.errors import ConfigurationError, NotFoundError
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, ItemRow, Ledger
from dispatcher.previews import described, preview, preview_view
from settings import Settings
from tests.conftest import item_doc


def test_an_item_not_stored_is_previewed_on_every_channel_and_nothing_is_written(
    ledger: Ledger, settings: Settings
) -> None:
    plan = preview(ledger, settings, parse_item(item_doc()))
    assert {p.channel for p in plan.payloads} == {"website", "sms", "display", "microblog"}
    assert not plan.problems
    with ledger.session() as session:
        assert session.query(ItemRow).count() == 0 and session.query(DeliveryRow).count() == 0


def test_a_stored_item_is_previewed_by_id_and_one_channel_alone(ledger: Ledger, settings: Settings) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc()))
    plan = preview(ledger, settings, item_id, only="display")
    assert [p.target for p in plan.payloads] == ["BJ-CY-001", "BJ-CY-002"]
    with pytest.raises(NotFoundError, match="no item 99"):
        preview(ledger, settings, 99)
    with pytest.raises(ConfigurationError, match="did you mean 'display'"):
        preview(ledger, settings, item_id, only="dispaly")


def test_a_text_too_long_for_a_sign_is_a_problem_not_an_error(ledger: Ledger, settings: Settings) -> None:
    plan = preview(ledger, settings, parse_item(item_doc(areas=["110108"], short_text="长" * 60)))
    assert any("BJ-HD-001" in problem for problem in plan.problems)


def test_each_payload_comes_with_its_own_channels_description(ledger: Ledger, settings: Settings) -> None:
    plan = preview(ledger, settings, parse_item(item_doc()))
    pairs = described(settings, plan.payloads)
    assert [payload for payload, _ in pairs] == plan.payloads
    by_channel = {payload.channel: lines for payload, lines in pairs}
    assert by_channel["sms"][1] == plan.payloads[1].body["text"]
    assert by_channel["display"][-1].startswith("  MULTI: [pt30o0]")


def test_the_view_is_the_payloads_as_sent_and_what_worries_the_approver(
    ledger: Ledger, settings: Settings
) -> None:
    view = preview_view(preview(ledger, settings, parse_item(item_doc()), only="sms"))
    assert set(view) == {"payloads", "problems", "notes"}
    (sms,) = view["payloads"]
    assert sms["channel"] == "sms" and sms["target"] == "batch-001" and sms["encoding"] == "UCS-2"
    json.dumps(view)  # ready for JSON as it is
