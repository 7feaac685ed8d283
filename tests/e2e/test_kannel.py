"""The SMS adapter against a real Kannel (bearerbox + smsbox + fake SMSC), with reports and inbound SMS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from channels import build_channel
from channels.sms import segments_of
from dispatcher.delivery import deliver
from dispatcher.errors import PermanentChannelError
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger, SubscriberRow
from dispatcher.serving import Listening, serve_app_in_thread
from dispatcher.subscribers import recipient_counts
from dispatcher.tasks import broker_for
from dispatcher.web.app import create_app
from settings import Settings, load_settings
from tests.e2e import kannel as kannel_module
from tests.e2e.kannel import Kannel
from tests.support import approved, holds_for, merged, numbers, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not kannel_module.installed(),
        reason="Kannel is not installed (`make test` installs Debian's kannel and kannel-extras)",
    ),
]


@pytest.fixture
def api(settings: Settings, ledger: Ledger) -> Iterator[Listening]:
    running = serve_app_in_thread(create_app(settings, ledger), "127.0.0.1", 0, "api")
    yield running
    running.stop()


@pytest.fixture
def options() -> dict[str, object]:
    """How the gateway is configured; a test overrides it (``max_messages``, ``mo_recode``)."""
    return {}


@pytest.fixture
def gateway(
    tmp_path: Path, api: Listening, settings: Settings, options: dict[str, object]
) -> Iterator[Kannel]:
    token = urlencode({"token": settings.api.token.get_secret_value()})
    workdir = tmp_path / "kannel"
    workdir.mkdir()
    mo_url = f"http://127.0.0.1:{api.port}/sms/mo?{token}&from=%p&text=%a&coding=%c&charset=%C"
    gateway = Kannel(workdir, mo_url=mo_url, **options).start()  # type: ignore[arg-type]
    yield gateway
    gateway.stop()


def through(values: dict[str, Any], api: Listening, gateway: Kannel, **sms: Any) -> Settings:
    """Settings that send through ``gateway`` (``sms`` changes the rest of that section), whose reports
    come back to ``api``."""
    return load_settings(
        **merged(
            values,
            api={"public_url": f"http://127.0.0.1:{api.port}"},
            sms={"sendsms_url": gateway.sendsms_url, "password": gateway.password, **sms},
        )
    )


@pytest.fixture
def via_kannel(values: dict[str, Any], api: Listening, gateway: Kannel) -> Settings:
    return through(values, api, gateway)


def sms_delivery(ledger: Ledger, settings: Settings, **changes: object) -> DeliveryRow:
    [delivery] = approved(ledger, settings, broker=broker_for(settings), channels=["sms"], **changes)
    return delivery


def test_a_warning_reaches_every_phone_and_the_reports_come_back(
    gateway: Kannel, via_kannel: Settings, ledger: Ledger
) -> None:
    delivery = sms_delivery(ledger, via_kannel)
    phones = numbers(ledger, delivery)
    assert deliver(ledger, via_kannel, delivery.id, "test-worker") is DeliveryState.sent
    wait_until(lambda: len(gateway.received()) >= len(phones), 15, "a message for every phone")
    received = gateway.received()
    assert sorted(m.receiver for m in received) == sorted(phones)
    assert {m.ucs2 for m in received} == {delivery.payload["text"]}
    assert {m.sender for m in received} == {"12379"}

    def all_delivered() -> bool:
        with ledger.session() as session:
            return recipient_counts(session, delivery.id) == {"delivered": len(phones)}

    wait_until(all_delivered, 15, "bearerbox's delivery reports to reach the API")


def test_a_long_text_arrives_in_every_part(gateway: Kannel, via_kannel: Settings, ledger: Ledger) -> None:
    delivery = sms_delivery(ledger, via_kannel, short_text="雨" * 115)
    text = delivery.payload["text"]
    assert segments_of(text) == ("UCS-2", 2) and delivery.payload["segments"] == 2
    deliver(ledger, via_kannel, delivery.id, "test-worker")
    phone = numbers(ledger, delivery)[0]
    wait_until(lambda: len([m for m in gateway.received() if m.receiver == phone]) >= 2, 15, "both parts")
    parts = sorted((m for m in gateway.received() if m.receiver == phone), key=lambda m: m.part or (0, 0, 0))
    assert [m.part[1:] for m in parts if m.part] == [(2, 1), (2, 2)]
    assert "".join(m.ucs2 for m in parts) == text


@pytest.mark.parametrize("options", [{"max_messages": None}])
def test_a_long_text_arrives_whole_from_a_gateway_without_max_messages(
    gateway: Kannel, via_kannel: Settings, ledger: Ledger
) -> None:
    """Kannel's default max-messages is 1: it would cut the text to its first part and still report it
    delivered. The dispatcher sends each part with its own concatenation header instead."""
    delivery = sms_delivery(ledger, via_kannel, short_text="雨" * 115)
    assert deliver(ledger, via_kannel, delivery.id, "test-worker") is DeliveryState.sent
    phone = numbers(ledger, delivery)[0]
    wait_until(lambda: len([m for m in gateway.received() if m.receiver == phone]) >= 2, 15, "both parts")
    parts = sorted((m for m in gateway.received() if m.receiver == phone), key=lambda m: m.part or (0, 0, 0))
    assert [m.part[1:] for m in parts if m.part] == [(2, 1), (2, 2)]
    assert "".join(m.ucs2 for m in parts) == delivery.payload["text"]


@pytest.mark.parametrize("options", [{"max_messages": None}])
def test_left_to_such_a_gateway_the_text_is_cut_and_approval_says_so(
    gateway: Kannel, values: dict[str, Any], api: Listening, ledger: Ledger
) -> None:
    left_to_the_gateway = through(values, api, gateway, split="gateway")
    delivery = sms_delivery(ledger, left_to_the_gateway, short_text="雨" * 115)
    with ledger.session() as session:
        notes = [
            e.detail["note"] for e in session.scalars(select(EventRow).where(EventRow.name == "item.note"))
        ]
    assert any("max-messages of at least 2" in note for note in notes)
    deliver(ledger, left_to_the_gateway, delivery.id, "test-worker")
    phone = numbers(ledger, delivery)[0]

    def shown() -> int:
        return len([m for m in gateway.received() if m.receiver == phone])

    wait_until(shown, 15, "the first part")
    holds_for(lambda: shown() == 1, 1, "the first part alone: what the real gateway does")


def test_a_wrong_password_is_a_permanent_error(
    gateway: Kannel, values: dict[str, Any], api: Listening, via_kannel: Settings, ledger: Ledger
) -> None:
    delivery = sms_delivery(ledger, via_kannel)
    from channels.base import Payload

    channel = build_channel("sms", through(values, api, gateway, password="wrong"))
    payload = channel.addressed(Payload("sms", delivery.target, delivery.payload), numbers(ledger, delivery))
    with pytest.raises(PermanentChannelError, match="403.*Authorization failed"):
        channel.send(payload, delivery.idempotency_key)


@pytest.mark.parametrize("options", [{"mo_recode": True}, {"mo_recode": False}])
@pytest.mark.parametrize("word", ["TD", "退订"])
def test_an_inbound_opt_out_reaches_the_subscriber_store(gateway: Kannel, ledger: Ledger, word: str) -> None:
    gateway.send_mo("+8613800138001", word)

    def opted_out() -> bool:
        with ledger.session() as session:
            row = session.scalars(select(SubscriberRow).where(SubscriberRow.phone == "+8613800138001")).one()
            return row.opted_out_at is not None

    try:
        wait_until(opted_out, 15, "smsbox to call the API with the inbound text")
    finally:
        gateway.stop_mo()
