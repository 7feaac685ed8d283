"""One contract, every adapter: each must render, send, look up, retract and probe against its emulator."""

from __future__ import annotations

import re
from typing import Any

import pytest

from channels import REGISTRY, build_channel
from channels.base import Channel, Payload, Publication, Target
from dispatcher.errors import ChannelError, OutcomeUnknownError, PermanentChannelError
from dispatcher.items import parse_item
from dispatcher.rendering import TemplateRenderer, publication_for
from dispatcher.words import digest_of
from sandbox.server import Sandbox
from settings import Settings, load_settings
from tests.support import NOWHERE, inject, item_doc, merged, pointed_at, received, site_posts

# What differs between channels is data, not a different test.
CAN_LOOK_UP = {"website": True, "sms": False, "display": True, "microblog": True}
CAN_RETRACT = {"website": True, "sms": False, "display": True, "microblog": True}
CAN_UPDATE = {"website": True, "sms": False, "display": True, "microblog": False}
ALL = sorted(REGISTRY)


def publication(settings: Settings) -> Publication:
    return publication_for(
        parse_item(item_doc()),
        item_id=1,
        uid="a" * 32,
        revision=1,
        public_url=settings.website.public_url,
        audience=len(PHONES),
    )


PHONES = ["+8613800138000", "+8613800138001"]


def payloads(channel: Channel, settings: Settings) -> list[Payload]:
    """Every payload of the channel as the core makes them: a channel that reaches subscribers gets one
    batch of the audience and its numbers at send time (``addressed``)."""
    renderer = TemplateRenderer(settings.templates_dir)
    pub = publication(settings)
    if channel.reaches_subscribers:
        batch = Target("batch-001", {"recipients": len(PHONES), "audience": digest_of(PHONES)})
        return [channel.addressed(channel.prepare(pub, batch, renderer), PHONES)]
    return [channel.prepare(pub, target, renderer) for target in channel.targets(pub)]


@pytest.mark.parametrize("name", [name for name in ALL if REGISTRY[name].reaches_subscribers])
def test_numbers_other_than_the_approved_ones_are_refused(name: str, sandboxed: Settings) -> None:
    channel = build_channel(name, sandboxed)
    pub = publication(sandboxed)
    batch = Target("batch-001", {"recipients": len(PHONES), "audience": digest_of(PHONES)})
    payload = channel.prepare(pub, batch, TemplateRenderer(sandboxed.templates_dir))
    assert channel.addressed(payload, PHONES) != payload
    for altered in (PHONES[:1], [*PHONES, "+8613800138002"], PHONES[::-1]):
        with pytest.raises(PermanentChannelError, match="approved"):
            channel.addressed(payload, altered)


