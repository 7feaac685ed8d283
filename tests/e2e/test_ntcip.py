"""The display channel's NTCIP 1203 driver against a real SNMP agent (snmpd + the sign emulator)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels import ntcip
from channels.display import DisplayChannel
from dispatcher.delivery import deliver
from dispatcher.errors import PermanentChannelError, TemporaryChannelError
from dispatcher.items import parse_item
from dispatcher.ledger import DeliveryRow, DeliveryState, EventRow, Ledger
from dispatcher.rendering import TemplateRenderer, publication_for
from dispatcher.tasks import broker_for
from dispatcher.watch import watch
from settings import PROJECT_DIR, DisplaySettings, Settings
from tests.e2e import snmp
from tests.e2e.snmp import SnmpAgent
from tests.support import approved, item_doc

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
    return display.prepare(pub, display.targets(pub)[0], TemplateRenderer(PROJECT_DIR / "templates"))


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
    blank = display.showing("NT-1")  # blanked on purpose by a central system: a withdrawal, not a reset
    assert blank is not None and blank["id"] is None and "central" in blank["blanked_by"]
    display.send(payload(display, **TIP), "key-tip")  # nothing showing: a routine message goes up
    assert display.showing("NT-1")["id"] == "key-tip"


def test_the_controller_refuses_a_multi_it_cannot_show_and_says_why(registry: Path, agent: SnmpAgent) -> None:
    """Validation takes the controller a second; its error names the MULTI problem and its position."""
    display = channel(registry)
    sign = display.driver("NT-1")
    assert sign is not None
    with pytest.raises(PermanentChannelError, match=r"syntaxMULTI \(textTooBig at character \d+"):
        sign.activate("[pt30o0]" + "长" * 30, 200, 60, "key-long")
    assert sign.get(f"{ntcip.MESSAGE}.9.3.1")[0] == 1  # the row is left notUsed, not half-made


def test_a_routine_message_waits_as_long_as_the_warning_shows(registry: Path) -> None:
    display = channel(registry)
    warning = payload(display, expires=(datetime.now(UTC) + timedelta(minutes=30)).isoformat())
    display.send(warning, "key-warning")
    with pytest.raises(TemporaryChannelError) as caught:
        display.send(payload(display, **TIP), "key-tip")
    assert caught.value.wait and 25 * 60 <= (caught.value.retry_after or 0) <= 30 * 60


def test_the_duration_is_worked_out_at_activation_and_never_outlives_the_item(registry: Path) -> None:
    display = channel(registry)
    warning = payload(display, expires=(datetime.now(UTC) + timedelta(minutes=10, seconds=30)).isoformat())
    receipt = display.send(warning, "key-warning")
    assert receipt.detail["minutes"] == 10  # rounded down: 10 whole minutes, not 11
    sign = display.driver("NT-1")
    assert sign is not None and int(sign.get(ntcip.TIME_REMAINING)[0]) <= 10
    assert bytes(sign.get(ntcip.REQUESTER)[0]) == bytes([127, 0, 0, 1])  # the source address is filled


def test_a_sign_in_local_control_makes_the_warning_wait_and_raises_an_alert(
    registry: Path, agent: SnmpAgent
) -> None:
    display = channel(registry)
    agent.switch(control="local")
    with pytest.raises(TemporaryChannelError) as caught:
        display.send(payload(display), "key-warning")
    assert caught.value.wait and caught.value.alert and caught.value.code == "local_control"
    assert "local control" in display.probe().detail
    agent.switch(control="central")
    display.send(payload(display), "key-warning")
    assert display.showing("NT-1")["id"] == "key-warning"


def test_approval_refuses_a_registry_that_disagrees_with_the_sign(tmp_path: Path, agent: SnmpAgent) -> None:
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "signs:\n"
        f"  - {{id: NT-1, area: '110105', lines: 3, chars_per_line: 12, max_pages: 4, driver: ntcip,"
        f" address: '{agent.address}'}}\n",
        encoding="utf-8",
    )
    display = channel(wrong)
    findings = display.check([payload(display)])
    assert findings.problems and "lines is 3 in the registry, 2 on the sign" in findings.problems[0]
    assert not display.probe().ok


def test_a_silent_agent_is_temporary_and_the_probe_says_so(registry: Path, agent: SnmpAgent) -> None:
    display = channel(registry)
    agent.stop()
    assert not display.probe().ok
    with pytest.raises(TemporaryChannelError, match="does not answer"):
        display.send(payload(display), "key-x")


def delivered_to_the_sign(ledger: Ledger, settings: Settings) -> DeliveryRow:
    """A warning approved for the NTCIP sign and delivered through the worker's core (the test's
    settings name the sign in their registry: this module's ``registry``)."""
    [row] = approved(ledger, settings, broker=broker_for(settings), channels=["display"])
    assert deliver(ledger, settings, row.id, "test-worker") is DeliveryState.sent
    return row


def test_the_worker_delivers_to_an_ntcip_sign(registry: Path, settings: Settings, ledger: Ledger) -> None:
    row = delivered_to_the_sign(ledger, settings)
    assert channel(registry).showing("NT-1")["id"] == row.idempotency_key


def test_a_sign_blanked_on_purpose_is_not_refilled_and_the_withdrawal_recorded(
    registry: Path, settings: Settings, ledger: Ledger
) -> None:
    row = delivered_to_the_sign(ledger, settings)
    display = channel(registry)
    sign = display.driver("NT-1")
    assert sign is not None
    sign.blank()  # a central system (an operator's console) blanks the sign
    report = watch(ledger, settings, lambda _name: display)
    assert report.lost == [] and report.withdrawn == [row.id] and display.showing("NT-1")["id"] is None
    with ledger.session() as session:
        withdrawn = session.query(EventRow).filter_by(name="delivery.withdrawn", delivery_id=row.id).one()
    assert "blanked at the sign" in withdrawn.detail["reason"]
    assert watch(ledger, settings, lambda _name: display).checked == 0  # respected from now on
