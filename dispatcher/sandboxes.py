"""Starting the sandbox emulators configured as the settings expect them (the demo, the tests).

The emulators take plain values and never read the dispatcher's settings themselves; this is the one
place that says which login, token, sign registry and callback URL they are started with.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sandbox.server import Sandbox, SandboxConfig
from settings import Settings


def sandbox_config(settings: Settings, **options: dict[str, Any]) -> SandboxConfig:
    mo_query = urlencode({"token": settings.api.token.get_secret_value()})
    return SandboxConfig(
        wordpress_user=settings.website.username,
        wordpress_password=settings.website.app_password.get_secret_value(),
        kannel_user=settings.sms.username,
        kannel_password=settings.sms.password.get_secret_value(),
        mo_url=f"{settings.api.public_url.rstrip('/')}/sms/mo?{mo_query}"
        "&from=%p&to=%P&text=%a&coding=%c&charset=%C",
        sign_registry=settings.display.registry,
        weibo_tokens={
            a.access_token.get_secret_value(): 1000001 + i
            for i, a in enumerate(settings.microblog.accounts)
            if a.driver == "weibo"
        },
        weibo_safe_domains=tuple(settings.microblog.safe_domains),
        mastodon_tokens={
            a.access_token.get_secret_value(): a.name
            for a in settings.microblog.accounts
            if a.driver == "mastodon"
        }
        or None,
        options=dict(options),
    )


def sandbox_for(
    settings: Settings, ports: dict[str, int] | None = None, **options: dict[str, Any]
) -> Sandbox:
    """The emulators, not yet started, configured for ``settings``."""
    box = Sandbox(sandbox_config(settings, **options))
    if ports:
        box.ports = dict(ports)
    return box
