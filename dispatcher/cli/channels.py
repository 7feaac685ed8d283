"""The channels' health: ``channels``."""

from __future__ import annotations

import sys

import click

from dispatcher.cli.invocation import get_settings, open_ledger, print_json
from dispatcher.text import table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def channels(as_json: bool) -> None:
    """Probe every channel: reachable, credentials accepted, how fast."""
    from dispatcher.reports import channel_health

    report = channel_health(open_ledger(), get_settings())
    results, circuits = report["channels"], report["circuits"]
    if as_json:
        print_json(report)
    else:
        click.echo(
            table(
                [
                    [r["channel"], "up" if r["ok"] else "DOWN", r["latency_ms"] or "-", r["detail"]]
                    for r in results
                ],
                ["channel", "health", "ms", "detail"],
            )
        )
        if circuits:
            click.echo("\ncircuits not closed:")
            click.echo(
                table(
                    [
                        [
                            c["channel"],
                            c["target"],
                            c["state"],
                            c["failures"],
                            c["open_until"] or "",
                            (c["last_error"] or "")[:50],
                        ]
                        for c in circuits
                    ],
                    ["channel", "target", "state", "failures", "open until", "last error"],
                )
            )
    if not all(r["ok"] for r in results):
        sys.exit(1)
