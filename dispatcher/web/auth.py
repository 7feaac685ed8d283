"""Who calls: the bearer token of a request, and whether its user may do what the endpoint does.

``Depends(acting("approve"))`` gives the endpoint the :class:`~dispatcher.identity.User` whose token the
``Authorization: Bearer dsp_…`` header carries, if their roles allow ``approve`` (the actions are
:data:`dispatcher.identity.PERMISSIONS`; any other name is reading, open to every user). A missing or
wrong token is an :class:`~dispatcher.errors.AuthenticationError` (401), a role that does not allow it
a :class:`~dispatcher.errors.ForbiddenError` (403). The check runs before the body is looked at, so
nothing changes state without a token.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
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
        if credentials is None:
            raise AuthenticationError("no token: send Authorization: Bearer dsp_…")
        return authenticate(ledger_of(request), credentials.credentials).require(action)

    user.__name__ = f"acting_{action.replace('.', '_')}"
    return user


def broker_of(request: Request) -> Broker | None:
    """The broker approvals and re-drives publish to (None: deliveries wait for the sweeper)."""
    broker: Broker | None = request.app.state.broker
    return broker
