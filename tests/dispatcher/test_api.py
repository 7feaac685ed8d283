"""The callback API, served for real on 127.0.0.1, fed by the Kannel emulator and by hand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from channels.sms import callback_signature
from dispatcher import approval, subscribers
from dispatcher.delivery import deliver
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger, SubscriberRow
from dispatcher.sandboxes import sandbox_for
from dispatcher.serving import Listening, serve_app_in_thread
from dispatcher.subscribers import recipient_counts
from dispatcher.web.app import create_app
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import item_doc, merged, numbers, pointed_at, wait_until


@pytest.fixture
def api(settings: Settings, ledger: Ledger) -> Iterator[Listening]:
    running = serve_app_in_thread(create_app(settings, ledger), "127.0.0.1", 0, "api")
    yield running
    running.stop()


def calling_back(values: dict[str, Any], api: Listening) -> dict[str, Any]:
    """``values`` with the API's public address: where the gateway sends reports and inbound texts."""
    return merged(values, api={"public_url": f"http://127.0.0.1:{api.port}"})


@pytest.fixture
def wired(values: dict[str, Any], api: Listening) -> Iterator[tuple[Settings, Sandbox]]:
    """Settings and a sandbox whose Kannel emulator calls this API back."""
    box = sandbox_for(load_settings(**calling_back(values, api))).start()
    yield load_settings(**merged(calling_back(values, api), pointed_at(box))), box
    box.stop()


def url(api: Listening, path: str) -> str:
    return f"http://127.0.0.1:{api.port}{path}"


def signed(settings: Settings, key: str) -> str:
    return callback_signature(settings.sms.callback_token.get_secret_value(), key)


def test_callbacks_need_their_credentials(api: Listening, settings: Settings) -> None:
    assert requests.get(url(api, "/sms/dlr?key=ab&type=1&to=%2B8613800138000"), timeout=5).status_code == 401
    wrong = requests.get(url(api, "/sms/mo?token=wrong&from=13800138000&text=TD"), timeout=5)
    assert wrong.status_code == 401
    assert requests.get(url(api, "/health"), timeout=5).text == "ok"


def test_a_report_url_vouches_for_its_own_delivery_only(api: Listening, settings: Settings) -> None:
    """A dlr-url read in the gateway's access log cannot forge reports for another delivery."""
    leaked = signed(settings, "aa11")
    assert (
        requests.get(url(api, f"/sms/dlr?key=aa11&sig={leaked}&type=1&to=13800138000"), timeout=5).status_code
        == 404
    )
    other = requests.get(url(api, f"/sms/dlr?key=bb22&sig={leaked}&type=1&to=13800138000"), timeout=5)
    assert other.status_code == 401
    token = settings.api.token.get_secret_value()
    with_token = requests.get(url(api, f"/sms/dlr?key=bb22&token={token}&type=1&to=13800138000"), timeout=5)
    assert with_token.status_code == 401  # the shared token no longer opens the report endpoint


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ("key=ab&type=x&to=13800138000", 400, "type"),
        ("key=ab&type=%C2%B2&to=13800138000", 400, "type"),  # a Unicode superscript two
        ("key=ab&type=%D9%A1&to=13800138000", 400, "type"),  # an Arabic-Indic digit one
        ("key=ab&type=3&to=13800138000", 400, "type"),
        ("key=ab&type=99999999999999999999&to=1", 400, "type"),
        ("key=ab&type=1&to=%D9%A1%D9%A3", 400, "to"),
        ("key=ab&type=1&to=", 400, "to"),
        ("key=ab&type=1&to=not-a-phone", 400, "to"),
    ],
)
def test_every_malformed_report_parameter_gets_a_4xx_naming_it(
    api: Listening, settings: Settings, query: str, status: int, names: str
) -> None:
    answer = requests.get(url(api, f"/sms/dlr?{query}&sig={signed(settings, 'ab')}"), timeout=5)
    assert answer.status_code == status and answer.text.startswith(names)


@pytest.mark.parametrize(
    "query",
    ["key=&type=1", "key=%C3%A9&type=1", "key=ab&sig=%C2%B2&type=1", "key=AB'--&type=1"],
)
def test_a_malformed_key_or_signature_is_refused_not_crashed(api: Listening, query: str) -> None:
    answer = requests.get(url(api, f"/sms/dlr?{query}&to=13800138000"), timeout=5)
    assert 400 <= answer.status_code < 500


def test_a_post_body_carries_no_credential(api: Listening, settings: Settings) -> None:
    token = settings.api.token.get_secret_value()
    answer = requests.post(
        url(api, "/sms/mo"), data={"token": token, "from": "13800138000", "text": "TD"}, timeout=5
    )
    assert answer.status_code in (401, 405)


def test_an_unknown_delivery_is_404(api: Listening, settings: Settings) -> None:
    unknown = requests.get(
        url(api, f"/sms/dlr?key=ab&sig={signed(settings, 'ab')}&type=1&to=13800138000"), timeout=5
    )
    assert unknown.status_code == 404


