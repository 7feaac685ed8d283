"""The Mastodon driver of the microblog channel, against the Mastodon emulator."""

from __future__ import annotations

from typing import Any

import pytest

from channels import build_channel
from channels.base import Channel, Payload
from channels.mastodon import mastodon_length
from dispatcher.errors import ContentError, OutcomeUnknownError, PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.rendering import TemplateRenderer, publication_for
from sandbox.server import Sandbox
from settings import Settings, SettingsError, load_settings
from tests.support import inject, item_doc, merged, pointed_at, received


def on_mastodon(values: dict[str, Any], sandbox: Sandbox, **account: Any) -> Settings:
    """Settings whose one microblog account is on the Mastodon emulator (``account`` overrides)."""
    fediverse = {
        "name": "fediverse",
        "access_token": "sandbox-mastodon-token",
        "driver": "mastodon",
        "api_base": sandbox.urls["mastodon"],
        **account,
    }
    return load_settings(**merged(values, pointed_at(sandbox), microblog={"accounts": [fediverse]}))


@pytest.fixture
def channel(values: dict[str, Any], sandbox: Sandbox) -> Channel:
    return build_channel("microblog", on_mastodon(values, sandbox))


def payload_for(channel: Channel, settings: Settings, **changes: Any) -> Payload:
    pub = publication_for(
        parse_item(item_doc(**changes)),
        item_id=1,
        uid="e" * 32,
        revision=1,
        public_url=settings.website.public_url,
    )
    return channel.prepare(pub, channel.targets(pub)[0], TemplateRenderer(settings.templates_dir))


def posts(sandbox: Sandbox) -> list[dict[str, Any]]:
    return [r for r in received(sandbox, "mastodon") if r["action"] == "post"]


def test_links_count_23_characters() -> None:
    assert mastodon_length("预警 https://www.example.gov.cn/a/very/long/path/to/the/notice/") == 3 + 23


def test_a_repeated_post_with_the_same_key_creates_one_status(
    channel: Channel, settings: Settings, sandbox: Sandbox
) -> None:
    payload = payload_for(channel, settings)
    assert payload.body["driver"] == "mastodon"
    first = channel.send(payload, "key-1")
    second = channel.send(payload, "key-1")
    assert first.provider_id == second.provider_id
    assert len(posts(sandbox)) == 1 and posts(sandbox)[0]["key"] == "key-1"


def test_a_lost_answer_is_safe_to_resend(channel: Channel, settings: Settings, sandbox: Sandbox) -> None:
    payload = payload_for(channel, settings)
    inject(sandbox, "mastodon", mode="lost", seconds=3, method="POST")
    with pytest.raises(OutcomeUnknownError):
        channel.send(payload, "key-2")
    receipt = channel.send(payload, "key-2")
    assert [p["id"] for p in posts(sandbox)] == [receipt.provider_id]


def test_retract_deletes_and_a_second_retract_is_done(
    channel: Channel, settings: Settings, sandbox: Sandbox
) -> None:
    payload = payload_for(channel, settings)
    receipt = channel.send(payload, "key-3")
    channel.retract(payload, receipt)
    channel.retract(payload, receipt)  # 404: already gone
    assert [r["action"] for r in received(sandbox, "mastodon")] == ["post", "delete"]


def test_the_limit_is_the_instance_s(
    channel: Channel, settings: Settings, values: dict[str, Any], sandbox: Sandbox
) -> None:
    tip = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None}
    assert payload_for(channel, settings, **tip, short_text="长" * 110).body["length"] > 140  # over Weibo's
    small = build_channel("microblog", on_mastodon(values, sandbox, max_length=60))
    with pytest.raises(ContentError, match="microblog target fediverse: length is .*, the limit is 60"):
        payload_for(small, settings, **tip, short_text="长" * 50)


def test_a_bad_token_fails_permanently_and_alerts(
    settings: Settings, values: dict[str, Any], sandbox: Sandbox
) -> None:
    channel = build_channel("microblog", on_mastodon(values, sandbox, access_token="revoked"))
    assert not channel.probe().ok
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(payload_for(channel, settings), "key-4")
    assert caught.value.alert is True and "revoked" not in str(caught.value)


def test_a_mastodon_account_needs_its_instance(values: dict[str, Any]) -> None:
    account = {"name": "f", "access_token": "t", "driver": "mastodon"}
    with pytest.raises(SettingsError, match="DISPATCH_MICROBLOG__ACCOUNTS: .*needs api_base"):
        load_settings(**merged(values, microblog={"accounts": [account]}))


def test_a_lookup_finds_a_status_by_its_text_and_only_that_one(
    channel: Channel, settings: Settings, sandbox: Sandbox
) -> None:
    """A send in doubt whose revision was corrected meanwhile must not be sent again: only a lookup can
    say whether it landed (found by the fault suite: one was recorded superseded though it was posted)."""
    payload = payload_for(channel, settings, short_text="朝阳区暴雨橙色预警：请减少外出 <b>&amp;</b>")
    other = payload_for(channel, settings, short_text="另一条预警。")
    assert channel.lookup(payload, "k1") is None
    sent = channel.send(payload, "k1")
    found = channel.lookup(payload, "whatever key")
    assert found is not None and found.provider_id == sent.provider_id
    assert channel.lookup(other, "k2") is None
    channel.retract(payload, sent)
    assert channel.lookup(payload, "k1") is None
