"""The website adapter against a WordPress emulator that behaves like a stock site (no plugins)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from channels import build_channel
from channels.base import Payload
from channels.website import WebsiteChannel, marker
from dispatcher.errors import OutcomeUnknownError, PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.rendering import TemplateRenderer, publication_for
from dispatcher.sandboxes import sandbox_for
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import inject, item_doc, merged, pointed_at, site_posts

AUTH = {"Authorization": "Basic " + base64.b64encode(b"dispatch:sand box pass word").decode()}
UID = "c" * 32


def prepared(settings: Settings, uid: str = UID, **changes: Any) -> tuple[WebsiteChannel, Payload]:
    channel = build_channel("website", settings)
    assert isinstance(channel, WebsiteChannel)
    pub = publication_for(
        parse_item(item_doc(**changes)),
        item_id=1,
        uid=uid,
        revision=1,
        public_url=settings.website.public_url,
    )
    return channel, channel.prepare(pub, channel.targets(pub)[0], TemplateRenderer(settings.templates_dir))


def ours(box: Sandbox, uid: str = UID) -> list[dict[str, Any]]:
    return [p for p in site_posts(box) if marker(uid) in p["content"]["raw"]]


@pytest.fixture
def site(values: dict[str, Any], settings: Settings) -> Iterator[Any]:
    """Start a WordPress emulator with other options; give it and settings pointed at it."""
    started: list[Sandbox] = []

    def start(website_settings: dict[str, Any] | None = None, **options: Any) -> tuple[Sandbox, Settings]:
        """``options`` configure the emulator; ``website_settings`` change the settings' website section."""
        box = sandbox_for(settings, website=options).start()
        started.append(box)
        return box, load_settings(**merged(values, pointed_at(box), website=website_settings or {}))

    yield start
    for box in started:
        box.stop()


MARKUP = {
    "title": '<script>alert("t")</script>通知',
    "body": '<img src=x onerror=alert(1)>\n<iframe src="//evil.example"></iframe>\n'
    '<a href="//evil.example">点击</a>',
    "short_text": "<b onmouseover=alert(2)>摘要</b>",
}


def test_markup_in_an_item_reaches_no_html_field_of_the_site(sandboxed: Settings, sandbox: Sandbox) -> None:
    """Editors hold unfiltered_html: whatever markup the dispatcher sends, WordPress keeps."""
    channel, payload = prepared(sandboxed, **MARKUP)
    channel.send(payload, "k")
    post = ours(sandbox)[0]
    for field in ("title", "excerpt", "content"):
        raw = post[field]["raw"]
        for tag in ("<script", "<img", "<iframe", "<a ", "<b "):
            assert tag not in raw, f"{field} carries {tag}"
    assert "&lt;script&gt;" in post["title"]["raw"] and "&lt;img" in post["content"]["raw"]


def test_a_lost_create_on_a_stock_site_is_found_and_not_doubled(
    sandboxed: Settings, sandbox: Sandbox
) -> None:
    """A stock site drops the unregistered meta: the post is found by the marker in its content."""
    channel, payload = prepared(sandboxed)
    inject(sandbox, "website", mode="lost", seconds=3, method="POST", path="/wp-json/wp/v2/posts")
    with pytest.raises(OutcomeUnknownError):
        channel.send(payload, "k")
    found = channel.lookup(payload, "k")
    assert found is not None
    channel.send(payload, "k")  # a repeat updates the post it finds
    assert len(ours(sandbox)) == 1 and ours(sandbox)[0]["meta"] == {}


def test_registered_meta_is_used_and_the_probe_says_how_lookup_works(site: Any) -> None:
    box, stock = site()
    assert "content marker" in build_channel("website", stock).probe().detail
    box, registered = site(registered_meta=("dispatch_uid",))
    channel, payload = prepared(registered)
    assert "by meta" in channel.probe().detail
    # A post whose marker an editor mangled (the id still in the text, so search finds it) is still ours
    # by its meta; the REST API has no query by meta, so search narrows and the meta confirms.
    requests.post(
        f"{box.urls['website']}/wp-json/wp/v2/posts",
        headers=AUTH,
        timeout=5,
        json={"title": "t", "content": f"edited {UID}", "status": "publish", "meta": {"dispatch_uid": UID}},
    ).raise_for_status()
    assert channel.lookup(payload, "k") is not None


def test_a_resend_after_a_withdrawal_reuses_the_trashed_post(sandboxed: Settings, sandbox: Sandbox) -> None:
    channel, payload = prepared(sandboxed)
    receipt = channel.send(payload, "k")
    channel.retract(payload, receipt)
    found = channel.lookup(payload, "k")
    assert found is not None and found.detail["status"] == "trash"  # status=any would have missed it
    again = channel.send(payload, "k")
    assert again.provider_id == receipt.provider_id and len(ours(sandbox)) == 1


