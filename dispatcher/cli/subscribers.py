"""The SMS subscriber store: ``subscribers import`` and ``subscribers list``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dispatcher.cli.invocation import acting_user, get_settings, open_ledger, print_json
from dispatcher.text import table


@click.group()
def subscribers() -> None:
    """The SMS subscriber store."""


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
def subscribers_import(file: Path) -> None:
    """Import subscribers from a CSV file (phone, areas, topics, consent); bad rows are listed."""
    from dispatcher.subscribers import import_csv

    user = acting_user("subscribers")
    size = file.stat().st_size if file.is_file() else 0
    with click.progressbar(length=size, label="importing", file=sys.stderr, show_pos=False) as bar:
        report = import_csv(open_ledger(), file, get_settings().sms, progress=bar.update, by=user.name)
    for line, problem in report.refused:
        click.echo(f"{file}:{line}: {problem}", err=True)
    if report.refused_rows > len(report.refused):
        click.echo(f"… and {report.refused_rows - len(report.refused)} more refused rows", err=True)
    click.echo(
        f"imported {report.created + report.updated} subscribers ({report.created} new, "
        f"{report.updated} updated, {report.merged} duplicates merged), refused {report.refused_rows} rows"
    )
    if report.refused_rows:
        sys.exit(1)


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def subscribers_list(as_json: bool) -> None:
    """Every subscriber with areas, topics, consent and opt-out (phone numbers: operators only)."""
    from dispatcher.subscribers import list_subscribers

    acting_user("subscribers")
    rows = list_subscribers(open_ledger())
    if as_json:
        print_json(rows)
        return
    cells = [
        [
            r["phone"],
            ",".join(r["areas"]),
            ",".join(r["topics"]),
            "yes" if r["consent"] else "no",
            r["opted_out_at"] or "",
        ]
        for r in rows
    ]
    click.echo(
        table(cells, ["phone", "areas", "topics", "consent", "opted out"]) if rows else "no subscribers"
    )
