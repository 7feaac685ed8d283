from __future__ import annotations

import pytest

from channels.base import Publication
from channels.sms import SmsChannel, encoding_of, segments_of
from dispatcher.items import parse_item
from settings import SmsSettings
from tests.conftest import item_doc


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


def test_recipients_are_batched_by_gateway_size() -> None:
    numbers = tuple(f"+86138000000{i:02d}" for i in range(5))
    channel = SmsChannel(SmsSettings(batch_size=2))
    publication = Publication(parse_item(item_doc()), 1, "u" * 32, 1, "s", "http://x/s/", numbers)
    targets = channel.targets(publication)
    assert [t.name for t in targets] == ["batch-001", "batch-002", "batch-003"]
    assert [len(t.detail["to"]) for t in targets] == [2, 2, 1]