def test_delivery_reports_flow_back_from_the_gateway(wired: tuple[Settings, Sandbox], ledger: Ledger) -> None:
    settings, _box = wired
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
    deliver(ledger, settings, delivery.id, "test-worker")

    phones = numbers(ledger, delivery)

    def all_delivered() -> bool:
        with ledger.session() as session:
            return recipient_counts(session, delivery.id) == {"delivered": len(phones)}

    wait_until(all_delivered, what="a delivered report for every phone")


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


@pytest.mark.parametrize("recode", [False, True])
def test_an_inbound_chinese_opt_out_works_with_or_without_mo_recode(
    values: dict[str, Any], api: Listening, ledger: Ledger, recode: bool
) -> None:
    """Without smsbox's mo-recode, 退订 arrives as UCS-2 bytes (coding=2); it opts out either way."""
    box = sandbox_for(load_settings(**calling_back(values, api)), sms={"mo_recode": recode}).start()
    try:
        answer = requests.post(
            f"{box.urls['sms']}/_sandbox/mo", json={"from": "+8613800138001", "text": "退订"}, timeout=10
        )
        assert answer.json()["status"] == 200
    finally:
        box.stop()
    with ledger.session() as session:
        subscriber = session.scalars(
            select(SubscriberRow).where(SubscriberRow.phone == "+8613800138001")
        ).one()
        assert subscriber.opted_out_at is not None


def test_reports_that_arrive_while_the_ledger_is_locked_are_kept_and_applied(
    settings: Settings, ledger: Ledger
) -> None:
    """Kannel calls a dlr-url once: a report the ledger cannot take now must not be lost."""
    import sqlite3

    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
    impatient = Ledger(settings.ledger_url, busy_timeout=0.2)
    running = serve_app_in_thread(create_app(settings, impatient), "127.0.0.1", 0, "api")
    key = delivery.idempotency_key
    query = f"key={key}&sig={signed(settings, key)}&type=1"
    phones = numbers(ledger, delivery)
    try:
        locker = sqlite3.connect(settings.ledger_url.removeprefix("sqlite:///"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the ledger's write lock
        answers = [requests.get(url(running, f"/sms/dlr?{query}&to={phone}"), timeout=10) for phone in phones]
        assert [a.status_code for a in answers] == [202] * len(answers)
        locker.execute("ROLLBACK")
        locker.close()
        assert subscribers.apply_kept_reports(ledger, subscribers.report_spool(settings.var_dir)) == len(
            answers
        )
    finally:
        running.stop()
    with ledger.session() as session:
        assert recipient_counts(session, delivery.id) == {"delivered": len(phones)}
    assert (
        subscribers.apply_kept_reports(ledger, subscribers.report_spool(settings.var_dir)) == 0
    )  # applied once, then forgotten


def test_an_opt_out_that_arrives_while_the_ledger_is_locked_is_kept(
    settings: Settings, ledger: Ledger
) -> None:
    import sqlite3

    impatient = Ledger(settings.ledger_url, busy_timeout=0.2)
    running = serve_app_in_thread(create_app(settings, impatient), "127.0.0.1", 0, "api")
    token = settings.api.token.get_secret_value()
    try:
        locker = sqlite3.connect(settings.ledger_url.removeprefix("sqlite:///"), isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        answer = requests.get(url(running, f"/sms/mo?token={token}&from=13800138000&text=TD"), timeout=10)
        assert answer.status_code == 200
        locker.execute("ROLLBACK")
        locker.close()
        assert subscribers.apply_kept_reports(ledger, subscribers.report_spool(settings.var_dir)) == 1
    finally:
        running.stop()
    with ledger.session() as session:
        subscriber = session.scalars(
            select(SubscriberRow).where(SubscriberRow.phone == "+8613800138000")
        ).one()
        assert subscriber.opted_out_at is not None


def test_a_split_text_is_proven_taken_only_when_every_part_reported(
    settings: Settings, ledger: Ledger
) -> None:
    from dispatcher.subscribers import apply_report, reported

    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"], short_text="雨" * 115)))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
        phone = subscribers.phones_of(session, delivery.id)[0]
        apply_report(session, delivery.idempotency_key, phone, 8, part=1)
        assert reported(session, delivery.id) == 0  # part 2 may never have left
        apply_report(session, delivery.idempotency_key, phone, 8, part=2)
        assert reported(session, delivery.id) == 1


def test_a_report_after_the_policy_gave_up_records_the_text_as_sent(
    settings: Settings, ledger: Ledger, api: Listening
) -> None:
    """The policy decided without evidence; a report that comes later is evidence: the ledger follows."""
    tip = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None, "topics": ["safety"]}
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"], **tip)))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
        delivery.state = DeliveryState.failed
        delivery.last_error = (
            "sms: the outcome of an earlier attempt is unknown and the policy … not to repeat it"
        )
    key, phone = delivery.idempotency_key, numbers(ledger, delivery)[0]
    answer = requests.get(
        url(api, f"/sms/dlr?key={key}&sig={signed(settings, key)}&type=8&to={phone}"), timeout=5
    )
    assert answer.status_code == 200
    with ledger.session() as session:
        row = session.get(DeliveryRow, delivery.id)
        assert row.state is DeliveryState.sent
        late = session.scalars(select(EventRow).where(EventRow.name == "delivery.sent")).one()
        assert late.detail["late"] is True and late.detail["previous_state"] == "failed"
