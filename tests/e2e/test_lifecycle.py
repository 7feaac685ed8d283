"""A warning's whole life through a real worker and broker: issued, corrected twice (the first correction
while the first revision is still retrying), then withdrawn. After each step every emulator shows
exactly the latest revision, and in the end nothing; the texts each phone received are counted."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
import requests
from sqlalchemy.orm import selectinload

from dispatcher import approval
from dispatcher.items import parse_item
from dispatcher.ledger import TERMINAL, Action, DeliveryRow, DeliveryState, ItemRow, ItemState, Ledger
from dispatcher.tasks import broker_for
from dispatcher.withdrawals import retract
from sandbox.server import Sandbox
from settings import Settings
from tests.support import inject, item_doc, received, site_posts, wait_until

pytestmark = pytest.mark.e2e

SIGNS = ("BJ-CY-001", "BJ-CY-002")
PHONES = {"+8613800138000", "+8613800138001", "+8613800138002"}


def rows(ledger: Ledger, item_id: int) -> list[DeliveryRow]:
    with ledger.session() as session:
        return (
            session.query(DeliveryRow)
            .filter_by(item_id=item_id)
            .order_by(DeliveryRow.id)
            .options(selectinload(DeliveryRow.revision))
            .all()
        )


def settled(ledger: Ledger, item_id: int, timeout: float = 90) -> list[DeliveryRow]:
    """Every delivery of the item ended (withdrawals a correction set off included)."""

    def ended() -> list[DeliveryRow]:
        found = rows(ledger, item_id)
        return found if found and all(r.state in TERMINAL for r in found) else []

    try:
        return wait_until(ended, timeout, "every delivery ended")
    except AssertionError:
        found = [(r.id, r.channel, r.target, r.state.value) for r in rows(ledger, item_id)]
        pytest.fail(f"not ended after {timeout}s: {found}")


def shown(sandbox: Sandbox) -> dict[str, Any]:
    """What each peer shows now: live posts, each sign's message and every message it holds, statuses."""
    display = sandbox.urls["display"]
    timeline = requests.get(
        f"{sandbox.urls['microblog']}/2/statuses/user_timeline.json",
        params={"access_token": "sandbox-token"},
        timeout=5,
    ).json()
    return {
        "posts": [p for p in site_posts(sandbox) if p["status"] != "trash"],
        "signs": {s: requests.get(f"{display}/signs/{s}/message", timeout=5).json() for s in SIGNS},
        "held": {
            s: [m["id"] for m in requests.get(f"{display}/signs/{s}/messages", timeout=5).json()]
            for s in SIGNS
        },
        "statuses": [s["text"] for s in timeline["statuses"]],
    }


def texts(sandbox: Sandbox) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in received(sandbox, "sms"):
        found.setdefault(entry["to"], []).append(entry["text"])
    return found


def showing_exactly(sandbox: Sandbox, ledger: Ledger, item_id: int, revision: int) -> None:
    """Every peer shows revision ``revision`` as its deliveries pinned it, and nothing older."""
    pinned = {
        (r.channel, r.target): r
        for r in rows(ledger, item_id)
        if r.revision.number == revision and r.action is not Action.withdraw
    }
    now = shown(sandbox)
    website = pinned[("website", "site")].payload
    assert [(p["title"]["raw"], p["content"]["raw"]) for p in now["posts"]] == [
        (website["title"], website["content"])
    ]
    for sign in SIGNS:
        delivery = pinned[("display", sign)]
        assert now["signs"][sign]["multi"] == delivery.payload["multi"]
        assert now["held"][sign] == [delivery.idempotency_key]  # the older messages are gone, not hidden
    microblog = pinned[("microblog", "sandbox")].payload
    assert (
        len(now["statuses"]) == 1
        and re.sub(r"https?://\S+", "", now["statuses"][0]).strip()
        == re.sub(r"https?://\S+", "", microblog["text"]).strip()
    )


def test_a_warning_corrected_twice_then_withdrawn(
    sandbox: Sandbox,
    sandboxed: Settings,
    ledger: Ledger,
    worker_env: dict[str, str],
    run_worker: Callable,
) -> None:
    # The microblog edits by replacing: its final state can then be exactly the last revision
    settings = sandboxed.model_copy(
        update={"microblog": sandboxed.microblog.model_copy(update={"correction": "replace"})}
    )
    run_worker({**worker_env, "DISPATCH_MICROBLOG__CORRECTION": "replace"})
    broker = broker_for(settings)

    # 1. Issued; the microblog answers 503 "come back in a minute", so its delivery is retrying
    inject(sandbox, "microblog", mode="status", status=503, retry_after=60)
    item_id = approval.submit(ledger, parse_item(item_doc()))
    approval.approve(ledger, settings, item_id, "陈刚", broker)
    wait_until(
        lambda: (
            {r.channel: r.state for r in rows(ledger, item_id)}.get("microblog") is DeliveryState.retrying
            and all(r.state is DeliveryState.sent for r in rows(ledger, item_id) if r.channel != "microblog")
        ),
        60,
        "the first revision out, its microblog post retrying",
    )

    # 2. Corrected while the first revision's post is still retrying: that retry never lands
    first_fix = item_doc(author="李娜", short_text="朝阳区暴雨橙色预警更正：降雨持续到夜间。")
    assert approval.revise(ledger, item_id, parse_item(first_fix)) == 2
    approval.approve(ledger, settings, item_id, "陈刚", broker)
    settled(ledger, item_id)
    first_microblog = next(r for r in rows(ledger, item_id) if r.channel == "microblog")
    assert first_microblog.state is DeliveryState.superseded
    showing_exactly(sandbox, ledger, item_id, 2)

    # 3. Corrected again, every channel out: updated in place, the microblog post replaced
    second_fix = item_doc(
        author="李娜", short_text="朝阳区暴雨橙色预警更正：降雨持续到明晨。", body="降雨将持续到明天早晨。"
    )
    assert approval.revise(ledger, item_id, parse_item(second_fix)) == 3
    approval.approve(ledger, settings, item_id, "陈刚", broker)
    settled(ledger, item_id)
    showing_exactly(sandbox, ledger, item_id, 3)
    with ledger.session() as session:
        assert session.get_one(ItemRow, item_id).state is ItemState.published
    got = texts(sandbox)
    assert set(got) == PHONES and {len(t) for t in got.values()} == {3}  # the warning, then two corrections
    assert all("【更正】" in t[1] and "明晨" in t[2] for t in got.values())

    # 4. Withdrawn: nothing shows anywhere, and every phone is told
    done = retract(ledger, settings, item_id, "王强", "预警解除前误发", broker)
    assert done.notified == len(PHONES)
    settled(ledger, item_id)
    now = shown(sandbox)
    assert now["posts"] == [] and now["statuses"] == []
    assert all(message is None for message in now["signs"].values()) and all(
        not h for h in now["held"].values()
    )
    got = texts(sandbox)
    assert {len(t) for t in got.values()} == {4} and all("【撤销】" in t[3] for t in got.values())
    with ledger.session() as session:
        assert session.get_one(ItemRow, item_id).state is ItemState.withdrawn
    # Each post the site held went to the trash, none was deleted outright; one post all along
    assert len(site_posts(sandbox)) == 1
