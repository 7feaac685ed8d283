"""The display channel's NTCIP 1203 driver against a real SNMP agent (snmpd + the sign emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.display import DisplayChannel
from channels.ntcip import NtcipSign
from dispatcher import approval
from dispatcher.delivery import deliver
from dispatcher.errors import ContentError, TemporaryChannelError
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, Ledger
from dispatcher.rendering import TemplateRenderer, publication_for
from settings import DisplaySettings, Settings, get_settings
from tests.conftest import item_doc
from tests.e2e import snmp
from tests.e2e.snmp import SnmpAgent

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not snmp.installed(), reason="snmpd is not installed (`make test` installs Debian's snmpd)"
    ),
]


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[SnmpAgent]:
    workdir = tmp_path / "snmp"
    workdir.mkdir()
    running = SnmpAgent(workdir).start()
    yield running
    running.stop()


@pytest.fixture
def registry(tmp_path: Path, agent: SnmpAgent) -> Path:  # replaces the HTTP signs of conftest
    path = tmp_path / "ntcip-signs.yaml"
    path.write_text(
        "signs:\n"
        f"  - {{id: NT-1, area: '110105', lines: 2, chars_per_line: 12, max_pages: 4, driver: ntcip,"
        f" address: '{agent.address}'}}\n",
        encoding="utf-8",
    )
    return path


def channel(registry: Path) -> DisplayChannel:
    return DisplayChannel(DisplaySettings(registry=registry, timeout=2))


def payload(display: DisplayChannel, **changes: object):  # type: ignore[no-untyped-def]
    pub = publication_for(
        parse_item(item_doc(**changes)), item_id=1, uid="f" * 32, revision=1, public_url="http://x"
    )
    settings = Settings()
    return display.prepare(pub, display.targets(pub)[0], TemplateRenderer(settings.templates_dir))


TIP = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None, "title": "用电安全"}


def test_a_warning_is_written_validated_and_activated(registry: Path) -> None:
    display = channel(registry)
    warning = payload(display)
    display.send(warning, "key-warning")
    shown = display.showing("NT-1")
    assert shown == {"id": "key-warning", "multi": warning.body["multi"], "priority": 200}
    assert display.lookup(warning, "key-warning") is not None
    assert display.probe().ok


def test_a_routine_message_is_refused_while_a_warning_shows(registry: Path) -> None:
    display = channel(registry)
    display.send(payload(display), "key-warning")
    with pytest.raises(TemporaryChannelError) as caught:
        display.send(payload(display, **TIP), "key-tip")
    assert caught.value.code == "preempted" and "priority" in str(caught.value)
    assert display.showing("NT-1")["id"] == "key-warning"


def test_a_retraction_blanks_the_sign(registry: Path) -> None:
    display = channel(registry)
    warning = payload(display)
    receipt = display.send(warning, "key-warning")
    display.retract(warning, receipt)
    assert display.showing("NT-1") is None
    display.send(payload(display, **TIP), "key-tip")  # nothing showing: a routine message goes up
    assert display.showing("NT-1")["id"] == "key-tip"


def test_the_controller_refuses_a_multi_it_cannot_show(registry: Path, agent: SnmpAgent) -> None:
    display = channel(registry)
    sign = NtcipSign(display.signs["NT-1"], read_community="public", write_community="private", timeout=2)
    with pytest.raises(ContentError, match="invalid"):
        sign.activate("[pt30o0]" + "长" * 30, 200, 60, "key-long")


def test_a_silent_agent_is_temporary_and_the_probe_says_so(registry: Path, agent: SnmpAgent) -> None:
    display = channel(registry)
    agent.stop()
    assert not display.probe().ok
    with pytest.raises(TemporaryChannelError, match="does not answer"):
        display.send(payload(display), "key-x")


def test_the_worker_delivers_to_an_ntcip_sign(
    registry: Path, settings: Settings, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_DISPLAY__REGISTRY", str(registry))
    get_settings.cache_clear()
    settings = get_settings()
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["display"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        row = session.query(DeliveryRow).filter_by(item_id=item_id).one()
    assert deliver(ledger, settings, row.id, "test-worker") is DeliveryState.sent
    assert channel(registry).showing("NT-1")["id"] == row.idempotency_key
