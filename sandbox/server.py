"""Running the four emulators as real HTTP servers on 127.0.0.1, each in its own thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from channels.display import load_registry
from sandbox import kannel, signs, weibo, wordpress
from sandbox.emulator import EmulatorState
from settings import Settings

NAMES = ("website", "sms", "display", "microblog")


class QuietHandler(WSGIRequestHandler):
    """No access log: request lines carry credentials (Kannel takes its password in the query)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class Sandbox:
    """The emulators, started on the given ports (0 picks free ones); ``urls`` says where they are."""

    settings: Settings
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    servers: dict[str, BaseWSGIServer] = field(default_factory=dict)
    states: dict[str, EmulatorState] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Sandbox:
        s = self.settings
        apps = {
            "website": wordpress.create_app(s.website.username, s.website.app_password.get_secret_value()),
            "sms": kannel.create_app(s.sms.username, s.sms.password.get_secret_value()),
            "display": signs.create_app(load_registry(s.display.registry)),
            "microblog": weibo.create_app(
                {a.access_token.get_secret_value(): 1000001 + i for i, a in enumerate(s.microblog.accounts)}
            ),
        }
        for name, (app, state) in apps.items():
            server = make_server(
                self.host, self.ports.get(name, 0), app, threaded=True, request_handler=QuietHandler
            )
            self.servers[name] = server
            self.states[name] = state
            thread = threading.Thread(
                target=server.serve_forever, args=(0.05,), name=f"sandbox-{name}", daemon=True
            )
            thread.start()
            self.threads.append(thread)
        return self

    @property
    def urls(self) -> dict[str, str]:
        return {name: f"http://{self.host}:{server.server_port}" for name, server in self.servers.items()}

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

    def stop(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=5)
