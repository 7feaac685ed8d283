from __future__ import annotations

import pytest

from channels.weibo import LINK_WEIGHT, weibo_length


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("暴雨预警", 4),
        ("ab", 1),
        ("abc", 2),  # halves round up
        ("暴雨ab", 3),
        ("，。！", 3),  # full-width punctuation counts one
        ("http://example.gov.cn/a-very-long-path/with/segments/", LINK_WEIGHT // 2),
        ("预警 https://example.gov.cn/x/", 13),  # 4 + 1 + 20 halves, rounded up
    ],
)
def test_length_counts_as_weibo_does(text: str, length: int) -> None:
    assert weibo_length(text) == length
