"""The callback API, served for real on 127.0.0.1, fed by the Kannel emulator and by hand."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from sqlalchemy import select

from dispatcher import approval
from dispatcher.api import create_api
from dispatcher.delivery import deliver
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, Ledger, SubscriberRow
from dispatcher.serving import Running, serve_in_thread
from dispatcher.subscribers import recipient_counts
from sandbox.server import Sandbox
from settings import Settings, get_settings
from tests.conftest import item_doc


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, settings: Settings, ledger: Ledger) -> Iterator[Running]:
    running = serve_in_thread(create_api(settings, ledger), "127.0.0.1", 0, "api")
    yield running
    running.stop()


@pytest.fixture
def wired(
    monkeypatch: pytest.MonkeyPatch, api: Running, environment: dict[str, str]
) -> Iterator[tuple[Settings, Sandbox]]:
    """Settings and a sandbox whose Kannel emulator calls this API back."""
    monkeypatch.setenv("DISPATCH_API__PUBLIC_URL", f"http://127.0.0.1:{api.port}")
    get_settings.cache_clear()
    box = Sandbox(get_settings()).start()
    for name, value in box.environment().items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield get_settings(), box
    box.stop()


def url(api: Running, path: str) -> str:
    return f"http://127.0.0.1:{api.port}{path}"


def test_callbacks_need_the_token(api: Running) -> None:
    assert requests.get(url(api, "/sms/dlr?key=k&type=1&to=%2B8613800138000"), timeout=5).status_code == 401
    wrong = requests.get(url(api, "/sms/mo?token=wrong&from=13800138000&text=TD"), timeout=5)
    assert wrong.status_code == 401
    assert requests.get(url(api, "/health"), timeout=5).text == "ok"


def test_a_bad_report_is_refused_naming_the_problem(api: Running, settings: Settings) -> None:
    token = settings.api.token.get_secret_value()
    answer = requests.get(url(api, f"/sms/dlr?token={token}&key=k&type=x&to=1"), timeout=5)
    assert answer.status_code == 400 and "numeric type" in answer.text
    unknown = requests.get(url(api, f"/sms/dlr?token={token}&key=k&type=1&to=13800138000"), timeout=5)
    assert unknown.status_code == 404


def test_delivery_reports_flow_back_from_the_gateway(wired: tuple[Settings, Sandbox], ledger: Ledger) -> None:
    settings, _box = wired
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
    deliver(ledger, settings, delivery.id, "test-worker")
    deadline = time.monotonic() + 10
    while True:
        with ledger.session() as session:
            counts = recipient_counts(session, delivery.id)
        if counts == {"delivered": len(delivery.payload["to"])} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert counts == {"delivered": len(delivery.payload["to"])}


def test_an_inbound_td_opts_the_sender_out(wired: tuple[Settings, Sandbox], ledger: Ledger) -> None:
    _settings, box = wired
    answer = requests.post(
        f"{box.urls['sms']}/_sandbox/mo", json={"from": "+8613800138000", "text": "TD"}, timeout=10
    )
    assert answer.json()["status"] == 200
    with ledger.session() as session:
        subscriber = session.scalars(
            select(SubscriberRow).where(SubscriberRow.phone == "+8613800138000")
        ).one()
    assert subscriber.opted_out_at is not None
