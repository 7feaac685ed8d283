"""The SMS adapter against a real Kannel (bearerbox + smsbox + fake SMSC), with reports and inbound SMS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from channels import build_channel
from channels.sms import segments_of
from dispatcher import approval
from dispatcher.api import create_api
from dispatcher.delivery import deliver
from dispatcher.errors import PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, Ledger, SubscriberRow
from dispatcher.serving import Running, serve_in_thread
from dispatcher.subscribers import recipient_counts
from settings import Settings, get_settings
from tests.conftest import item_doc
from tests.e2e import kannel as kannel_module
from tests.e2e.kannel import Kannel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not kannel_module.installed(),
        reason="Kannel is not installed (`make test` installs Debian's kannel and kannel-extras)",
    ),
]


@pytest.fixture
def api(settings: Settings, ledger: Ledger) -> Iterator[Running]:
    running = serve_in_thread(create_api(settings, ledger), "127.0.0.1", 0, "api")
    yield running
    running.stop()


@pytest.fixture
def gateway(
    tmp_path: Path, api: Running, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Kannel]:
    base = f"http://127.0.0.1:{api.port}"
    token = urlencode({"token": settings.api.token.get_secret_value()})
    workdir = tmp_path / "kannel"
    workdir.mkdir()
    gateway = Kannel(workdir, mo_url=f"{base}/sms/mo?{token}&from=%p&text=%a").start()
    monkeypatch.setenv("DISPATCH_API__PUBLIC_URL", base)
    monkeypatch.setenv("DISPATCH_SMS__SENDSMS_URL", gateway.sendsms_url)
    monkeypatch.setenv("DISPATCH_SMS__PASSWORD", gateway.password)
    get_settings.cache_clear()
    yield gateway
    gateway.stop()


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def sms_delivery(ledger: Ledger, **changes: object) -> DeliveryRow:
    settings = get_settings()
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"], **changes)))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        return session.scalars(select(DeliveryRow).where(DeliveryRow.item_id == item_id)).one()


def test_a_warning_reaches_every_phone_and_the_reports_come_back(gateway: Kannel, ledger: Ledger) -> None:
    delivery = sms_delivery(ledger)
    phones = delivery.payload["to"]
    assert deliver(ledger, get_settings(), delivery.id, "test-worker") is DeliveryState.sent
    assert eventually(lambda: len(gateway.received()) >= len(phones))
    received = gateway.received()
    assert sorted(m.receiver for m in received) == sorted(phones)
    assert {m.ucs2 for m in received} == {delivery.payload["text"]}
    assert {m.sender for m in received} == {"12379"}

    def all_delivered() -> bool:
        with ledger.session() as session:
            return recipient_counts(session, delivery.id) == {"delivered": len(phones)}

    assert eventually(all_delivered), "bearerbox's delivery reports did not reach the API"


def test_a_long_text_arrives_in_every_part(gateway: Kannel, ledger: Ledger) -> None:
    delivery = sms_delivery(ledger, short_text="雨" * 115)
    text = delivery.payload["text"]
    assert segments_of(text) == ("UCS-2", 2) and delivery.payload["segments"] == 2
    deliver(ledger, get_settings(), delivery.id, "test-worker")
    phone = delivery.payload["to"][0]
    assert eventually(lambda: len([m for m in gateway.received() if m.receiver == phone]) >= 2)
    parts = sorted((m for m in gateway.received() if m.receiver == phone), key=lambda m: m.part or (0, 0, 0))
    assert [m.part[1:] for m in parts if m.part] == [(2, 1), (2, 2)]
    assert "".join(m.ucs2 for m in parts) == text


def test_a_wrong_password_is_a_permanent_error(
    gateway: Kannel, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    delivery = sms_delivery(ledger)
    monkeypatch.setenv("DISPATCH_SMS__PASSWORD", "wrong")
    get_settings.cache_clear()
    from channels.base import Payload

    channel = build_channel("sms", get_settings())
    with pytest.raises(PermanentChannelError, match="403.*Authorization failed"):
        channel.send(Payload("sms", delivery.target, delivery.payload), delivery.idempotency_key)


@pytest.mark.parametrize("word", ["TD", "退订"])
def test_an_inbound_opt_out_reaches_the_subscriber_store(gateway: Kannel, ledger: Ledger, word: str) -> None:
    gateway.send_mo("+8613800138001", word)

    def opted_out() -> bool:
        with ledger.session() as session:
            row = session.scalars(select(SubscriberRow).where(SubscriberRow.phone == "+8613800138001")).one()
            return row.opted_out_at is not None

    try:
        assert eventually(opted_out), "smsbox did not call the API with the inbound text"
    finally:
        gateway.stop_mo()
