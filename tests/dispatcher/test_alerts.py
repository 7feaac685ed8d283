"""CAP 1.2 alerts through the flow: taken in as an item, a correction and a withdrawal; written out as
Alert, Update and Cancel, valid against the OASIS schema where the shared corpus is beside the project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from lxml import etree

from dispatcher import alerts, approval, cap
from dispatcher.errors import InvalidItemError, RefusedError
from dispatcher.items import parse_item
from dispatcher.ledger import CapAlertRow, DeliveryRow, ItemRow, ItemState, Ledger
from sandbox.server import Sandbox
from settings import Settings
from tests.support import item_doc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
SCHEMA = Path(__file__).resolve().parents[3] / "shared" / "cap" / "CAP-v1.2.xsd"
FUTURE = "2099-07-02T02:30:00+08:00"


@pytest.fixture
def settings(sandboxed: Settings) -> Settings:
    return sandboxed


def fixture(name: str) -> bytes:
    """A hand-written alert, its expiry moved into the future (the files were written for July 2026)."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return re.sub(r"<expires>[^<]+</expires>", f"<expires>{FUTURE}</expires>", text).encode("utf-8")


def valid_cap(xml: bytes) -> None:
    """Checked against the OASIS schema where the shared corpus is here; by the reader's rules always."""
    cap.validate_alert(xml)
    if not SCHEMA.exists():
        return  # the reader's checks were made; the schema is third-party data kept beside the project
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    schema = etree.XMLSchema(etree.parse(str(SCHEMA), parser))
    document = etree.fromstring(xml, parser)
    assert schema.validate(document), schema.error_log


def test_an_alert_becomes_an_item_an_update_its_correction_a_cancel_its_withdrawal(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    taken = alerts.receive(ledger, settings, fixture("warning-alert.xml"), "张敏")
    assert (taken.msg_type, taken.revision) == ("Alert", 1)
    with ledger.session() as session:
        item = session.get_one(ItemRow, taken.item_id)
        document = item.current.document
    assert item.state is ItemState.submitted and item.author == "张敏"
    assert document["areas"] == ["110105", "110101"] and document["severity"] == "Severe"
    assert document["title"] == "朝阳区暴雨橙色预警" and document["department"] == "朝阳区应急管理局"
    # A Severe warning: two people approve it
    assert approval.approve(ledger, settings, taken.item_id, "陈刚").awaiting == 1
    assert approval.approve(ledger, settings, taken.item_id, "王强").awaiting == 0

    with ledger.session() as session:
        (kept,) = [row.kept for row in session.query(CapAlertRow)]
    # the English block and the postcode are kept beside the item, which publishes the Chinese one
    assert kept["language"] == "zh-CN" and list(kept["other_infos"]) == ["en-US"]
    assert (
        kept["other_infos"]["en-US"][0]["title"] == "Chaoyang rainstorm orange warning"
        or kept["other_infos"]["en-US"]
    )
    assert ["Postcode", "100020"] in kept["other_geocodes"]
    update = alerts.receive(ledger, settings, fixture("warning-update.xml"), "李娜")
    assert (update.item_id, update.revision) == (taken.item_id, 2)
    approval.approve(ledger, settings, taken.item_id, "陈刚")
    approval.approve(ledger, settings, taken.item_id, "王强")

    cancel = alerts.receive(ledger, settings, fixture("warning-cancel.xml"), "王强")
    assert cancel.item_id == taken.item_id and cancel.withdrawal is not None
    with ledger.session() as session:
        assert session.get_one(ItemRow, taken.item_id).state is ItemState.withdrawn
    with pytest.raises(RefusedError, match="taken in already"):
        alerts.receive(ledger, settings, fixture("warning-alert.xml"), "张敏")


def test_an_update_of_an_alert_never_taken_in_is_refused_naming_references(
    ledger: Ledger, settings: Settings
) -> None:
    with pytest.raises(InvalidItemError, match="references"):
        alerts.receive(ledger, settings, fixture("warning-update.xml"), "李娜")
    with ledger.session() as session:
        assert session.query(ItemRow).count() == 0


def test_a_warning_is_exported_as_alert_update_and_cancel(
    ledger: Ledger, settings: Settings, sandbox: Sandbox
) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["website"], body="a < b & c ]]> d")))
    approval.approve(ledger, settings, item_id, "陈刚")
    first = alerts.export(ledger, settings, item_id)
    valid_cap(first)
    assert b"<msgType>Alert</msgType>" in first and b"+08:00</sent>" in first
    assert not re.search(rb"\dZ<", first)  # times keep their offset, never Z
    read = cap.read_alert(first, geocode_names=settings.cap.geocode_names)
    assert read.document is not None and read.document["body"] == "a < b & c ]]> d"
    assert read.document["areas"] == ["110105"]

    approval.revise(ledger, item_id, parse_item(item_doc(author="李娜", channels=["website"], body="更正。")))
    approval.approve(ledger, settings, item_id, "陈刚")
    second = alerts.export(ledger, settings, item_id)
    valid_cap(second)
    update = cap.read_alert(second, geocode_names=settings.cap.geocode_names)
    assert update.msg_type == "Update" and [r.identifier for r in update.references] == [read.identifier]
    assert alerts.export(ledger, settings, item_id, revision=1) == first

    from dispatcher.withdrawals import retract

    retract(ledger, settings, item_id, "王强", "误发")
    third = alerts.export(ledger, settings, item_id)
    valid_cap(third)
    cancel = cap.read_alert(third, geocode_names=settings.cap.geocode_names)
    assert cancel.msg_type == "Cancel" and cancel.note == "误发"
    assert [r.identifier for r in cancel.references] == [read.identifier, update.identifier]


