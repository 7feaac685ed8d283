"""Operators over HTTP: re-driving one dead delivery (the status page's button) and by filter."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dispatcher import outbox
from dispatcher.errors import NotFoundError, RefusedError
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger
from tests.dispatcher.web import Api
from tests.support import item_doc


def approved_deliveries(api: Api) -> list[int]:
    item_id = api.call("POST", "/api/v1/items", "作者", json=item_doc(author=None)).json()["id"]
    assert api.call("POST", f"/api/v1/items/{item_id}/approve", "审核一").status_code == 200
    with api.ledger.session() as session:
        return list(session.scalars(select(DeliveryRow.id).where(DeliveryRow.item_id == item_id)))


def kill(ledger: Ledger, delivery_id: int) -> None:
    """The delivery spent its retry budget (what a worker would have recorded)."""
    with ledger.session() as session:
        row = session.get_one(DeliveryRow, delivery_id)
        row.state, row.attempts, row.last_error = DeliveryState.dead, 5, "HTTP 503"


def state_of(ledger: Ledger, delivery_id: int) -> DeliveryState:
    with ledger.session() as session:
        return session.get_one(DeliveryRow, delivery_id).state


def test_one_dead_delivery_is_redriven_and_no_other(api: Api) -> None:
    first, second, *_ = approved_deliveries(api)
    kill(api.ledger, first)
    kill(api.ledger, second)
    answer = api.call("POST", f"/api/v1/deliveries/{first}/redrive", "运维", json={"reason": "网关已恢复"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"redriven": [first]}
    assert state_of(api.ledger, first) == DeliveryState.pending
    assert state_of(api.ledger, second) == DeliveryState.dead
    with api.ledger.session() as session:
        event = session.scalars(select(EventRow).where(EventRow.name == "delivery.redriven")).one()
    assert event.actor == "运维"
    assert event.detail["reason"] == "网关已恢复"
    again = api.call("POST", f"/api/v1/deliveries/{first}/redrive", "运维")
    assert again.status_code == 409
    assert "pending" in again.json()["detail"]
    assert api.call("POST", "/api/v1/deliveries/999999/redrive", "运维").status_code == 404


def test_redrive_by_filter_takes_every_dead_one_of_the_channel(api: Api) -> None:
    deliveries = approved_deliveries(api)
    for delivery_id in deliveries:
        kill(api.ledger, delivery_id)
    with api.ledger.session() as session:
        website = set(
            session.scalars(
                select(DeliveryRow.id).where(DeliveryRow.id.in_(deliveries), DeliveryRow.channel == "website")
            )
        )
    answer = api.call("POST", "/api/v1/deliveries/redrive", "运维", json={"channel": "website"})
    assert set(answer.json()["redriven"]) == website
    unknown = api.call("POST", "/api/v1/deliveries/redrive", "运维", json={"channel": "webiste"})
    assert unknown.status_code == 422
    assert "did you mean 'website'" in unknown.json()["detail"][0]["msg"]
    refused = api.call("POST", "/api/v1/deliveries/redrive", "运维", json={"failed": True, "channel": "sms"})
    assert refused.status_code == 409
    assert "reason" in refused.json()["detail"]


def test_the_flow_redrives_one_delivery_by_id(api: Api) -> None:
    """outbox.redrive(delivery_id=…): that one, a NotFoundError for none, a RefusedError if not dead."""
    first, second, *_ = approved_deliveries(api)
    with pytest.raises(RefusedError, match="not dead"):
        outbox.redrive(api.ledger, None, "运维", delivery_id=first)
    with pytest.raises(NotFoundError):
        outbox.redrive(api.ledger, None, "运维", delivery_id=10**9)
    kill(api.ledger, first)
    kill(api.ledger, second)
    assert outbox.redrive(api.ledger, None, "运维", delivery_id=second) == [second]
    assert state_of(api.ledger, first) == DeliveryState.dead


def test_channels_are_read_by_every_user_and_subscribers_by_operators(api: Api) -> None:
    health = api.call("GET", "/api/v1/channels", "作者").json()
    assert {r["channel"] for r in health["channels"]} >= {"website", "sms"}
    assert api.call("GET", "/api/v1/subscribers", "作者").status_code == 403  # phone numbers
    phones = [s["phone"] for s in api.call("GET", "/api/v1/subscribers", "运维").json()]
    assert "+8613800138000" in phones
    imported = api.call(
        "POST",
        "/api/v1/subscribers",
        "运维",
        data=b"phone,areas,topics,consent\n13900139000,110105,safety,yes\nnot-a-phone,110105,safety,yes\n",
        headers={"Content-Type": "text/csv"},
    ).json()
    assert imported["created"] == 1
    assert imported["refused_rows"] == 1
    assert imported["refused"][0]["line"] == 3
