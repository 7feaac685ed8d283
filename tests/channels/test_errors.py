"""Table-driven: (channel, HTTP status, body, headers) → the error class the core acts on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import responses
from pydantic import SecretStr

from channels.base import Payload, Receipt, retry_after_seconds
from channels.display import DisplayChannel
from channels.microblog import MicroblogChannel
from channels.sms import SmsChannel
from channels.website import WebsiteChannel
from dispatcher.errors import (
    OutcomeUnknownError,
    PermanentChannelError,
    TemporaryChannelError,
)
from settings import DisplaySettings, MicroblogAccount, MicroblogSettings, SmsSettings, WebsiteSettings

WP = "http://wp.test/wp-json/wp/v2/posts"
KANNEL = "http://kannel.test/cgi-bin/sendsms"
WEIBO = "http://weibo.test/2/statuses/share.json"
DESTROY = "http://weibo.test/2/statuses/destroy.json"


def wp_error(code: str, status: int) -> str:
    return json.dumps({"code": code, "message": "x", "data": {"status": status}})


def weibo_error(code: int) -> str:
    return json.dumps({"error": "x", "error_code": code, "request": "/2/statuses/share.json"})


def website() -> tuple[WebsiteChannel, Payload]:
    channel = WebsiteChannel(WebsiteSettings(base_url="http://wp.test", app_password="test pass word"))
    body = {
        "title": "t",
        "content": "c",
        "excerpt": "e",
        "slug": "s",
        "status": "publish",
        "meta": {"dispatch_uid": "u"},
    }
    return channel, Payload("website", "site", body)


def sms() -> tuple[SmsChannel, Payload]:
    channel = SmsChannel(SmsSettings(sendsms_url=KANNEL, password="test"))
    body = {"text": "hi", "to": ["+8613800138000"], "encoding": "GSM-7", "segments": 1, "characters": 2}
    return channel, Payload("sms", "batch-001", body)


def microblog() -> tuple[MicroblogChannel, Payload]:
    account = MicroblogAccount(name="sandbox", access_token=SecretStr("test-token"))
    channel = MicroblogChannel(
        MicroblogSettings(api_base="http://weibo.test", rip="202.106.0.20", accounts=[account])
    )
    return channel, Payload(
        "microblog", "sandbox", {"account": "sandbox", "text": "s http://x/", "length": 6}
    )


CASES = [
    # channel, method, url, status, body, headers, expected error, expected code
    (
        website,
        "GET",
        WP,
        503,
        wp_error("internal_server_error", 503),
        {},
        TemporaryChannelError,
        "internal_server_error",
    ),
    (website, "GET", WP, 429, "", {"Retry-After": "7"}, TemporaryChannelError, 429),
    (
        website,
        "GET",
        WP,
        401,
        wp_error("incorrect_password", 401),
        {},
        PermanentChannelError,
        "credentials",
    ),
    (
        # A site without application passwords (no HTTPS) runs the request as a visitor.
        website,
        "GET",
        WP,
        400,
        json.dumps(
            {
                "code": "rest_invalid_param",
                "message": "Invalid parameter(s): status",
                "data": {"status": 400, "params": {"status": "Status is forbidden."}},
            }
        ),
        {},
        PermanentChannelError,
        "credentials",
    ),
    (
        website,
        "GET",
        WP,
        403,
        wp_error("rest_cannot_create", 403),
        {},
        PermanentChannelError,
        "credentials",
    ),
    (
        website,
        "GET",
        WP,
        400,
        wp_error("rest_invalid_param", 400),
        {},
        PermanentChannelError,
        "rest_invalid_param",
    ),
    (sms, "GET", KANNEL, 403, "Authorization failed for sendsms", {}, PermanentChannelError, 403),
    (sms, "GET", KANNEL, 400, "Missing receiver number", {}, PermanentChannelError, 400),
    (sms, "GET", KANNEL, 503, "Sending failed.", {}, TemporaryChannelError, 503),
    (microblog, "POST", WEIBO, 403, weibo_error(10023), {}, TemporaryChannelError, "10023"),
    (microblog, "POST", WEIBO, 400, weibo_error(20016), {}, TemporaryChannelError, "20016"),
    (microblog, "POST", WEIBO, 400, weibo_error(10022), {}, TemporaryChannelError, "10022"),
    (microblog, "POST", WEIBO, 401, weibo_error(21327), {}, PermanentChannelError, "21327"),
    (microblog, "POST", WEIBO, 401, weibo_error(21332), {}, PermanentChannelError, "21332"),
    (microblog, "POST", WEIBO, 400, weibo_error(20012), {}, PermanentChannelError, "20012"),
    (
        microblog,
        "POST",
        WEIBO,
        400,
        json.dumps({"error": "User requests out of rate limit!"}),
        {},
        TemporaryChannelError,
        "10023",
    ),
    (
        microblog,
        "POST",
        WEIBO,
        401,
        json.dumps({"error": "expired_token"}),
        {},
        PermanentChannelError,
        "21327",
    ),
    (microblog, "POST", WEIBO, 500, "<html>gateway</html>", {}, TemporaryChannelError, 500),
]


@pytest.mark.parametrize(("make", "method", "url", "status", "body", "headers", "error", "code"), CASES)
@responses.activate
def test_errors_are_classified(make, method, url, status, body, headers, error, code) -> None:  # type: ignore[no-untyped-def]
    channel, payload = make()
    responses.add(method, url, body=body, status=status, headers=headers)
    with pytest.raises(error) as caught:
        channel.send(payload, "key-1")
    assert type(caught.value) is error
    assert caught.value.code == code
    if "Retry-After" in headers:
        assert caught.value.retry_after == 7.0


@responses.activate
def test_a_kannel_answer_that_is_not_accepted_is_permanent() -> None:
    channel, payload = sms()
    responses.add("GET", KANNEL, body="Unknown answer", status=202)
    with pytest.raises(PermanentChannelError, match="Unknown answer"):
        channel.send(payload, "k")


# What a peer answers when asked to withdraw something, and whether the withdrawal is then done:
# gone already is done (asked once, never again); any other refusal still stands.
RETRACTIONS = [
    (website, "DELETE", f"{WP}/7", 410, wp_error("rest_already_trashed", 410), None),
    (website, "DELETE", f"{WP}/7", 401, wp_error("rest_cannot_delete", 401), PermanentChannelError),
    (website, "DELETE", f"{WP}/7", 503, wp_error("internal_server_error", 503), TemporaryChannelError),
    (microblog, "POST", DESTROY, 400, weibo_error(20101), None),
    (microblog, "POST", DESTROY, 401, weibo_error(21327), PermanentChannelError),
    (microblog, "POST", DESTROY, 503, "<html>gateway</html>", TemporaryChannelError),
]


@pytest.mark.parametrize(("make", "method", "url", "status", "body", "error"), RETRACTIONS)
@responses.activate
def test_retracting_what_is_already_gone_is_done_and_other_refusals_stand(  # type: ignore[no-untyped-def]
    make, method, url, status, body, error
) -> None:
    channel, payload = make()
    responses.add(method, url, body=body, status=status)
    if error is None:
        assert channel.retract(payload, Receipt("7")) is None
    else:
        with pytest.raises(error) as caught:
            channel.retract(payload, Receipt("7"))
        assert type(caught.value) is error
    assert [(call.request.method, call.request.url) for call in responses.calls] == [(method, url)]


def test_secrets_never_reach_error_messages() -> None:
    channel = SmsChannel(SmsSettings(sendsms_url="http://127.0.0.1:9/cgi-bin/sendsms", password="s3cret-pw"))
    _, payload = sms()
    with pytest.raises(TemporaryChannelError) as caught:
        channel.send(payload, "k")
    assert "s3cret-pw" not in str(caught.value)
    assert "s3cret-pw" not in repr(SmsSettings(password="s3cret-pw"))


def test_connection_refused_is_temporary_not_unknown() -> None:
    channel = MicroblogChannel(MicroblogSettings(api_base="http://127.0.0.1:9"))
    _, payload = microblog()
    with pytest.raises(TemporaryChannelError) as caught:
        channel.send(payload, "k")
    assert not isinstance(caught.value, OutcomeUnknownError)


@responses.activate
def test_a_read_timeout_after_sending_is_an_unknown_outcome() -> None:
    channel, payload = microblog()
    responses.add("POST", WEIBO, body=requests.ReadTimeout("slow"))
    with pytest.raises(OutcomeUnknownError):
        channel.send(payload, "k")


@responses.activate
def test_a_read_timeout_on_a_lookup_is_only_temporary(registry: Path) -> None:
    channel = DisplayChannel(DisplaySettings(registry=registry, http_base_url="http://signs.test"))
    responses.add("GET", "http://signs.test/signs/BJ-CY-001/messages", body=requests.ReadTimeout("slow"))
    with pytest.raises(TemporaryChannelError) as caught:
        channel.lookup(Payload("display", "BJ-CY-001", {"sign": "BJ-CY-001", "priority": 200}), "k")
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert "read timeout" in str(caught.value)  # the lookup's own request timed out, nothing else


@pytest.mark.parametrize(
    ("value", "seconds"), [("7", 7.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)]
)
def test_retry_after_reads_seconds_and_dates(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


TIMELINE = "http://weibo.test/2/statuses/user_timeline.json"


@responses.activate
def test_repeated_content_is_looked_up_and_counted_as_sent() -> None:
    channel, payload = microblog()
    responses.add("POST", WEIBO, body=weibo_error(20019), status=400)
    responses.add("GET", TIMELINE, json={"statuses": [{"idstr": "99", "id": 99, "text": "s http://x/"}]})
    receipt = channel.send(payload, "k")
    assert receipt.provider_id == "99" and receipt.detail["already_posted"] is True


@responses.activate
def test_repeated_content_not_on_the_timeline_stays_an_error() -> None:
    channel, payload = microblog()
    responses.add("POST", WEIBO, body=weibo_error(20017), status=400)
    responses.add("GET", TIMELINE, json={"statuses": [{"idstr": "98", "id": 98, "text": "another"}]})
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(payload, "k")
    assert caught.value.code == "20017"


@responses.activate
def test_a_weibo_rate_limit_waits_until_the_hour_turns() -> None:
    """Weibo counts requests per clock hour, refused ones included: retrying sooner spends the allowance."""
    from datetime import UTC, datetime

    channel, payload = microblog()
    responses.add("POST", WEIBO, body=weibo_error(20016), status=400)
    with pytest.raises(TemporaryChannelError) as caught:
        channel.send(payload, "k")
    now = datetime.now(UTC)
    to_the_hour = 3600 - (now.minute * 60 + now.second)
    assert caught.value.wait and to_the_hour - 5 <= (caught.value.retry_after or 0) <= to_the_hour + 10
    responses.replace("POST", WEIBO, body=weibo_error(10023), status=429, headers={"Retry-After": "7"})
    with pytest.raises(TemporaryChannelError) as told:
        channel.send(payload, "k")
    assert told.value.wait and told.value.retry_after == 7.0  # a Retry-After says when, and wins


@responses.activate
def test_expired_tokens_raise_an_alert() -> None:
    channel, payload = microblog()
    responses.add("POST", WEIBO, body=weibo_error(21327), status=401)
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(payload, "k")
    assert caught.value.alert is True


@responses.activate
def test_the_lookup_reads_past_the_first_page_of_the_timeline() -> None:
    channel, payload = microblog()
    others = [{"idstr": str(n), "id": n, "text": f"other {n}"} for n in range(100)]
    responses.add("POST", WEIBO, body=weibo_error(20019), status=400)
    responses.add("GET", TIMELINE, json={"statuses": others})
    responses.add("GET", TIMELINE, json={"statuses": [{"idstr": "7", "id": 7, "text": "s http://x/"}]})
    assert channel.send(payload, "k").provider_id == "7"
    assert "page=2" in responses.calls[-1].request.url


@responses.activate
def test_hourly_limits_are_waits_that_spend_no_attempt() -> None:
    channel, payload = microblog()
    responses.add("POST", WEIBO, body=weibo_error(10023), status=403)
    with pytest.raises(TemporaryChannelError) as caught:
        channel.send(payload, "k")
    assert caught.value.wait is True


@responses.activate
def test_a_site_that_speaks_for_a_visitor_raises_the_credentials_alert() -> None:
    channel, payload = website()
    responses.add("GET", WP, body=wp_error("rest_forbidden_context", 401), status=401)
    with pytest.raises(PermanentChannelError) as caught:
        channel.send(payload, "k")
    assert caught.value.alert is True


@pytest.mark.parametrize("rip", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "not-an-ip"])
def test_a_real_weibo_needs_a_real_public_address(rip: str) -> None:
    with pytest.raises(ValueError, match="rip"):
        MicroblogSettings(api_base="https://api.weibo.com", rip=rip)
    MicroblogSettings(api_base="http://127.0.0.1:8104", rip=rip if rip != "not-an-ip" else "127.0.0.1")