@pytest.mark.parametrize("name", ALL)
def test_every_target_is_sent_exactly_once(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel(name, sandboxed)
    prepared = payloads(channel, sandboxed)
    assert prepared, f"{name} has no target for a Chaoyang warning"
    for number, payload in enumerate(prepared):
        receipt = channel.send(payload, f"key-{number}")
        assert receipt.provider_id
    effects = received(sandbox, name)
    expected = sum(len(p.body["to"]) for p in prepared) if name == "sms" else len(prepared)
    assert len(effects) == expected


# Where each emulator keeps the sent content, and where the payload holds it.
CONTENT = {
    "website": ("body", None),
    "sms": ("text", "text"),
    "display": ("multi", "multi"),
    "microblog": ("status", "text"),
}


@pytest.mark.parametrize("name", ALL)
def test_sent_content_is_the_pinned_payload(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    channel.send(payload, "key")
    received_field, payload_field = CONTENT[name]
    sent = received(sandbox, name)[0][received_field]
    if payload_field:
        assert sent == payload.body[payload_field]
    else:  # the whole body, but for the link other channels carry (compared with the permalink, not sent)
        assert sent == {k: v for k, v in payload.body.items() if k != "link"}


@pytest.mark.parametrize("name", ALL)
def test_lookup_finds_a_send_or_says_it_cannot(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    assert channel.lookup(payload, "key-a") is None
    receipt = channel.send(payload, "key-a")
    found = channel.lookup(payload, "key-a")
    assert channel.can_look_up is CAN_LOOK_UP[name]  # what it declares is what it does
    if CAN_LOOK_UP[name]:
        assert found is not None and found.provider_id == receipt.provider_id
    else:
        assert found is None


@pytest.mark.parametrize("name", ALL)
def test_retract_withdraws_or_refuses_plainly(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    receipt = channel.send(payload, "key-r")
    assert channel.can_withdraw is CAN_RETRACT[name]  # what it declares is what it does
    if not CAN_RETRACT[name]:
        with pytest.raises(PermanentChannelError):
            channel.retract(payload, receipt)
        return
    channel.retract(payload, receipt)
    found = channel.lookup(payload, "key-r")
    if name == "website":  # the trashed post is still found, so a resend restores it instead of doubling
        assert found is not None and found.detail["status"] == "trash"
        assert site_posts(sandbox)[0]["status"] == "trash"
        channel.retract(payload, receipt)  # 410 rest_already_trashed is success
    else:
        assert found is None


@pytest.mark.parametrize("name", ALL)
def test_probe_reports_healthy(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    health = build_channel(name, sandboxed).probe()
    assert health.ok, health.detail


@pytest.mark.parametrize(
    ("name", "section"),
    [
        ("website", {"app_password": "wrong"}),
        ("sms", {"password": "wrong"}),
        ("microblog", {"accounts": [{"name": "sandbox", "access_token": "expired"}]}),
        ("display", {"http_base_url": NOWHERE}),
    ],
)
def test_probe_reports_bad_credentials_or_offline(
    name: str, section: dict[str, Any], values: dict[str, Any], sandbox: Sandbox
) -> None:
    broken = load_settings(**merged(values, pointed_at(sandbox), **{name: section}))
    health = build_channel(name, broken).probe()
    assert not health.ok
    assert "wrong" not in health.detail and "expired" not in health.detail


@pytest.mark.parametrize("name", ALL)
def test_an_injected_server_error_is_temporary(name: str, sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    inject(sandbox, name, mode="status", status=503, retry_after=3)
    with pytest.raises(ChannelError) as caught:
        channel.send(payload, "key-f")
    assert not isinstance(caught.value, PermanentChannelError)
    assert caught.value.retry_after == 3.0
    channel.send(payload, "key-f")  # the fault was used up; the next try lands


@pytest.mark.parametrize("name", ALL)
def test_a_lost_answer_is_unknown_and_lookup_reconciles(
    name: str, sandboxed: Settings, sandbox: Sandbox
) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    write = {"website": "POST", "sms": "GET", "display": "PUT", "microblog": "POST"}[name]
    path = {
        "website": "/wp-json/wp/v2/posts",
        "sms": "/cgi-bin/sendsms",
        "display": "/signs/",
        "microblog": "/2/statuses/share.json",
    }[name]
    inject(sandbox, name, mode="lost", seconds=3, method=write, path=path)
    with pytest.raises(OutcomeUnknownError):
        channel.send(payload, "key-l")
    assert received(sandbox, name), "the emulator acted before the answer was lost"
    found = channel.lookup(payload, "key-l")
    assert (found is not None) is CAN_LOOK_UP[name]


@pytest.mark.parametrize("name", ALL)
def test_a_later_revision_replaces_what_the_target_shows_where_the_channel_says_it_can(
    name: str, sandboxed: Settings, sandbox: Sandbox
) -> None:
    channel = build_channel(name, sandboxed)
    assert channel.can_update is CAN_UPDATE[name]  # what it declares is what it does
    if not CAN_UPDATE[name]:
        return
    renderer = TemplateRenderer(sandboxed.templates_dir)
    first = publication(sandboxed)
    second = publication_for(
        parse_item(item_doc(title="朝阳区暴雨红色预警（更正）")),
        item_id=1,
        uid="a" * 32,
        revision=2,
        public_url=sandboxed.website.public_url,
    )
    target = channel.targets(first)[0]
    channel.send(channel.prepare(first, target, renderer), "revision-1")
    revised = channel.prepare(second, target, renderer)
    receipt = channel.send(revised, "revision-2")
    if name == "website":
        [post] = site_posts(sandbox)  # the same post, not a second one
        assert post["title"]["raw"] == "朝阳区暴雨红色预警（更正）" and str(post["id"]) == receipt.provider_id
    else:
        assert channel.showing(target.name)["id"] == "revision-2"  # type: ignore[attr-defined]


def test_website_send_twice_updates_one_post(sandboxed: Settings, sandbox: Sandbox) -> None:
    channel = build_channel("website", sandboxed)
    payload = payloads(channel, sandboxed)[0]
    first = channel.send(payload, "k")
    second = channel.send(payload, "k")
    assert first.provider_id == second.provider_id and second.detail["updated"] is True
    posts = site_posts(sandbox)
    assert len(posts) == 1 and f"dispatch:{'a' * 32}" in posts[0]["content"]["raw"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("mode", ["reset", "reset_after"])
def test_a_reset_connection_leaves_the_outcome_unknown(
    name: str, mode: str, sandboxed: Settings, sandbox: Sandbox
) -> None:
    channel = build_channel(name, sandboxed)
    payload = payloads(channel, sandboxed)[0]
    write = {"website": "POST", "sms": "GET", "display": "PUT", "microblog": "POST"}[name]
    inject(sandbox, name, mode=mode, method=write)
    with pytest.raises(OutcomeUnknownError):
        channel.send(payload, "key-x")
    acted = bool(received(sandbox, name))
    assert acted is (mode == "reset_after")
    found = channel.lookup(payload, "key-x")
    assert (found is not None) is (acted and CAN_LOOK_UP[name])


# What the first line of each channel's description tells a person (the rest is the content itself).
DESCRIBED_AS = {
    "website": r"^朝阳区暴雨橙色预警  \(slug \S+, status publish\)$",
    "sms": r"^UCS-2, 1 segment\(s\), \d+ characters, 2 recipient\(s\)$",
    "display": r"^\d+ page\(s\), priority 200$",
    "microblog": r"^@sandbox, \d+ characters$",
}


@pytest.mark.parametrize("name", ALL)
def test_describe_gives_a_person_the_payload_in_lines(name: str, settings: Settings) -> None:
    channel = build_channel(name, settings)
    for payload in payloads(channel, settings):
        lines = channel.describe(payload)
        assert lines and all(isinstance(line, str) for line in lines)
        assert re.match(DESCRIBED_AS[name], lines[0]), lines[0]
        # The content readers will see is all there, line by line.
        content = payload.body.get("text") or payload.body.get("content") or payload.body["multi"]
        assert content.split("\n")[-1] in "\n".join(lines)


def test_a_channel_without_its_own_description_shows_the_body_on_one_line(settings: Settings) -> None:
    channel = build_channel("sms", settings)
    payload = Payload("sms", "batch-001", {"text": "预警", "to": ["+8613800138000"]})
    assert Channel.describe(channel, payload) == ['{"text": "预警", "to": ["+8613800138000"]}']
