from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dispatcher import subscribers
from dispatcher.errors import InvalidItemError
from dispatcher.items import parse_item
from dispatcher.ledger import EventRow, Ledger, SubscriberRow
from settings import Settings, SmsSettings
from tests.support import item_doc


@pytest.fixture
def store(tmp_path: Path) -> Ledger:
    return Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")


def csv_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "subscribers.csv"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("+852 6123 4567", "+85261234567"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert subscribers.normalise(raw, "CN") == e164


@pytest.mark.parametrize("raw", ["", "12345", "abc", "+86 138 0013"])
def test_bad_numbers_are_refused(raw: str) -> None:
    with pytest.raises(ValueError):
        subscribers.normalise(raw, "CN")


def test_import_reports_bad_rows_by_line_and_imports_the_rest(store: Ledger, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "phone,areas,topics,consent\n"
        "13800138000,110105,safety,yes\n"
        "12345,110105,,yes\n"  # line 3: not a number
        "13800138001,1101,,yes\n"  # line 4: bad area
        "13800138002,110105,,maybe\n"  # line 5: bad consent
        "+86 138 0013 8000,110108,fire,yes\n",  # line 6: a duplicate of line 2, merged
    )
    report = subscribers.import_csv(store, path, SmsSettings())
    assert [line for line, _ in report.refused] == [3, 4, 5]
    assert "areas" in report.refused[1][1] and "consent" in report.refused[2][1]
    assert (report.created, report.merged) == (1, 1)
    with store.session() as session:
        only = session.scalars(select(SubscriberRow)).one()
    assert (only.phone, only.areas, only.topics) == (
        "+8613800138000",
        ["110105", "110108"],
        ["safety", "fire"],
    )


def test_a_file_without_a_phone_column_is_refused(store: Ledger, tmp_path: Path) -> None:
    with pytest.raises(InvalidItemError, match="phone"):
        subscribers.import_csv(store, csv_file(tmp_path, "mobile,areas\n1,2\n"), SmsSettings())


def test_an_import_never_lifts_an_opt_out(store: Ledger, tmp_path: Path) -> None:
    path = csv_file(tmp_path, "phone,areas\n13800138000,110105\n")
    subscribers.import_csv(store, path, SmsSettings())
    with store.session() as session:
        assert subscribers.opt_out(session, "+8613800138000", " 退订 ")
    subscribers.import_csv(store, path, SmsSettings())
    with store.session() as session:
        assert session.scalars(select(SubscriberRow)).one().opted_out_at is not None
        assert session.scalars(select(EventRow).where(EventRow.name == "subscriber.opted_out")).one()


@pytest.mark.parametrize(
    ("text", "opts_out"),
    [
        ("TD", True),
        ("td", True),
        ("T", True),
        ("STOP", True),
        ("退订", True),
        ("hello", False),
        ("TD please", False),
    ],
)
def test_opt_out_words(store: Ledger, tmp_path: Path, text: str, opts_out: bool) -> None:
    subscribers.import_csv(store, csv_file(tmp_path, "phone,areas\n13800138000,110105\n"), SmsSettings())
    with store.session() as session:
        assert subscribers.opt_out(session, "+8613800138000", text) is opts_out


def audience(store: Ledger, settings: SmsSettings, **changes: object) -> list[str]:
    with store.session() as session:
        return list(subscribers.audience(session, parse_item(item_doc(**changes)), settings))


def test_audience_rules(store: Ledger, tmp_path: Path) -> None:
    text = (
        "phone,areas,topics,consent\n"
        "13800138000,110105,safety,yes\n"  # in Chaoyang, safety
        "13800138001,110105,flood,yes\n"  # in Chaoyang, another topic
        "13800138002,110105,safety,no\n"  # no consent
        "13800138003,110108,safety,yes\n"  # Haidian
        "13800138004,110105,safety,yes\n"  # will opt out
    )
    subscribers.import_csv(store, csv_file(tmp_path, text), SmsSettings())
    with store.session() as session:
        subscribers.opt_out(session, "+8613800138004", "TD")
    chaoyang = ["+8613800138000", "+8613800138001", "+8613800138002", "+8613800138004"]
    assert audience(store, SmsSettings()) == chaoyang  # a warning: everyone in the area
    strict = SmsSettings(warnings_ignore_opt_out=False)
    assert audience(store, strict) == [p for p in chaoyang if p != "+8613800138004"]
    tip = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None}
    assert audience(store, SmsSettings(), **tip, topics=["safety"]) == ["+8613800138000"]
    assert audience(store, SmsSettings(), **tip, topics=["safety"], areas=["110000"]) == [
        "+8613800138000",
        "+8613800138003",
    ]
    assert audience(store, SmsSettings(), **tip) == []  # no topic, no routine text


