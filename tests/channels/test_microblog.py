"""Weibo's own counting, and what share.json refuses that the driver must avoid."""

from __future__ import annotations

import pytest

from channels.weibo import WeiboApi, weibo_length, without_links


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("暴雨预警", 4),
        ("ab", 1),
        ("abc", 2),  # halves round up
        ("暴雨ab", 3),
        ("，。！", 3),  # full-width punctuation counts one
        ("“”—…℃", 5),  # above U+00FF: one each, although some look narrow
        ("é©", 1),  # up to U+00FF: a half each
        ("😀", 2),  # two UTF-16 units
        ("a\r\nb", 2),  # CRLF counts as one LF: 3 halves, rounded up
        ("a\nb", 2),
        ("http://example.gov.cn/a-very-long-path/with/segments/", 10),  # any link ≤ 140 halves: 10
        ("预警 https://example.gov.cn/x/", 13),  # 4 + ½ + 10 = 14.5 halves… rounded up
        ("x http://example.gov.cn/" + "a" * 200, 52),  # link of 222 halves: 222 − 140 + 20, plus 2
        ("http://weibo.com/u/12", 11),  # Weibo's own short http links count as they are (21 halves)
        ("https://weibo.com/u/12", 10),  # … over https it is a link like any other
        ("http://localhost/abcd", 11),  # no dotted host: not a link to the counter, plain text
        ("http://t.cn/A6abcdE", 10),  # a t.cn link is plain text: 19 halves
        ("http://weibo.com/" + "p" * 30, 10),  # its own host, but over 41 bytes: a link again
    ],
)
def test_length_counts_as_weibo_does(text: str, length: int) -> None:
    assert weibo_length(text) == length


def test_a_status_is_recognised_although_weibo_shortened_its_links() -> None:
    sent = "【暴雨】朝阳区暴雨橙色预警 http://news.example.gov.cn/warning-abc/"
    shown = "【暴雨】朝阳区暴雨橙色预警 http://t.cn/A6xyZ12"
    other = "【大风】朝阳区大风蓝色预警 http://t.cn/A6xyZ12"
    assert without_links(sent) == without_links(shown)
    assert without_links(sent) != without_links(other)


def test_a_topic_sign_is_neutralised() -> None:
    """share.json refuses #话题# topics (10017): the driver sends the full-width sign instead."""
    assert WeiboApi.prepare("#安全提示# 防溺水") == "＃安全提示＃ 防溺水"
