"""Who calls: the bearer token of a request, and whether its user may do what the endpoint does.

``Depends(acting("approve"))`` gives the endpoint the :class:`~dispatcher.identity.User` whose token the
``Authorization: Bearer dsp_…`` header carries, if their roles allow ``approve`` (the actions are
:data:`dispatcher.identity.PERMISSIONS`; any other name is reading, open to every user). A missing or
wrong token is an :class:`~dispatcher.errors.AuthenticationError` (401), a role that does not allow it
a :class:`~dispatcher.errors.ForbiddenError` (403).

:class:`Gate` stands in front of the app: a request to ``/api/v1`` or ``/metrics`` without a valid token
is answered 401 before its body is read (FastAPI reads and parses a body before it resolves an
endpoint's dependencies). The user the gate found is what ``acting`` checks the role of. (No body past
:data:`~dispatcher.web.documents.MAX_BODY` is read at all: FastAPI's own limit, set in ``create_app``.)
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dispatcher.errors import AuthenticationError
from dispatcher.identity import User, authenticate
from dispatcher.ledger import Ledger
from dispatcher.outbox import Broker
from settings import Settings

#: Declares the scheme in the OpenAPI document; a missing header is ours to answer (401, not 403).
BEARER = HTTPBearer(auto_error=False, bearerFormat="dsp_<id>_<secret>", description="A dispatcher token.")
#: What every user may do: read (status, previews, channels).
READ = "status"


def ledger_of(request: Request) -> Ledger:
    """The ledger the app serves."""
    ledger: Ledger = request.app.state.ledger
    return ledger


def settings_of(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def acting(action: str) -> Callable[..., User]:
    """A dependency: the calling user, if they may ``action``."""

    def user(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> User:
        found = request.scope.get("state", {}).get("user")  # the gate's, for /api/v1 and /metrics
        if isinstance(found, User):
            return found.require(action)
        if credentials is None:
            raise AuthenticationError("no token: send Authorization: Bearer dsp_…")
        return authenticate(ledger_of(request), credentials.credentials).require(action)

    user.__name__ = f"acting_{action.replace('.', '_')}"
    return user


def broker_of(request: Request) -> Broker | None:
    """The broker approvals and re-drives publish to (None: deliveries wait for the sweeper)."""
    broker: Broker | None = request.app.state.broker
    return broker


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: the paths whose every request needs a token (the callbacks and the page's shell carry none)
GUARDED = ("/api/v1/", "/metrics")


class Gate:
    """The ASGI middleware described in the module's docstring."""

    def __init__(self, app: ASGIApp, ledger: Ledger) -> None:
        self.app, self.ledger = app, ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(GUARDED):
            headers = {name.decode("latin-1").lower(): value for name, value in scope.get("headers", [])}
            token = _bearer(headers.get("authorization", b""))
            try:
                if token is None:
                    raise AuthenticationError("no token: send Authorization: Bearer dsp_…")
                user = await run_in_threadpool(authenticate, self.ledger, token)
            except AuthenticationError as exc:
                await _answer(send, 401, str(exc), {"www-authenticate": "Bearer"})
                return
            scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)


def _bearer(value: bytes) -> str | None:
    scheme, _, token = value.decode("latin-1").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _answer(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
