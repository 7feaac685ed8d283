"""The HTTP API, served for real on 127.0.0.1 by uvicorn and called with ``requests``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import requests
from sqlalchemy import func, select

from dispatcher import identity
from dispatcher.identity import Role
from dispatcher.ledger import EventRow, Ledger
from dispatcher.serving import Listening, serve_app_in_thread
from dispatcher.web.app import build
from settings import Settings

ADMIN = "管理员"
#: the test's users, one role each, plus one with every role and a user who was disabled
PEOPLE: dict[str, frozenset[Role]] = {
    "作者": frozenset({Role.author}),
    "审核一": frozenset({Role.approver}),
    "审核二": frozenset({Role.approver}),
    "运维": frozenset({Role.operator}),
    "审计": frozenset({Role.auditor}),
    "全能": frozenset(Role),
    "停用": frozenset({Role.author, Role.approver}),
}


@dataclass
class Api:
    """A running API and the tokens of its users."""

    listening: Listening
    ledger: Ledger
    tokens: dict[str, str]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.listening.port}{path}"

    def call(self, method: str, path: str, who: str | None = None, **kwargs: Any) -> requests.Response:
        """``method path`` as user ``who`` (None: no token at all)."""
        headers = dict(kwargs.pop("headers", {}))
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(who, who)}"
        return requests.request(method, self.url(path), headers=headers, timeout=30, **kwargs)

    def events(self) -> int:
        with self.ledger.session() as session:
            return session.scalar(select(func.count()).select_from(EventRow)) or 0


def running_api(settings: Settings, ledger: Ledger) -> Iterator[Api]:
    """The app served on a free port, with the users of :data:`PEOPLE` (停用 disabled)."""
    admin = identity.bootstrap(ledger, ADMIN)
    tokens = {ADMIN: admin.token}
    acting = identity.authenticate(ledger, admin.token)
    for name, roles in PEOPLE.items():
        tokens[name] = identity.add(ledger, acting, name, roles).token
    identity.disable(ledger, acting, "停用")
    # Every face dispatch serve runs, the status page's routes among them; no probing, which would write
    # events of its own while the tests count them.
    app = build(settings, ledger, None, probe_interval=0)
    listening = serve_app_in_thread(app, "127.0.0.1", 0, "api")
    try:
        yield Api(listening, ledger, tokens)
    finally:
        listening.stop()
