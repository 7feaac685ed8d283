from __future__ import annotations

import pytest
import requests
import responses

from channels.base import Payload, Publication
from channels.sms import SmsChannel, encoding_of, segments_of, split
from dispatcher.errors import OutcomeUnknownError, PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.sandboxes import sandbox_for
from settings import Settings, SmsSettings
from tests.support import item_doc


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # 160 septets
        ("€" * 81, "GSM-7", 2),
        ("a" * 152 + "€", "GSM-7", 1),  # 154 septets fit a single message
        ("a" * 152 + "€" + "a" * 7, "GSM-7", 2),  # the escape pair moves whole to part 2
        ("雨" * 70, "UCS-2", 1),
        ("雨" * 71, "UCS-2", 2),
        ("雨" * 134, "UCS-2", 2),
        ("雨" * 135, "UCS-2", 3),
        ("雨" * 66 + "😀" + "雨" * 3, "UCS-2", 2),  # 71 units: over one message
        ("a" * 159 + "é", "GSM-7", 1),  # é is in the GSM-7 basic table
        ("a" * 159 + "ê", "UCS-2", 3),  # ê is not: the whole text becomes UCS-2
    ],
)
def test_encoding_and_segments(text: str, encoding: str, segments: int) -> None:
    assert segments_of(text) == (encoding, segments)


def test_a_surrogate_pair_is_never_split() -> None:
    # 66 characters then an emoji: the emoji (2 units) does not fit part 1's last unit.
    text = "雨" * 66 + "😀" + "雨" * 10
    assert segments_of(text) == ("UCS-2", 2)
    assert segments_of("雨" * 67 + "😀" * 34) == ("UCS-2", 3)


def test_chinese_is_ucs2() -> None:
    assert encoding_of("【应急管理】暴雨") == "UCS-2"
    assert encoding_of("Storm warning [test]") == "GSM-7"


def test_a_batch_carries_as_many_numbers_as_one_gateway_request() -> None:
    channel = SmsChannel(SmsSettings(batch_size=2))
    assert channel.recipients_per_target == 2
    publication = Publication(parse_item(item_doc()), 1, "u" * 32, 1, "s", "http://x/s/", audience=5)
    assert channel.targets(publication) == []  # the core cuts the audience into batches


def test_a_batch_whose_first_number_is_unroutable_stands_on_what_was_accepted(settings: Settings) -> None:
    """smsbox answers for the first routable-looking number only: 403 "Not routable" while the other
    phones got the text. The batch is sent; the first phone's refusal comes back as its own report."""
    box = sandbox_for(settings, sms={"denied": ("+8613800138000",)}).start()
    try:
        channel = SmsChannel(
            settings.sms.model_copy(update={"sendsms_url": f"{box.urls['sms']}/cgi-bin/sendsms"})
        )
        payload = Payload(
            "sms",
            "batch-001",
            {"text": "预警", "to": ["+8613800138000", "+8613800138001"], "encoding": "UCS-2", "segments": 1},
        )
        receipt = channel.send(payload, "k" * 40)
        assert "not routable" in receipt.detail["answer"] and "+8613800138000" in (receipt.alert or "")
        received = requests.get(f"{box.urls['sms']}/_sandbox/received", timeout=5).json()
        assert [entry["to"] for entry in received] == ["+8613800138001"]
        alone = Payload("sms", "batch-002", {**payload.body, "to": ["+8613800138000"]})
        with pytest.raises(PermanentChannelError, match="Not routable"):
            channel.send(alone, "j" * 40)  # a batch of that number alone was refused
    finally:
        box.stop()


@pytest.mark.parametrize(("split", "shown"), [("dispatcher", 150), ("gateway", 67)])
def test_a_gateway_without_max_messages_shows_the_whole_text_only_when_the_dispatcher_splits(
    settings: Settings, split: str, shown: int
) -> None:
    box = sandbox_for(settings, sms={"max_messages": 1}).start()
    try:
        sms = settings.sms.model_copy(
            update={"sendsms_url": f"{box.urls['sms']}/cgi-bin/sendsms", "split": split}
        )
        text = "雨" * 150
        payload = Payload(
            "sms", "batch-001", {"text": text, "to": ["+8613800138001"], "encoding": "UCS-2", "segments": 3}
        )
        SmsChannel(sms).send(payload, "k" * 40)
        received = requests.get(f"{box.urls['sms']}/_sandbox/received", timeout=5).json()
        assert len("".join(entry["text"] for entry in received)) == shown
    finally:
        box.stop()


@pytest.mark.parametrize(
    "text", ["a" * 400, "€" * 200 + "a", "雨" * 200, "雨" * 66 + "😀" + "雨" * 70, "a" * 152 + "€" + "b" * 10]
)
def test_split_parts_concatenate_to_the_text_and_fit_a_part(text: str) -> None:
    parts = split(text)
    assert "".join(parts) == text and len(parts) == segments_of(text)[1]
    assert all(not (p.endswith("\ud83d") or p.startswith("\ude00")) for p in parts)


@responses.activate
def test_a_part_that_fails_after_the_first_left_makes_the_outcome_unknown(settings: Settings) -> None:
    """Sending every part again would double the first; calling it failed would lose the rest."""
    url = "http://kannel.test/cgi-bin/sendsms"
    responses.add("GET", url, body="0: Accepted for delivery", status=202)
    responses.add("GET", url, body="Sending failed.", status=503)
    channel = SmsChannel(settings.sms.model_copy(update={"sendsms_url": url}))
    payload = Payload(
        "sms", "batch-001", {"text": "雨" * 100, "to": ["+8613800138001"], "encoding": "UCS-2", "segments": 2}
    )
    with pytest.raises(OutcomeUnknownError, match="part 2 of 2"):
        channel.send(payload, "k" * 40)


def test_a_direct_message_is_a_payload_the_adapter_sends_to_those_numbers(settings: Settings) -> None:
    from channels import build_channel
    from dispatcher.errors import ConfigurationError

    phones = ["+8613800138001", "+8613800138002"]
    payload = SmsChannel(settings.sms).direct("【调度告警】短信通道 down", phones)
    assert payload.body["to"] == ["+8613800138001", "+8613800138002"] and payload.body["recipients"] == 2
    assert (payload.body["encoding"], payload.body["segments"]) == ("UCS-2", 1)
    with pytest.raises(ConfigurationError, match="cannot send a message to people directly"):
        build_channel("website", settings).direct("text", ["+8613800138001"])


@responses.activate
def test_a_direct_message_asks_for_no_delivery_report(settings: Settings) -> None:
    sms = SmsChannel(settings.sms.model_copy(update={"dlr_url": "http://127.0.0.1:8100/sms/dlr"}))
    responses.get(settings.sms.sendsms_url, body="0: Accepted for delivery")
    sms.send(sms.direct("【调度告警】短信通道 down", ["+8613800138001"]), "alert-key")
    assert "dlr-url" not in responses.calls[0].request.url
