"""A warning's life after approval: corrections and withdrawals, run in the test process against the
sandbox emulators and a real ledger (the worker's core, called as a worker would)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from dispatcher import approval, outbox, watch
from dispatcher.delivery import deliver
from dispatcher.errors import InvalidItemError, RefusedError
from dispatcher.items import parse_item
from dispatcher.ledger import (
    TERMINAL,
    Action,
    DeliveryRow,
    DeliveryState,
    EventRow,
    ItemRow,
    ItemState,
    Ledger,
)
from dispatcher.withdrawals import retract
from sandbox.server import Sandbox
from settings import Settings
from tests.support import inject, item_doc, make_due, received, site_posts

WORKER = "test-worker"
AUTHOR, APPROVER, OTHER = "张敏", "陈刚", "李娜"
#: the warning's area (110105) holds three subscribers: warnings reach them, consent or not
CHAOYANG = {"+8613800138000", "+8613800138001", "+8613800138002"}
HAIDIAN = {"+8613800138003"}


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    return sandboxed


def issued(ledger: Ledger, settings: Settings, **changes: Any) -> int:
    """A warning submitted and approved; its id."""
    item_id = approval.submit(ledger, parse_item(item_doc(**changes)))
    approval.approve(ledger, settings, item_id, APPROVER)
    return item_id


def corrected(
    ledger: Ledger, settings: Settings, item_id: int, approver: str = APPROVER, **changes: Any
) -> int:
    """A correction written by someone else than the approver, approved; its revision number."""
    number = approval.revise(ledger, item_id, parse_item(item_doc(author=OTHER, **changes)))
    approval.approve(ledger, settings, item_id, approver)
    return number


def deliveries(ledger: Ledger, item_id: int) -> list[DeliveryRow]:
    with ledger.session() as session:
        return list(
            session.scalars(
                select(DeliveryRow)
                .where(DeliveryRow.item_id == item_id)
                .order_by(DeliveryRow.id)
                .options(selectinload(DeliveryRow.revision))
            )
        )


def drain(ledger: Ledger, settings: Settings, item_id: int, rounds: int = 10) -> None:
    """Run every delivery of the item that is due, as workers and the sweeper would, until all have
    ended (waits made due at once: no test sleeps)."""
    for _ in range(rounds):
        open_ = [d for d in deliveries(ledger, item_id) if d.state not in TERMINAL]
        if not open_:
            return
        make_due(ledger)
        for delivery in open_:
            deliver(ledger, settings, delivery.id, WORKER)
    raise AssertionError(f"deliveries still open: {[(d.id, d.state) for d in deliveries(ledger, item_id)]}")


def events(ledger: Ledger, item_id: int, name: str) -> list[EventRow]:
    with ledger.session() as session:
        return list(
            session.scalars(select(EventRow).where(EventRow.item_id == item_id, EventRow.name == name))
        )


def item_state(ledger: Ledger, item_id: int) -> ItemState:
    with ledger.session() as session:
        return session.get_one(ItemRow, item_id).state


def showing(sandbox: Sandbox, sign: str) -> dict[str, Any] | None:
    """What a sign shows, its MULTI tags dropped from ``text``; None when blank."""
    found = requests.get(f"{sandbox.urls['display']}/signs/{sign}/message", timeout=5).json()
    return found and {**found, "text": re.sub(r"\[[^\]]*\]", "", found["multi"])}


def held(sandbox: Sandbox, sign: str) -> list[str]:
    return [
        m["id"] for m in requests.get(f"{sandbox.urls['display']}/signs/{sign}/messages", timeout=5).json()
    ]


def statuses(sandbox: Sandbox) -> list[str]:
    """The texts of the sandbox account's statuses, oldest first."""
    answer = requests.get(
        f"{sandbox.urls['microblog']}/2/statuses/user_timeline.json",
        params={"access_token": "sandbox-token"},
        timeout=5,
    ).json()
    return [status["text"] for status in reversed(answer["statuses"])]