def test_reports_move_forward_only(ledger: Ledger, settings: Settings) -> None:
    from dispatcher import approval
    from dispatcher.ledger import DeliveryRow

    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
        phones = subscribers.phones_of(session, delivery.id)
        phone = phones[0]
        assert subscribers.recipient_counts(session, delivery.id) == {"pending": len(phones)}
        key = delivery.idempotency_key
        assert subscribers.apply_report(session, key, phone, 8) == "accepted"
        assert subscribers.apply_report(session, key, phone, 1) == "delivered"
        assert subscribers.apply_report(session, key, phone, 8) == "delivered"  # late: ignored
        assert subscribers.apply_report(session, key, phone, 1) == "delivered"  # duplicate
        assert subscribers.apply_report(session, key, phone, 2) == "delivered"  # after a final one
        assert subscribers.apply_report(session, "nope", phone, 1) is None
        assert subscribers.apply_report(session, key, "+8613999999999", 1) is None


def test_reports_in_one_lot_are_applied_in_their_order(ledger: Ledger, settings: Settings) -> None:
    """The API applies every report waiting as one lot: within it, as one after another."""
    from dispatcher import approval
    from dispatcher.ledger import DeliveryRow

    item_id = approval.submit(ledger, parse_item(item_doc(channels=["sms"])))
    approval.approve(ledger, settings, item_id, "陈刚")
    with ledger.session() as session:
        delivery = session.scalars(select(DeliveryRow)).one()
        first, second, *_ = subscribers.phones_of(session, delivery.id)
        key = delivery.idempotency_key
        lot = [
            (key, first, 8, None),
            (key, first, 1, None),
            (key, first, 8, None),  # late: the final report stands
            (key, second, 8, None),
            ("nope", first, 1, None),
            (key, "+8613999999999", 1, None),
        ]
        states = subscribers.apply_reports(session, lot)
        assert states == ["accepted", "delivered", "delivered", "accepted", None, None]
    with ledger.session() as session:
        counts = subscribers.recipient_counts(session, delivery.id)
        assert counts["delivered"] == 1 and counts["accepted"] == 1


def test_the_listing_is_by_phone_with_consent_and_opt_out(store: Ledger, tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, "phone,areas,topics,consent\n13800138001,110105,flood,no\n13800138000,110108,,\n"
    )
    subscribers.import_csv(store, path, SmsSettings())
    with store.session() as session:
        subscribers.opt_out(session, "+8613800138001", "TD")
    first, second = subscribers.list_subscribers(store)
    assert first == {
        "phone": "+8613800138000",
        "areas": ["110108"],
        "topics": [],
        "consent": True,
        "opted_out_at": None,
    }
    assert second["phone"] == "+8613800138001" and second["consent"] is False
    assert second["opted_out_at"].startswith("20")  # an ISO timestamp, ready for JSON


def test_a_large_file_is_written_a_slice_at_a_time_and_merges_across_slices(
    store: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A number given in two slices is merged with what this import wrote; a number known before the
    import is replaced, as in a small file."""
    monkeypatch.setattr(subscribers, "IMPORT_CHUNK", 2)
    subscribers.import_csv(
        store, csv_file(tmp_path, "phone,areas,topics\n13800138009,110101,old\n"), SmsSettings()
    )
    text = (
        "phone,areas,topics\n"
        "13800138000,110105,safety\n"
        "13800138009,110108,flood\n"  # known before: replaced
        "13800138001,110105,safety\n"
        "13800138002,110105,safety\n"
        "13800138000,110108,flood\n"  # given again two slices later: merged
    )
    sizes: list[int] = []
    path = csv_file(tmp_path, text)
    report = subscribers.import_csv(store, path, SmsSettings(), progress=sizes.append)
    assert (report.created, report.updated, report.merged) == (3, 1, 1)
    assert len(sizes) >= 3 and sum(sizes) == path.stat().st_size  # progress, slice by slice
    with store.session() as session:
        rows = {s.phone: s for s in session.scalars(select(SubscriberRow))}
    assert rows["+8613800138000"].areas == ["110105", "110108"]
    assert rows["+8613800138000"].topics == ["safety", "flood"]
    assert rows["+8613800138009"].areas == ["110108"] and rows["+8613800138009"].topics == ["flood"]


def test_refused_rows_are_all_counted_and_the_first_ones_listed(
    store: Ledger, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscribers, "MAX_LISTED_REFUSALS", 3)
    text = "phone,areas\n" + "".join(f"bad-{n},110105\n" for n in range(10)) + "13800138000,110105\n"
    report = subscribers.import_csv(store, csv_file(tmp_path, text), SmsSettings())
    assert report.refused_rows == 10 and [line for line, _ in report.refused] == [2, 3, 4]
    assert report.created == 1


def test_the_mainland_shortcut_agrees_with_the_full_parser() -> None:
    """Eleven digits starting with 1 skip phonenumbers' parser; the result must be what it would say."""
    import random

    import phonenumbers

    rng = random.Random(7)
    for _ in range(5000):
        raw = str(rng.randint(10_000_000_000, 19_999_999_999))
        try:
            parsed = phonenumbers.parse(raw, "CN")
        except phonenumbers.NumberParseException:
            expected = None
        else:
            valid = phonenumbers.is_valid_number(parsed)
            expected = (
                phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) if valid else None
            )
        try:
            found: str | None = subscribers.normalise(raw, "CN")
        except ValueError:
            found = None
        assert found == expected, raw
