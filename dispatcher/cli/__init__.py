"""The ``dispatch`` command line: one group, and one small module per family of commands.

- ``items``: submit (item files and CAP alerts), update, preview, approve, reject, retract, status,
  export (CAP);
- ``deliveries``: redrive;
- ``channels``: channels (probe every channel, list the circuits not closed);
- ``subscribers``: subscribers import, subscribers list;
- ``serving``: serve (the HTTP API, callbacks and page; ``api`` is its old name), sandbox, worker (run until
  interrupted);
- ``demo``: demo;
- ``schema``: ledger version, ledger upgrade, ledger verify, ledger export;
- ``reporting``: report (the quarterly disclosure report: tables, JSON, an HTML page);
- ``rotas``: rota preview, submit, approve, reject, list, pause, resume, retire;
- ``users``: users bootstrap, add, list, disable, enable, roles, token; whoami.

Every command that changes state, and the ledger's export, acts as a user: the one whose token
``DISPATCH_TOKEN`` (or the token file) holds, if their roles allow it (``invocation.acting_user``).

A command parses its options, calls one function of the flow or the reports — the functions an HTTP
API calls too — and prints what it returns. What every command shares (the settings of this
invocation, the ledger, the broker) lives in ``invocation``.
"""

from __future__ import annotations

from typing import Any

import click

from dispatcher.cli import (
    channels,
    deliveries,
    demo,
    items,
    reporting,
    rotas,
    schema,
    serving,
    subscribers,
    users,
)
from dispatcher.cli.invocation import get_settings
from dispatcher.errors import DispatchError
from settings import SettingsError

__all__ = ["cli", "get_settings", "main"]


class DispatchGroup(click.Group):
    """Turns a DispatchError into a one-line message and its exit status (2 bad input, 1 refused)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DispatchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except SettingsError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=DispatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Publish one approved item to the website, SMS, display signs and microblogs."""


for command in (
    items.submit,
    items.update,
    items.approve,
    items.reject,
    items.retract,
    items.export,
    items.preview,
    items.status,
    deliveries.redrive,
    channels.channels,
    subscribers.subscribers,
    serving.serve,
    serving.api,
    serving.sandbox,
    serving.worker,
    demo.demo,
    schema.ledger_schema,
    reporting.report,
    rotas.rota_group,
    users.users_group,
    users.whoami,
):
    cli.add_command(command)

main = cli
