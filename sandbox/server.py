"""Running the four emulators as real HTTP servers on 127.0.0.1, each in its own thread."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from channels.display import load_registry
from dispatcher.serving import Running, serve_in_thread
from sandbox import kannel, mastodon, signs, weibo, wordpress
from sandbox.emulator import EmulatorState
from settings import Settings

NAMES = ("website", "sms", "display", "microblog", "mastodon")


@dataclass
class Sandbox:
    """The emulators, started on the given ports (0 picks free ones); ``urls`` says where they are."""

    settings: Settings
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    servers: dict[str, Running] = field(default_factory=dict)
    states: dict[str, EmulatorState] = field(default_factory=dict)

    def start(self) -> Sandbox:
        s = self.settings
        apps = {
            "website": wordpress.create_app(s.website.username, s.website.app_password.get_secret_value()),
            "sms": kannel.create_app(
                s.sms.username,
                s.sms.password.get_secret_value(),
                mo_url=f"{s.api.public_url.rstrip('/')}/sms/mo?"
                + urlencode({"token": s.api.token.get_secret_value()})
                + "&from=%p&to=%P&text=%a",
            ),
            "display": signs.create_app(load_registry(s.display.registry)),
            "microblog": weibo.create_app(
                {
                    a.access_token.get_secret_value(): 1000001 + i
                    for i, a in enumerate(s.microblog.accounts)
                    if a.driver == "weibo"
                }
            ),
            "mastodon": mastodon.create_app(
                {
                    a.access_token.get_secret_value(): a.name
                    for a in s.microblog.accounts
                    if a.driver == "mastodon"
                }
                or None
            ),
        }
        for name, (app, state) in apps.items():
            self.servers[name] = serve_in_thread(app, self.host, self.ports.get(name, 0), f"sandbox-{name}")
            self.states[name] = state
        return self

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{running.port}" for name, running in self.servers.items()}

    def environment(self) -> dict[str, str]:
        """``DISPATCH_*`` variables that point a dispatcher at these emulators."""
        urls = self.urls
        return {
            "DISPATCH_WEBSITE__BASE_URL": urls["website"],
            "DISPATCH_WEBSITE__PUBLIC_URL": urls["website"],
            "DISPATCH_SMS__SENDSMS_URL": f"{urls['sms']}/cgi-bin/sendsms",
            "DISPATCH_DISPLAY__HTTP_BASE_URL": urls["display"],
            "DISPATCH_MICROBLOG__API_BASE": urls["microblog"],
        }

    def microblog_accounts(self, weibo: str = "sandbox", mastodon: str = "fediverse") -> str:
        """``DISPATCH_MICROBLOG__ACCOUNTS`` for one Weibo and one Mastodon account on these emulators."""
        return json.dumps(
            [
                {"name": weibo, "access_token": "sandbox-token"},
                {
                    "name": mastodon,
                    "access_token": "sandbox-mastodon-token",
                    "driver": "mastodon",
                    "api_base": self.urls["mastodon"],
                },
            ]
        )

    def stop(self) -> None:
        for running in self.servers.values():
            running.stop()