def test_categories_missing_on_the_site_are_refused_before_approval_and_alerted_after(site: Any) -> None:
    _box, unknown = site(website_settings={"categories": {"warning": [2, 99]}})
    channel, payload = prepared(unknown)
    findings = channel.check([payload])
    assert any("[99]" in problem and "do not exist" in problem for problem in findings.problems)
    assert not channel.probe().ok and "99" in channel.probe().detail
    receipt = channel.send(payload, "k")  # WordPress skips the unknown id without a word …
    assert receipt.alert and "[99]" in receipt.alert  # … the adapter does not


def test_categories_follow_the_catalogue(sandboxed: Settings, sandbox: Sandbox) -> None:
    release = {"kind": "release", "severity": None, "urgency": None, "certainty": None}
    _, plain = prepared(sandboxed, **release)
    channel, explained = prepared(sandboxed, **release, interpretation="解读")
    assert plain.body["categories"] == [4] and explained.body["categories"] == [4, 5]
    assert channel.send(explained, "k").alert is None
    assert ours(sandbox)[0]["categories"] == [4, 5]


@pytest.mark.parametrize("available", [True, False])
def test_a_wrong_application_password_is_bad_credentials_with_an_alert(site: Any, available: bool) -> None:
    """Where application passwords are unavailable (no HTTPS) WordPress runs the request as a visitor and
    answers 400 "Status is forbidden." to the lookup, or 401 rest_cannot_create to the create."""
    _box, wrong = site(website_settings={"app_password": "wrong password"}, app_passwords_available=available)
    channel, payload = prepared(wrong)
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(payload, "k")
    assert caught.value.code == "credentials" and caught.value.alert
    assert "application password" in str(caught.value) and "wrong password" not in str(caught.value)
    assert not channel.probe().ok


def test_a_slug_held_by_another_post_is_refused_before_approval(
    sandboxed: Settings, sandbox: Sandbox
) -> None:
    channel, payload = prepared(sandboxed)
    other = requests.post(
        f"{sandbox.urls['website']}/wp-json/wp/v2/posts",
        headers=AUTH,
        timeout=5,
        json={"title": "other", "slug": payload.body["slug"], "status": "publish"},
    ).json()
    findings = channel.check([payload])
    assert any(f"post {other['id']}" in problem for problem in findings.problems)
    # Sent anyway, WordPress renames ours to -2: the post is still one, and the alert says where it is.
    receipt = channel.send(payload, "k")
    assert channel.send(payload, "k").provider_id == receipt.provider_id and len(ours(sandbox)) == 1
    assert receipt.alert and payload.body["slug"] + "-2" in receipt.alert


def test_the_permalink_the_site_gives_is_kept_and_a_different_one_alerted(site: Any) -> None:
    _box, dated = site(permalink_structure="/%year%/%monthnum%/%day%/%postname%/")
    channel, payload = prepared(dated)
    receipt = channel.send(payload, "k")
    assert receipt.detail["link"] != payload.body["link"] and receipt.detail["link"].endswith(
        payload.body["slug"] + "/"
    )
    assert receipt.alert and receipt.detail["link"] in receipt.alert


def test_a_retraction_can_return_the_post_to_draft(site: Any) -> None:
    box, to_draft = site(website_settings={"retract_to": "draft"})
    channel, payload = prepared(to_draft)
    receipt = channel.send(payload, "k")
    channel.retract(payload, receipt)
    assert ours(box)[0]["status"] == "draft"
    assert channel.lookup(payload, "k") is not None  # a draft is still found, so a correction reuses it


def test_a_lookup_finds_a_correction_only_once_the_post_holds_it(
    sandboxed: Settings, sandbox: Sandbox
) -> None:
    """Found by the fault suite: a correction whose answer was lost was settled by a lookup that found
    the item's post still holding the first revision, and recorded as sent."""
    channel, payload = prepared(sandboxed)
    first = channel.send(payload, "k1")
    corrected = Payload(
        payload.channel,
        payload.target,
        {
            **payload.body,
            "content": payload.body["content"].replace("dispatch-revision:1", "dispatch-revision:2"),
        },
    )
    assert "dispatch-revision:1" in payload.body["content"]
    assert channel.lookup(corrected, "k2") is None  # the post holds revision 1: revision 2 never landed
    assert channel.lookup(payload, "k1") is not None
    second = channel.send(corrected, "k2")
    assert second.provider_id == first.provider_id  # the same post, edited
    assert channel.lookup(corrected, "k2") is not None
