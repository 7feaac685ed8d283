"""``dispatch ledger``: the ledger's schema revision, migrating it by hand (opening it migrates too), and
exporting the disclosure ledger."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dispatcher.cli.invocation import acting_user, day, get_settings, open_ledger


@click.group("ledger")
def ledger_schema() -> None:
    """The ledger: its schema version, migrating it (opening it migrates it too), and its export."""


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


@ledger_schema.command("verify")
def ledger_verify() -> None:
    """Walk the event log's chain of hashes; exit 1 naming the first event whose link is broken."""
    from dispatcher.ledger import verify_chain

    acting_user("ledger")
    with open_ledger().session() as session:
        checked, broken, head = verify_chain(session)
    if broken is not None:
        click.echo(
            f"error: the event log's chain breaks at event {broken}: it, or one before it, was changed, "
            f"removed or slipped in ({checked} events before it check out)",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{checked} events, chained from the first to the last; head {head[:16]}")


@ledger_schema.command("export")
@click.option("--from", "start", required=True, help="First day (YYYY-MM-DD, the office's time zone).")
@click.option("--to", "end", required=True, help="Last day, included.")
@click.option("--format", "kind", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="The file (needed for xlsx; csv: stdout)."
)
def ledger_export(start: str, end: str, kind: str, output: Path | None) -> None:
    """The disclosure ledger: one row per item × channel × target, for items approved in those days."""
    from dispatcher import exports

    acting_user("ledger")
    first, last = day(start, "--from"), day(end, "--to")
    if last < first:
        raise click.BadParameter("--to comes before --from", param_hint="--to")
    found = exports.rows(open_ledger(), get_settings(), first, last)
    if kind == "xlsx":
        if output is None:
            raise click.BadParameter("an Excel workbook needs a file: -o ledger.xlsx", param_hint="--output")
        count = exports.write_xlsx(found, output)
    elif output is None:
        count = exports.write_csv(found, sys.stdout)
    else:
        with output.open("w", encoding="utf-8-sig", newline="") as out:
            count = exports.write_csv(found, out)
    click.echo(f"{count} row(s), items approved {first} to {last}", err=True)