def texts(sandbox: Sandbox) -> dict[str, list[str]]:
    """Every text the SMS gateway took, by phone, in order."""
    found: dict[str, list[str]] = {}
    for entry in received(sandbox, "sms"):
        found.setdefault(entry["to"], []).append(entry["text"])
    return found


def live_posts(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [post for post in site_posts(sandbox) if post["status"] != "trash"]


# -- corrections --------------------------------------------------------------------------------


def test_a_correction_updates_in_place_and_follows_up_where_a_channel_cannot_edit(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings)
    drain(ledger, settings, item_id)
    first_signs = {d.target: d.idempotency_key for d in deliveries(ledger, item_id) if d.channel == "display"}

    body = "更正：降雨将持续到夜间，请继续减少外出。"
    assert (
        corrected(ledger, settings, item_id, body=body, short_text="朝阳区暴雨橙色预警更正：降雨持续到夜间。")
        == 2
    )
    second = [d for d in deliveries(ledger, item_id) if d.revision.number == 2]
    actions = {(d.channel, d.action) for d in second}
    assert actions == {
        ("website", Action.update),
        ("display", Action.update),
        ("microblog", Action.follow_up),
        ("sms", Action.follow_up),
    }
    drain(ledger, settings, item_id)

    # The website: the same post, edited, saying it was corrected
    posts = live_posts(sandbox)
    assert len(posts) == 1 and body in posts[0]["content"]["raw"] and "更正" in posts[0]["content"]["raw"]
    # Signs: the corrected message at the same priority, and the first one gone from the sign's memory
    for sign, first_key in first_signs.items():
        assert "降雨持续到夜间" in showing(sandbox, sign)["text"]
        assert first_key not in held(sandbox, sign)
    # The microblog cannot edit: the original stays, a correction follows, quoting it
    posted = statuses(sandbox)
    assert len(posted) == 2 and posted[1].startswith("【更正】") and "朝阳区暴雨橙色预警" in posted[1]
    # SMS: exactly the phones that had the first text get the correction, once
    got = texts(sandbox)
    assert set(got) == CHAOYANG
    assert all(len(t) == 2 and "【更正】" in t[1] and "【更正】" not in t[0] for t in got.values())
    assert item_state(ledger, item_id) is ItemState.published
    assert [e.detail["revision"] for e in events(ledger, item_id, "item.approved")] == [1, 2]


def test_a_correction_moves_areas_clears_signs_left_behind_and_texts_only_new_phones(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings)
    drain(ledger, settings, item_id)
    corrected(ledger, settings, item_id, areas=["110108"], body="预警区域调整为海淀区。")
    second = {(d.channel, d.target): d.action for d in deliveries(ledger, item_id) if d.revision.number == 2}
    assert second[("display", "BJ-HD-001")] is Action.publish
    assert second[("display", "BJ-CY-001")] is Action.withdraw
    assert second[("display", "BJ-CY-002")] is Action.withdraw
    drain(ledger, settings, item_id)

    assert showing(sandbox, "BJ-CY-001") is None and showing(sandbox, "BJ-CY-002") is None
    assert "朝阳区暴雨橙色预警" in showing(sandbox, "BJ-HD-001")["text"]
    # Those who had the first text hear of the correction; the phone newly in the area gets it too;
    # nobody is texted twice by the correction
    got = texts(sandbox)
    assert set(got) == CHAOYANG | HAIDIAN
    assert all(len(got[phone]) == 2 for phone in CHAOYANG) and len(got["+8613800138003"]) == 1


def test_what_of_the_first_revision_has_not_left_is_superseded_never_sent(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings)
    first = deliveries(ledger, item_id)
    corrected(ledger, settings, item_id, body="更正后的正文。")
    for delivery in first:
        assert deliver(ledger, settings, delivery.id, WORKER) is None
    assert {d.state for d in deliveries(ledger, item_id) if d.revision.number == 1} == {
        DeliveryState.superseded
    }
    assert len(events(ledger, item_id, "delivery.superseded")) == len(first)
    # Nothing had gone out: the second revision is a first publication everywhere
    second = [d for d in deliveries(ledger, item_id) if d.revision.number == 2]
    assert {d.action for d in second} == {Action.publish}
    drain(ledger, settings, item_id)
    assert len(live_posts(sandbox)) == 1 and "更正后的正文" in live_posts(sandbox)[0]["content"]["raw"]
    assert len(statuses(sandbox)) == 1
    assert all(len(t) == 1 for t in texts(sandbox).values()) and set(texts(sandbox)) == CHAOYANG


def test_a_retrying_first_revision_never_lands_after_its_correction(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings, channels=["microblog"])
    (first,) = deliveries(ledger, item_id)
    inject(sandbox, "microblog", mode="status", status=503)
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.retrying
    corrected(ledger, settings, item_id, channels=["microblog"], short_text="更正：暴雨预警解除时间推迟。")
    make_due(ledger)
    assert deliver(ledger, settings, first.id, WORKER) is None  # superseded: its retry never comes
    drain(ledger, settings, item_id)
    assert statuses(sandbox) == [s for s in statuses(sandbox) if "推迟" in s] and len(statuses(sandbox)) == 1


def test_a_send_in_doubt_is_settled_before_the_correction_goes_to_its_target(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings, channels=["website"])
    (first,) = deliveries(ledger, item_id)
    inject(sandbox, "website", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.unknown
    corrected(ledger, settings, item_id, channels=["website"], body="更正后的正文。")
    second = deliveries(ledger, item_id)[-1]
    assert second.action is Action.update and second.replaces_id == first.id  # it may have landed
    # The correction waits: the first request may still land, and must not land after it
    assert deliver(ledger, settings, second.id, WORKER) is None
    with ledger.session() as session:
        waiting = session.get_one(DeliveryRow, second.id)
        assert (
            waiting.state is DeliveryState.retrying and f"waits for delivery {first.id}" in waiting.last_error
        )
    make_due(ledger, first.id)
    assert (
        deliver(ledger, settings, first.id, WORKER) is DeliveryState.sent
    )  # found by lookup, not sent again
    drain(ledger, settings, item_id)
    posts = live_posts(sandbox)
    assert len(posts) == 1 and "更正后的正文" in posts[0]["content"]["raw"]
    assert len([r for r in received(sandbox, "website") if r.get("method") == "POST"]) <= 2


def test_a_correction_is_reviewed_like_any_item(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    item_id = issued(ledger, settings, channels=["website"])
    approval.revise(
        ledger, item_id, parse_item(item_doc(author=OTHER, channels=["website"], body="新的正文。"))
    )
    with pytest.raises(RefusedError, match=f"revision 2 of item {item_id} was written by {OTHER}"):
        approval.approve(ledger, settings, item_id, OTHER)
    approval.reject(ledger, item_id, APPROVER, "数据未核实")
    # The approved revision stands, and so does what the item shows
    assert item_state(ledger, item_id) is ItemState.approved
    with pytest.raises(RefusedError, match="already rejected"):
        approval.approve(ledger, settings, item_id, APPROVER)
    with pytest.raises(InvalidItemError, match="kind"):
        approval.revise(
            ledger,
            item_id,
            parse_item(item_doc(kind="safety_tip", severity=None, urgency=None, certainty=None)),
        )
    # The original author may approve someone else's correction
    approval.revise(
        ledger, item_id, parse_item(item_doc(author=OTHER, channels=["website"], body="再次更正。"))
    )
    approval.approve(ledger, settings, item_id, AUTHOR)
    assert [e.detail["revision"] for e in events(ledger, item_id, "item.revised")] == [2, 3]


# -- withdrawals --------------------------------------------------------------------------------


def test_a_withdrawal_takes_down_everything_that_went_out(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings)
    drain(ledger, settings, item_id)
    corrected(ledger, settings, item_id, body="更正后的正文。")
    drain(ledger, settings, item_id)

    done = retract(ledger, settings, item_id, OTHER, "预警发布有误")
    assert done.cancelled == 0 and done.notified == len(CHAOYANG)
    assert item_state(ledger, item_id) is ItemState.withdrawn
    drain(ledger, settings, item_id)

    assert live_posts(sandbox) == []  # to the trash (the default)
    assert statuses(sandbox) == []  # the original and its correction, both deleted
    for sign in ("BJ-CY-001", "BJ-CY-002"):
        assert showing(sandbox, sign) is None
    got = texts(sandbox)
    assert all(len(t) == 3 and "【撤销】" in t[2] and "预警发布有误" in t[2] for t in got.values())
    (withdrawn,) = events(ledger, item_id, "item.withdrawn")
    assert withdrawn.actor == OTHER and withdrawn.detail["reason"] == "预警发布有误"
    takedowns = [d for d in deliveries(ledger, item_id) if d.action in (Action.withdraw, Action.notice)]
    assert takedowns and {d.state for d in takedowns} == {DeliveryState.sent}
    # every step on the record, and the state the item keeps
    assert item_state(ledger, item_id) is ItemState.withdrawn
    with pytest.raises(RefusedError, match="withdrawn already"):
        retract(ledger, settings, item_id, OTHER, "again")
    with pytest.raises(RefusedError, match="was withdrawn"):
        approval.revise(ledger, item_id, parse_item(item_doc(author=OTHER)))


def test_a_withdrawal_before_anything_left_cancels_it_all(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings)
    first = deliveries(ledger, item_id)
    done = retract(ledger, settings, item_id, OTHER, "误发")
    assert done.cancelled == len(first) and done.taking_down == {} and done.notified == 0
    for delivery in first:
        assert deliver(ledger, settings, delivery.id, WORKER) is None
    assert {d.state for d in deliveries(ledger, item_id)} == {DeliveryState.cancelled}
    for name in ("website", "sms", "display", "microblog"):
        assert received(sandbox, name) == []


def test_a_withdrawal_waits_for_a_send_in_doubt_and_takes_it_down(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings, channels=["website"])
    (first,) = deliveries(ledger, item_id)
    inject(sandbox, "website", mode="lost", seconds=3, method="POST")
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.unknown
    retract(ledger, settings, item_id, OTHER, "误发")
    takedown = deliveries(ledger, item_id)[-1]
    assert takedown.action is Action.withdraw and takedown.replaces_id == first.id
    assert deliver(ledger, settings, takedown.id, WORKER) is None  # waits for the send in doubt
    make_due(ledger, first.id)
    assert deliver(ledger, settings, first.id, WORKER) is DeliveryState.sent  # it had landed: found
    drain(ledger, settings, item_id)
    assert live_posts(sandbox) == [] and len(site_posts(sandbox)) == 1


def test_a_never_approved_item_cannot_be_withdrawn(ledger: Ledger, settings: Settings) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc()))
    with pytest.raises(RefusedError, match="never approved"):
        retract(ledger, settings, item_id, OTHER, "误发")
    issued_id = issued(ledger, settings, channels=["website"])
    with pytest.raises(RefusedError, match="reason"):
        retract(ledger, settings, issued_id, OTHER, "  ")


def test_the_sign_watch_never_refills_what_was_replaced_or_withdrawn(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = issued(ledger, settings, channels=["display"])
    drain(ledger, settings, item_id)
    corrected(ledger, settings, item_id, channels=["display"], short_text="更正：暴雨持续。")
    second = [d for d in deliveries(ledger, item_id) if d.revision.number == 2]
    # Before the correction reaches a sign, the sign restarts blank: its first message is not put back
    requests.post(f"{sandbox.urls['display']}/_sandbox/signs/BJ-CY-001/reboot", timeout=5).raise_for_status()
    report = watch.watch(ledger, settings)
    assert report.lost == []
    drain(ledger, settings, item_id)
    assert "暴雨持续" in showing(sandbox, "BJ-CY-001")["text"]
    retract(ledger, settings, item_id, OTHER, "误发")
    drain(ledger, settings, item_id)
    requests.post(f"{sandbox.urls['display']}/_sandbox/signs/BJ-CY-002/reboot", timeout=5).raise_for_status()
    assert watch.watch(ledger, settings).lost == []
    assert showing(sandbox, "BJ-CY-001") is None and showing(sandbox, "BJ-CY-002") is None
    assert second  # the correction had its own deliveries


def test_superseded_and_cancelled_deliveries_are_not_swept_again(
    ledger: Ledger, settings: Settings, broker: outbox.Broker
) -> None:
    item_id = issued(ledger, settings, channels=["website"])
    corrected(ledger, settings, item_id, channels=["website"])
    retract(ledger, settings, item_id, OTHER, "误发")
    ids = {d.id for d in deliveries(ledger, item_id)}
    make_due(ledger)
    assert not ids & {delivery_id for delivery_id, _ in outbox.due(ledger, settings, broker)}


def test_a_withdrawal_right_after_a_correction_takes_each_message_down_once(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found by the fault suite: the correction's clearing of the older sign messages was still on its
    way when the item was withdrawn, and the withdrawal tried to clear them again under the same key."""
    item_id = issued(ledger, settings, channels=["display"])
    drain(ledger, settings, item_id)
    corrected(ledger, settings, item_id, channels=["display"], short_text="更正：暴雨持续。")
    for delivery in deliveries(ledger, item_id):
        if delivery.revision.number == 2:
            assert deliver(ledger, settings, delivery.id, WORKER) is DeliveryState.sent
    pending_clears = [d for d in deliveries(ledger, item_id) if d.action is Action.withdraw]
    assert len(pending_clears) == 2 and {d.state for d in pending_clears} == {DeliveryState.pending}
    retract(ledger, settings, item_id, OTHER, "误发")
    takedowns = [d for d in deliveries(ledger, item_id) if d.action is Action.withdraw]
    assert len(takedowns) == 4  # the two older messages once each, and the two corrected ones
    assert len({d.replaces_id for d in takedowns}) == 4
    drain(ledger, settings, item_id)
    assert showing(sandbox, "BJ-CY-001") is None and showing(sandbox, "BJ-CY-002") is None
    assert held(sandbox, "BJ-CY-001") == [] and held(sandbox, "BJ-CY-002") == []


# -- severe warnings: two approvers ------------------------------------------------------------


def test_a_severe_warning_needs_two_different_approvers_and_the_ledger_names_both(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(severity="Severe")))
    first = approval.approve(ledger, settings, item_id, APPROVER)
    assert (first.awaiting, first.approvers) == (1, [APPROVER])
    assert deliveries(ledger, item_id) == [] and item_state(ledger, item_id) is ItemState.submitted
    with pytest.raises(RefusedError, match="another person"):
        approval.approve(ledger, settings, item_id, APPROVER)
    with pytest.raises(RefusedError, match=f"written by {AUTHOR}"):
        approval.approve(ledger, settings, item_id, AUTHOR)
    second = approval.approve(ledger, settings, item_id, OTHER)
    assert (second.awaiting, second.approvers) == (0, [APPROVER, OTHER])
    assert len(deliveries(ledger, item_id)) == 5 and item_state(ledger, item_id) is ItemState.approved
    (endorsed,) = events(ledger, item_id, "item.endorsed")
    (approved,) = events(ledger, item_id, "item.approved")
    assert endorsed.actor == APPROVER and approved.actor == OTHER
    assert approved.detail["approvers"] == [APPROVER, OTHER]
    # A correction of it is severe too: two approvers again, neither its author
    approval.revise(ledger, item_id, parse_item(item_doc(author=OTHER, severity="Extreme")))
    with pytest.raises(RefusedError, match=f"written by {OTHER}"):
        approval.approve(ledger, settings, item_id, OTHER)
    assert approval.approve(ledger, settings, item_id, APPROVER).awaiting == 1
    assert approval.approve(ledger, settings, item_id, AUTHOR).awaiting == 0


def test_how_many_approvers_each_severity_needs_is_a_setting(ledger: Ledger, settings: Settings) -> None:
    one = settings.model_copy(update={"approvals_required": {"Extreme": 2}})
    item_id = approval.submit(ledger, parse_item(item_doc(severity="Severe")))
    assert approval.approve(ledger, one, item_id, APPROVER).awaiting == 0
    three = settings.model_copy(update={"approvals_required": {"Moderate": 3}})
    item_id = approval.submit(ledger, parse_item(item_doc()))
    assert approval.approve(ledger, three, item_id, APPROVER).awaiting == 2
    assert approval.approve(ledger, three, item_id, OTHER).awaiting == 1
    assert approval.approve(ledger, three, item_id, "王强").awaiting == 0


def test_endorsements_are_append_only_in_the_database(ledger: Ledger, settings: Settings) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(severity="Severe")))
    approval.approve(ledger, settings, item_id, APPROVER)
    with pytest.raises(Exception, match="append-only"), ledger.engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM endorsements")


def test_a_redrive_never_brings_a_withdrawn_item_back(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: a re-drive set a withdrawn item back to approved, and its dead post went out."""
    item_id = issued(ledger, settings, channels=["website"])
    (first,) = deliveries(ledger, item_id)
    inject(sandbox, "website", mode="status", status=503, count=settings.max_attempts)
    for _ in range(settings.max_attempts):
        make_due(ledger)
        deliver(ledger, settings, first.id, WORKER)
    assert deliveries(ledger, item_id)[0].state is DeliveryState.dead
    retract(ledger, settings, item_id, OTHER, "误发")
    outbox.redrive(ledger, None, "王强", item_id=item_id)
    assert item_state(ledger, item_id) is ItemState.withdrawn
    drain(ledger, settings, item_id)
    assert deliveries(ledger, item_id)[0].state is DeliveryState.cancelled
    assert live_posts(sandbox) == []


def test_a_withdrawal_looks_up_what_a_dead_delivery_may_have_left_and_takes_it_down(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found in review: a delivery whose budget ran out with an attempt in doubt was never taken down."""
    from sqlalchemy import update

    item_id = issued(ledger, settings, channels=["website"])
    (first,) = deliveries(ledger, item_id)
    deliver(ledger, settings, first.id, WORKER)
    with ledger.session() as session:  # the post landed, but the ledger never heard: the budget ran out
        session.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == first.id)
            .values(state=DeliveryState.dead, provider_id=None)
        )
    retract(ledger, settings, item_id, OTHER, "误发")
    drain(ledger, settings, item_id)
    (takedown,) = [d for d in deliveries(ledger, item_id) if d.action is Action.withdraw]
    assert takedown.state is DeliveryState.sent and takedown.provider_id is not None
    assert live_posts(sandbox) == []


def test_a_correction_that_never_landed_does_not_leave_the_first_revision_on_a_sign(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    """Found by the fault suite: revision 2's message was in doubt when revision 3 was approved, and was
    then found never to have landed; revision 3 replaced it, and revision 1's message stayed held."""
    item_id = issued(ledger, settings, channels=["display"], areas=["110108"])  # one sign: BJ-HD-001
    drain(ledger, settings, item_id)
    (first,) = deliveries(ledger, item_id)
    corrected(ledger, settings, item_id, channels=["display"], areas=["110108"], short_text="更正一。")
    second = deliveries(ledger, item_id)[-1]
    inject(sandbox, "display", mode="reset", method="PUT")  # the connection drops before the sign acts
    assert deliver(ledger, settings, second.id, WORKER) is DeliveryState.unknown
    corrected(ledger, settings, item_id, channels=["display"], areas=["110108"], short_text="更正二。")
    drain(ledger, settings, item_id)
    assert deliveries(ledger, item_id)[1].state is DeliveryState.superseded  # looked up: it never landed
    third = [d for d in deliveries(ledger, item_id) if d.revision.number == 3 and d.action is Action.update]
    assert held(sandbox, "BJ-HD-001") == [third[0].idempotency_key]
    assert first.idempotency_key not in held(sandbox, "BJ-HD-001")
