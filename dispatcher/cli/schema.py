"""``dispatch ledger``: the ledger's schema revision, and migrating it by hand (opening it migrates too)."""

from __future__ import annotations

import click

from dispatcher.cli.invocation import get_settings


@click.group("ledger")
def ledger_schema() -> None:
    """The ledger's schema: its version, and migrating it (opening the ledger migrates it too)."""


@ledger_schema.command("upgrade")
def ledger_upgrade() -> None:
    """Migrate the ledger to this release's schema and say from which revision to which."""
    from dispatcher.ledger import open_engine
    from dispatcher.migrate import upgrade

    engine = open_engine(get_settings().ledger_url)
    click.echo(upgrade(engine))
    engine.dispose()


@ledger_schema.command("version")
def ledger_version() -> None:
    """The ledger's schema revision, and this release's newest."""
    from dispatcher.ledger import open_engine
    from dispatcher.migrate import describe_version

    engine = open_engine(get_settings().ledger_url)
    click.echo(describe_version(engine))
    engine.dispose()
