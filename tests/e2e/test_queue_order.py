"""The order a worker takes messages in: a waiting warning first, the routine queues in turn.

A consumer on the app's own connection and queues, taking one message at a time as a worker with
prefetch 1 does, against the embedded broker and a real Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Consumer

from dispatcher import tasks
from settings import Settings, load_settings

ROUTINE_THEN_URGENT = ["sms"] * 3 + ["website"] * 3 + ["urgent"] * 3


@pytest.fixture(params=["embedded", "redis"])
def broker_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    values: dict[str, Any] = {"var_dir": tmp_path / "var"}
    if request.param == "redis":
        values["broker_url"] = request.getfixturevalue("redis_url")
    yield load_settings(**values)


def taken(settings: Settings, published: list[str]) -> list[str]:
    """The queues of ``published`` messages, in the order one consumer on every queue takes them."""
    app = tasks.create_app(settings)
    broker = tasks.CeleryBroker(app, settings)
    assert broker.publish(list(enumerate(published))) == list(range(len(published)))
    order: list[str] = []

    def on_message(message: Any) -> None:
        order.append(message.delivery_info["routing_key"])
        message.ack()

    with app.connection_for_read() as connection:
        channel = connection.channel()
        channel.basic_qos(0, 1, False)
        queues = [app.amqp.queues[name] for name in tasks.queues()]
        with Consumer(channel, queues=queues, on_message=on_message):
            for _ in range(len(published) * 4):
                if len(order) == len(published):
                    break
                connection.drain_events(timeout=5)
    return order


def test_a_waiting_warning_is_taken_before_any_routine_message(broker_settings: Settings) -> None:
    order = taken(broker_settings, ROUTINE_THEN_URGENT)
    assert order[:3] == ["urgent"] * 3
    # the routine queues still take turns: a long SMS backlog does not hold up a website post
    assert order[3:5] in (["sms", "website"], ["website", "sms"])
    assert sorted(order[3:]) == sorted(ROUTINE_THEN_URGENT[:6])


def test_the_fair_order_takes_every_queue_in_turn(broker_settings: Settings) -> None:
    order = taken(broker_settings.model_copy(update={"queue_order": "fair"}), ROUTINE_THEN_URGENT)
    assert order[:3] != ["urgent"] * 3
    assert sorted(order) == sorted(ROUTINE_THEN_URGENT)