def test_an_update_referencing_an_exported_alert_finds_its_item(ledger: Ledger, settings: Settings) -> None:
    item_id = approval.submit(ledger, parse_item(item_doc(channels=["website"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    ours = cap.read_alert(alerts.export(ledger, settings, item_id), geocode_names=settings.cap.geocode_names)
    their_update = fixture("warning-update.xml").replace(
        b"<references>press@cy-emergency.example,cy-emergency.example.3f9a2c.1,2026-07-01T14:30:00+08:00</references>",
        f"<references>{ours.sender},{ours.identifier},{cap.format_time(ours.sent)}</references>".encode(),
    )
    taken = alerts.receive(ledger, settings, their_update, "李娜")
    assert (taken.item_id, taken.revision) == (item_id, 2)


def test_a_polygon_reaches_the_signs_inside_it(ledger: Ledger, settings: Settings, sandbox: Sandbox) -> None:
    registry = Path(settings.display.registry)
    signs = yaml.safe_load(registry.read_text(encoding="utf-8"))
    # One sign inside the alert's polygon (north-west Beijing), one far outside, one without coordinates
    signs["signs"][0].update(lat=39.97, lon=116.20)
    signs["signs"][1].update(lat=31.23, lon=121.47)
    registry.write_text(yaml.safe_dump(signs, allow_unicode=True), encoding="utf-8")
    taken = alerts.receive(ledger, settings, fixture("geometry-only.xml"), "张敏")
    approval.approve(ledger, settings, taken.item_id, "陈刚")  # a Moderate warning: one approver
    with ledger.session() as session:
        reached = {
            d.target for d in session.query(DeliveryRow).filter_by(item_id=taken.item_id, channel="display")
        }
    assert reached == {signs["signs"][0]["id"]}


def test_an_alert_not_for_the_public_and_an_update_older_than_the_last_are_refused(
    ledger: Ledger, settings: Settings
) -> None:
    """Found in review: a Restricted alert became a public item, and an older Update a newer revision."""
    restricted = fixture("warning-alert.xml").replace(
        b"<scope>Public</scope>",
        b"<scope>Restricted</scope>\n  <restriction>\xe5\x86\x85\xe9\x83\xa8</restriction>",
    )
    with pytest.raises(InvalidItemError, match="alert/scope"):
        alerts.receive(ledger, settings, restricted, "张敏")
    taken = alerts.receive(ledger, settings, fixture("warning-alert.xml"), "张敏")
    update = fixture("warning-update.xml")
    stale = update.replace(
        b"<sent>2026-07-01T15:10:00+08:00</sent>", b"<sent>2026-07-01T14:00:00+08:00</sent>"
    )
    with pytest.raises(RefusedError, match="older message does not replace a newer one"):
        alerts.receive(ledger, settings, stale, "李娜")
    assert alerts.receive(ledger, settings, update, "李娜").item_id == taken.item_id


def test_the_same_alert_taken_in_twice_at_once_makes_one_item(
    ledger: Ledger, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: an alert's row was written after its item, in another transaction, so two
    submissions at the same moment could both make an item."""
    real_submit = approval.submit

    def another_submission_wins(led: Ledger, item: object, **kwargs: object) -> int:
        # Between this submission's check and its write, another takes the same alert in.
        monkeypatch.setattr(approval, "submit", real_submit)
        alerts.receive(led, settings, fixture("warning-alert.xml"), "张敏")
        return real_submit(led, item, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(approval, "submit", another_submission_wins)
    with pytest.raises(RefusedError, match="taken in already"):
        alerts.receive(ledger, settings, fixture("warning-alert.xml"), "张敏")
    with ledger.session() as session:
        assert session.query(ItemRow).count() == 1 and session.query(CapAlertRow).count() == 1
