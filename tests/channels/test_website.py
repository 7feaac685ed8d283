from __future__ import annotations

import base64

import pytest
import requests

from channels import build_channel
from channels.website import WebsiteChannel
from dispatcher.errors import PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.rendering import TemplateRenderer, publication_for
from sandbox.server import Sandbox
from settings import Settings, get_settings
from tests.conftest import item_doc

AUTH = {"Authorization": "Basic " + base64.b64encode(b"dispatch:sand box pass word").decode()}


def prepared(settings: Settings, **changes: object):  # type: ignore[no-untyped-def]
    channel = build_channel("website", settings)
    pub = publication_for(
        parse_item(item_doc(**changes)),
        item_id=1,
        uid="c" * 32,
        revision=1,
        public_url=settings.website.public_url,
    )
    return channel, channel.prepare(pub, channel.targets(pub)[0], TemplateRenderer(settings.templates_dir))


def posts(sandbox: Sandbox) -> list[dict]:
    return requests.get(f"{sandbox.urls['website']}/_sandbox/posts", timeout=5).json()


def test_a_renamed_slug_does_not_lead_to_a_second_post(settings: Settings, sandbox: Sandbox) -> None:
    channel, payload = prepared(settings)
    # Someone else's post already has our slug: WordPress gives ours "<slug>-2".
    requests.post(
        f"{sandbox.urls['website']}/wp-json/wp/v2/posts",
        headers=AUTH,
        timeout=5,
        json={"title": "other", "slug": payload.body["slug"], "status": "publish"},
    ).raise_for_status()
    first = channel.send(payload, "k")
    second = channel.send(payload, "k")
    ours = [p for p in posts(sandbox) if p["meta"].get("dispatch_uid") == "c" * 32]
    assert len(ours) == 1 and ours[0]["slug"] == payload.body["slug"] + "-2"
    assert first.provider_id == second.provider_id == str(ours[0]["id"])


def test_categories_follow_the_catalogue(settings: Settings, sandbox: Sandbox) -> None:
    _, warning = prepared(settings)
    assert warning.body["categories"] == [2]
    release = {"kind": "release", "severity": None, "urgency": None, "certainty": None}
    _, plain = prepared(settings, **release)
    _, explained = prepared(settings, **release, interpretation="解读")
    assert plain.body["categories"] == [4] and explained.body["categories"] == [4, 5]
    channel, _ = prepared(settings)
    channel.send(explained, "k")
    assert posts(sandbox)[0]["categories"] == [4, 5]


def test_an_unknown_category_is_a_permanent_error(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_WEBSITE__CATEGORIES", '{"warning": [99]}')
    get_settings.cache_clear()
    channel, payload = prepared(get_settings())
    with pytest.raises(PermanentChannelError, match="rest_invalid_param"):
        channel.send(payload, "k")


def test_a_retraction_can_return_the_post_to_draft(
    settings: Settings, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_WEBSITE__RETRACT_TO", "draft")
    get_settings.cache_clear()
    channel, payload = prepared(get_settings())
    assert isinstance(channel, WebsiteChannel)
    receipt = channel.send(payload, "k")
    channel.retract(payload, receipt)
    assert posts(sandbox)[0]["status"] == "draft"
    assert channel.lookup(payload, "k") is not None  # a draft is still found, so a correction reuses it
