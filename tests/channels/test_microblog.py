"""Weibo's own counting, and what share.json refuses that the driver must avoid."""

from __future__ import annotations

from typing import Any

import pytest

from channels import build_channel
from channels.weibo import WeiboApi, weibo_length, without_links
from dispatcher.errors import ContentError
from dispatcher.items import parse_item
from dispatcher.rendering import TemplateRenderer, publication_for
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import item_doc, merged, pointed_at


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


def test_links_off_the_weibo_apps_safe_domains_are_refused_at_approval_and_probe(
    values: dict[str, Any], sandbox: Sandbox
) -> None:
    """share.json refuses every status whose link is not on the app's safe domain (10017)."""
    strict = load_settings(
        **merged(values, pointed_at(sandbox), microblog={"safe_domains": ["www.example.gov.cn"]})
    )
    channel = build_channel("microblog", strict)
    pub = publication_for(
        parse_item(item_doc()), item_id=1, uid="d" * 32, revision=1, public_url=strict.website.public_url
    )
    with pytest.raises(ContentError, match="safe domains"):
        channel.prepare(pub, channel.targets(pub)[0], TemplateRenderer(strict.templates_dir))
    health = channel.probe()
    assert not health.ok and "safe domains" in health.detail


def test_no_template_produces_a_weibo_topic(settings: Settings) -> None:
    renderer = TemplateRenderer(settings.templates_dir)
    for kind in ("warning", "safety_tip", "release"):
        changes: dict[str, object] = {"kind": kind}
        if kind != "warning":
            changes.update(severity=None, urgency=None, certainty=None)
        pub = publication_for(
            parse_item(item_doc(**changes, short_text="#话题# 内容")),
            item_id=1,
            uid="d" * 32,
            revision=1,
            public_url=settings.website.public_url,
        )
        channel = build_channel("microblog", settings)
        text = channel.prepare(pub, channel.targets(pub)[0], renderer).body["text"]
        assert "#" not in text, f"{kind}: {text}"


def test_a_tip_broadcast_again_is_not_mistaken_for_the_earlier_one(
    sandboxed: Settings, sandbox: Sandbox
) -> None:
    """The texts differ only in their links, which Weibo shows as t.cn: the lookup expands them."""
    from channels.base import Payload

    channel = build_channel("microblog", sandboxed)
    base = sandboxed.website.public_url.rstrip("/")
    last_week = Payload(
        "microblog", "sandbox", {"account": "sandbox", "text": f"【安全提示】防溺水 {base}/tip-1/"}
    )
    today = Payload(
        "microblog", "sandbox", {"account": "sandbox", "text": f"【安全提示】防溺水 {base}/tip-2/"}
    )
    earlier = channel.send(last_week, "k1")
    assert channel.lookup(today, "k2") is None
    posted = channel.send(today, "k2")
    found = channel.lookup(today, "k2")
    assert found is not None and found.provider_id == posted.provider_id != earlier.provider_id
