"""What every command of one invocation shares: its settings, loaded once, and the ledger and broker
they name.

The settings are loaded on first use, not when the group starts, so ``--help`` and the commands that
need none (``demo`` loads its own) work whatever the environment says. Ledger and broker are imported
when asked for: ``dispatch --help`` does not pay for SQLAlchemy or Celery.
"""

from __future__ import annotations

import json
from datetime import date
from typing import TYPE_CHECKING, Any

import click

from settings import Settings, load_settings

if TYPE_CHECKING:
    from dispatcher.identity import User
    from dispatcher.ledger import Ledger
    from dispatcher.outbox import Broker


def get_settings() -> Settings:
    """The settings of this invocation, parsed and checked once."""
    context = click.get_current_context().find_root()
    if not isinstance(context.obj, Settings):
        from channels import check_names

        context.obj = load_settings()
        check_names(context.obj)
    return context.obj


def open_ledger() -> Ledger:
    """The ledger the settings name, opened once per invocation (opening it checks its schema) and
    closed when the command ends."""
    from dispatcher.ledger import Ledger

    context = click.get_current_context().find_root()
    ledger = context.meta.get("dispatch.ledger")
    if ledger is None:
        ledger = context.meta["dispatch.ledger"] = Ledger(get_settings().ledger_url)
        context.call_on_close(ledger.dispose)
    return ledger


def broker() -> Broker:
    """The broker approvals and re-drives publish to."""
    from dispatcher.tasks import broker_for

    return broker_for(get_settings())


def day(value: str, name: str) -> date:
    """A date option (``YYYY-MM-DD``), or a usage error naming the option."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from None


def print_json(data: Any) -> None:
    """``data`` as indented JSON, Chinese kept readable rather than escaped."""
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def read_token(settings: Settings) -> str:
    """The token this command line acts with: DISPATCH_TOKEN, else the token file (mode 600 only)."""
    from dispatcher.errors import AuthenticationError

    token = settings.token.get_secret_value()
    if token:
        return token
    path = settings.token_file.expanduser()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuthenticationError(
            f"no token: set DISPATCH_TOKEN, or keep yours in {settings.token_file} (mode 600); "
            "an admin makes one with dispatch users add NAME --role ROLE"
        ) from None
    if mode & 0o077:
        raise AuthenticationError(
            f"{settings.token_file} can be read by others (mode {mode & 0o777:o}); chmod 600 it, then "
            "ask an admin for a new token (dispatch users token NAME), since this one may be known"
        )
    return path.read_text(encoding="ascii", errors="replace").strip()


def acting_user(action: str) -> User:
    """The user this command line acts as, if they may ``action``."""
    from dispatcher.identity import authenticate

    context = click.get_current_context().find_root()
    user = context.meta.get("dispatch.user")
    if user is None:
        user = authenticate(open_ledger(), read_token(get_settings()))
        context.meta["dispatch.user"] = user
    return user.require(action)
