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


def unknown(name: str) -> str:
    """The message for a channel name that is not registered, with the nearest one."""
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown channel {name!r}{hint}"


def check_names(settings: Settings) -> None:
    """Every channel named in the per-channel settings is registered: a typo stops the process."""
    named = {
        "DISPATCH_RATE_LIMITS": [key.partition(":")[0] for key in settings.rate_limits],
        "DISPATCH_PROCESSING_WINDOWS": list(settings.processing_windows),
        "DISPATCH_RETRY_BUDGETS": list(settings.retry_budgets),
        "DISPATCH_QUIET_HOURS": list(settings.quiet_hours),
    }
    for variable, names in named.items():
        for name in names:
            if name not in REGISTRY:
                raise ConfigurationError(f"{variable}: {unknown(name)}")


def build_channel(name: str, settings: Settings) -> Channel:
    """An adapter for ``name`` given its own section of the settings (``settings.<name>``)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigurationError(unknown(name)) from None
    return cls(getattr(settings, name), public_url=settings.website.public_url)  # type: ignore[call-arg,misc]
