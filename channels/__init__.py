"""The channel registry: one name, one adapter class, one slice of the settings."""

from __future__ import annotations

import difflib

from channels.base import Channel
from channels.display import DisplayChannel
from channels.microblog import MicroblogChannel
from channels.sms import SmsChannel
from channels.website import WebsiteChannel
from dispatcher.errors import ConfigurationError
from settings import Settings

REGISTRY: dict[str, type[Channel]] = {
    "website": WebsiteChannel,
    "sms": SmsChannel,
    "display": DisplayChannel,
    "microblog": MicroblogChannel,
}


def build_channel(name: str, settings: Settings) -> Channel:
    """An adapter for ``name`` given its own section of the settings (``settings.<name>``)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigurationError(f"unknown channel {name!r}{hint}") from None
    return cls(getattr(settings, name), public_url=settings.website.public_url)  # type: ignore[call-arg,misc]
