"""An approved rota sends its first tip through a real worker, whose scheduler decides the slot, to every
emulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select, update

from dispatcher import rotas
from dispatcher.ledger import TERMINAL, DeliveryRow, ItemRow, Ledger, RotaRow, RotaSlotRow, utcnow
from sandbox.server import Sandbox
from settings import Settings
from tests.support import received, site_posts, wait_until

pytestmark = pytest.mark.e2e

ROTA = {
    "name": "演练安全提示",
    "department": "朝阳区应急管理局",
    "author": "张敏",
    "cadences": ["* * * * *"],  # the test makes it the minute that just began, once a day
    "expires_after": "1d",
    "defaults": {
        "channels": ["website", "sms", "display", "microblog"],
        "areas": ["110105"],
        "topics": ["safety"],
    },
    "tips": [
        {"title": "燃气安全提示", "body": "使用燃气时保持通风，离家前关闭阀门。"},
        {"title": "用电安全提示", "body": "不私拉乱接电线，电动自行车不进楼入户。"},
    ],
}


def test_an_approved_rota_sends_its_first_tip_to_every_channel(
    tmp_path: Path,
    sandbox: Sandbox,
    sandboxed: Settings,
    ledger: Ledger,
    worker_env: dict[str, str],
    run_worker: Callable,
) -> None:
    # The minute that just began is the rota's first slot, and its only one today: a cadence of every
    # minute made a second slot whenever the test ran into the next minute.
    now = utcnow()
    minute = now.replace(second=0, microsecond=0)
    local = minute.astimezone(ZoneInfo(sandboxed.time_zone))
    path = tmp_path / "rota.yaml"
    rota = {**ROTA, "cadences": [f"{local.minute} {local.hour} * * *"]}
    path.write_text(yaml.safe_dump(rota, allow_unicode=True), encoding="utf-8")
    done = rotas.submit(ledger, path)
    rotas.approve(ledger, done.rota_id, "陈刚")
    # Its cursor goes back to just before the slot, as if it had been approved then. The worker's
    # scheduler (a sweep) decides the slot.
    with ledger.session() as session:
        session.execute(
            update(RotaRow).where(RotaRow.id == done.rota_id).values(cursor=minute - timedelta(seconds=1))
        )
    run_worker(worker_env)

    def item_sent() -> list[DeliveryRow]:
        with ledger.session() as session:
            slot = session.scalars(select(RotaSlotRow).where(RotaSlotRow.rota_id == done.rota_id)).first()
            if slot is None or slot.item_id is None:
                return []
            rows = list(session.scalars(select(DeliveryRow).where(DeliveryRow.item_id == slot.item_id)))
            return rows if rows and all(r.state in TERMINAL for r in rows) else []

    rows = wait_until(item_sent, 90, "the rota's first tip sent")
    assert {r.channel for r in rows} == {"website", "sms", "display", "microblog"}
    assert {r.state.value for r in rows} == {"sent"}, [(r.channel, r.last_error) for r in rows]
    with ledger.session() as session:
        (slot,) = session.scalars(select(RotaSlotRow).where(RotaSlotRow.rota_id == done.rota_id))
        item = session.get_one(ItemRow, slot.item_id)
    assert item.kind == "safety_tip" and item.title == "燃气安全提示" and slot.state in ("sent", "late")
    assert [p["title"]["raw"] for p in site_posts(sandbox)] == ["燃气安全提示"]
    assert [r["to"] for r in received(sandbox, "sms")] == [
        "+8613800138000"
    ]  # the safety subscriber who consented
    assert len([r for r in received(sandbox, "display") if "multi" in r]) == 2
    assert len(received(sandbox, "microblog")) == 1
