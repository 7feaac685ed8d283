"""Running the emulators as real HTTP servers on 127.0.0.1, each in its own thread.

The sandbox stands on its own: it is configured with plain values (:class:`SandboxConfig`) and reads
the sign registry file itself, as a sign controller would be configured with its signs; nothing here
imports the dispatcher, so no emulator can borrow the adapters' beliefs.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox import kannel, mastodon, signs, weibo, wordpress
from sandbox.emulator import EmulatorState

NAMES = ("website", "sms", "display", "microblog", "mastodon")


@dataclass
class SandboxConfig:
    """What the emulated peers are configured with: logins, tokens, the signs, where MO texts go."""

    wordpress_user: str = "dispatch"
    wordpress_password: str = "sand box pass word"
    kannel_user: str = "dispatch"
    kannel_password: str = "sandbox"
    #: an sms-service get-url for inbound texts (``%p`` sender, ``%a`` text, ``%c`` coding, …)
    mo_url: str | None = None
    #: Kannel's sendsms-user ``max-messages``: the sandbox plays a gateway configured for long texts
    max_messages: int = 10
    sign_registry: Path | None = None
    weibo_tokens: dict[str, int] = field(default_factory=lambda: {"sandbox-token": 1000001})
    weibo_safe_domains: tuple[str, ...] = ("127.0.0.1", "localhost")
    mastodon_tokens: dict[str, str] | None = None
    #: the SMS emulator's record: ``all`` (every phone and call) or ``counts`` (counts and the last few, for
    #: runs of a million phones); ``SANDBOX_SMS_RECORD`` in the environment sets it for ``dispatch sandbox``
    sms_record: str = field(default_factory=lambda: os.environ.get("SANDBOX_SMS_RECORD", "all"))
    #: extra keyword arguments per emulator (``{"website": {"registered_meta": ("dispatch_uid",)}}``)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


class _QuietHandler(WSGIRequestHandler):
    """No access log: request lines carry credentials, as a real gateway's would."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class _Running:
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def read_signs(path: Path | None) -> list[dict[str, Any]]:
    """The signs of a registry file, as plain entries."""
    if path is None:
        return []
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return [dict(entry) for entry in data.get("signs") or []]


@dataclass
class Sandbox:
    """The emulators, started on the given ports (0 picks free ones); ``urls`` says where they are."""

    config: SandboxConfig = field(default_factory=SandboxConfig)
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    servers: dict[str, _Running] = field(default_factory=dict)
    states: dict[str, EmulatorState] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)

    def start(self) -> Sandbox:
        c = self.config
        options = c.options
        apps = {
            "website": wordpress.create_app(
                c.wordpress_user, c.wordpress_password, **options.get("website", {})
            ),
            "sms": kannel.create_app(
                c.kannel_user,
                c.kannel_password,
                mo_url=c.mo_url,
                **{"max_messages": c.max_messages, "record": c.sms_record, **options.get("sms", {})},
            ),
            "display": signs.create_app(read_signs(c.sign_registry), **options.get("display", {})),
            "microblog": weibo.create_app(
                dict(c.weibo_tokens), safe_domains=c.weibo_safe_domains, **options.get("microblog", {})
            ),
            "mastodon": mastodon.create_app(c.mastodon_tokens, **options.get("mastodon", {})),
        }
        for name, (app, state) in apps.items():
            self.apps[name] = app
            self.states[name] = state
            self._serve(name)
        return self

    def _serve(self, name: str) -> None:
        server = make_server(
            self.host, self.ports.get(name, 0), self.apps[name], threaded=True, request_handler=_QuietHandler
        )
        self.ports[name] = server.server_port  # a restart comes back where it was
        thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name=f"sandbox-{name}", daemon=True
        )
        thread.start()
        self.servers[name] = _Running(server, thread)

    def pause(self, name: str) -> None:
        """Stop emulator ``name``, as a peer that goes away: its port refuses connections."""
        self.servers[name].stop()

    def resume(self, name: str) -> None:
        """Start a paused emulator again on its port, with what it had received and held."""
        self._serve(name)

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{r.server.server_port}" for name, r in self.servers.items()}

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
