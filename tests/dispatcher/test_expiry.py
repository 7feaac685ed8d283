"""Time in an item's life, on the flow's own clock (``ledger.shift``): nothing here sleeps.

At ``expires`` what the item shows ends by itself (signs cleared, the post marked or moved to draft,
microblog posts kept or deleted); an item with ``publish_at`` waits in the ledger until then, and can be
corrected or withdrawn before it goes out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dispatcher import approval, expiry, outbox
from dispatcher.delivery import deliver
from dispatcher.items import parse_item
from dispatcher.ledger import Action, DeliveryState, ItemRow, Ledger
from dispatcher.withdrawals import retract
from sandbox.server import Sandbox
from settings import Settings
from tests.dispatcher.test_corrections import (
    APPROVER,
    OTHER,
    deliveries,
    drain,
    events,
    held,
    live_posts,
    showing,
    statuses,
)
from tests.support import item_doc


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    return sandboxed


def soon(**changes: Any) -> dict[str, Any]:
    """A warning expiring in ten minutes."""
    return item_doc(expires=(datetime.now(UTC) + timedelta(minutes=10)).isoformat(), **changes)


def approved_now(ledger: Ledger, settings: Settings, document: dict[str, Any]) -> int:
    item_id = approval.submit(ledger, parse_item(document))
    approval.approve(ledger, settings, item_id, APPROVER)
    return item_id


def test_at_expiry_signs_are_cleared_and_the_post_says_it_expired(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = approved_now(ledger, settings, soon(channels=["website", "display", "microblog"]))
    drain(ledger, settings, item_id)
    assert expiry.end_expired(ledger, settings) == []  # not yet
    ledger.shift = timedelta(minutes=11)
    assert expiry.end_expired(ledger, settings) == [item_id]
    assert expiry.end_expired(ledger, settings) == []  # ended once
    ending = [d for d in deliveries(ledger, item_id) if d.action in (Action.withdraw, Action.expire)]
    assert {(d.channel, d.action) for d in ending} == {
        ("display", Action.withdraw),
        ("website", Action.expire),
    }
    drain(ledger, settings, item_id)
    for sign in ("BJ-CY-001", "BJ-CY-002"):
        assert showing(sandbox, sign) is None and held(sandbox, sign) == []
    (post,) = live_posts(sandbox)
    assert "已失效" in post["content"]["raw"] and post["status"] == "publish"
    assert len(statuses(sandbox)) == 1  # kept (the default)
    (ended,) = events(ledger, item_id, "item.ended")
    assert ended.actor == "expiry" and sorted(ended.detail["deliveries"]) == sorted(d.id for d in ending)


def test_at_expiry_the_post_can_go_to_draft_and_posts_be_deleted(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    tidy = settings.model_copy(
        update={
            "website": settings.website.model_copy(update={"on_expiry": "draft"}),
            "microblog": settings.microblog.model_copy(update={"on_expiry": "delete"}),
        }
    )
    item_id = approved_now(ledger, tidy, soon(channels=["website", "microblog"]))
    drain(ledger, tidy, item_id)
    ledger.shift = timedelta(minutes=11)
    expiry.end_expired(ledger, tidy)
    drain(ledger, tidy, item_id)
    assert live_posts(sandbox)[0]["status"] == "draft"
    assert statuses(sandbox) == []


def test_a_send_that_had_not_left_by_expiry_ends_expired_and_nothing_is_taken_down(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = approved_now(ledger, settings, soon(channels=["display"]))
    ledger.shift = timedelta(minutes=11)
    expiry.end_expired(ledger, settings)
    drain(ledger, settings, item_id)
    assert {d.state for d in deliveries(ledger, item_id)} == {DeliveryState.expired}
    assert showing(sandbox, "BJ-CY-001") is None


def test_a_withdrawn_item_is_not_ended_again(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    item_id = approved_now(ledger, settings, soon(channels=["display"]))
    drain(ledger, settings, item_id)
    retract(ledger, settings, item_id, OTHER, "误发")
    drain(ledger, settings, item_id)
    ledger.shift = timedelta(minutes=11)
    assert expiry.end_expired(ledger, settings) == []


# -- publish_at ----------------------------------------------------------------------------------


def later(**changes: Any) -> dict[str, Any]:
    """A warning to go out in an hour."""
    return item_doc(publish_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat(), **changes)


def test_a_scheduled_item_waits_in_the_ledger_and_goes_out_when_due(
    ledger: Ledger, settings: Settings, sandbox: Sandbox, broker: outbox.Broker
) -> None:
    item_id = approval.submit(ledger, parse_item(later(channels=["website", "display"])))
    result = approval.approve(ledger, settings, item_id, APPROVER, broker)
    assert result.enqueued == 0 and any("scheduled" in note for note in result.notes)
    waiting = deliveries(ledger, item_id)
    for delivery in waiting:
        assert deliver(ledger, settings, delivery.id, "w") is None  # a stray task sends nothing early
    ledger.shift = timedelta(seconds=settings.sweep_interval + 5)
    assert not {d.id for d in waiting} & {i for i, _ in outbox.due(ledger, settings, broker)}
    assert live_posts(sandbox) == []
    ledger.shift = timedelta(hours=1, seconds=1)
    assert {d.id for d in waiting} <= {i for i, _ in outbox.due(ledger, settings, broker)}
    for delivery in waiting:
        assert deliver(ledger, settings, delivery.id, "w") is DeliveryState.sent
    assert len(live_posts(sandbox)) == 1


def test_a_scheduled_item_can_be_corrected_or_withdrawn_before_it_goes_out(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = approval.submit(ledger, parse_item(later(channels=["website"])))
    approval.approve(ledger, settings, item_id, APPROVER)
    approval.revise(
        ledger, item_id, parse_item(later(author=OTHER, channels=["website"], body="更正后的正文。"))
    )
    approval.approve(ledger, settings, item_id, APPROVER)
    first, second = deliveries(ledger, item_id)
    assert first.state is DeliveryState.superseded and second.next_attempt_at is not None
    other = approval.submit(ledger, parse_item(later(channels=["website"])))
    approval.approve(ledger, settings, other, APPROVER)
    retract(ledger, settings, other, OTHER, "取消发布")
    ledger.shift = timedelta(hours=1, seconds=1)
    drain(ledger, settings, item_id)
    drain(ledger, settings, other)
    (post,) = live_posts(sandbox)
    assert "更正后的正文" in post["content"]["raw"]
    assert {d.state for d in deliveries(ledger, other)} == {DeliveryState.cancelled}
    with ledger.session() as session:
        assert session.get_one(ItemRow, other).ended_at is None


def test_publish_at_must_come_before_expires() -> None:
    from dispatcher.errors import InvalidItemError

    with pytest.raises(InvalidItemError, match="publish_at must come before expires"):
        parse_item(item_doc(publish_at="2099-01-01T00:00:00+08:00"))


def test_an_item_corrected_after_it_ended_shows_again_and_its_end_is_not_replayed(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: an expiry mark still waiting when the item was corrected overwrote the correction."""
    item_id = approved_now(ledger, settings, soon(channels=["website"]))
    drain(ledger, settings, item_id)
    ledger.shift = timedelta(minutes=11)
    expiry.end_expired(ledger, settings)
    (mark,) = [d for d in deliveries(ledger, item_id) if d.action is Action.expire]
    approval.revise(
        ledger, item_id, parse_item(item_doc(author=OTHER, channels=["website"], body="延长后的正文。"))
    )
    approval.approve(ledger, settings, item_id, APPROVER)
    drain(ledger, settings, item_id)
    assert {d.state for d in deliveries(ledger, item_id) if d.id == mark.id} == {DeliveryState.superseded}
    (post,) = live_posts(sandbox)
    assert "延长后的正文" in post["content"]["raw"] and "已失效" not in post["content"]["raw"]


def test_a_send_in_doubt_at_expiry_is_settled_and_then_ended(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: a send in doubt at expiry was recorded as never sent, and the post it made stayed."""
    from tests.support import inject

    item_id = approved_now(ledger, settings, soon(channels=["website"]))
    (first,) = deliveries(ledger, item_id)
    inject(sandbox, "website", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, first.id, "w") is DeliveryState.unknown
    ledger.shift = timedelta(minutes=11)
    expiry.end_expired(ledger, settings)
    drain(ledger, settings, item_id)
    states = {d.action: d.state for d in deliveries(ledger, item_id)}
    assert states == {Action.publish: DeliveryState.sent, Action.expire: DeliveryState.sent}
    (post,) = live_posts(sandbox)
    assert "已失效" in post["content"]["raw"]
