"""The quarterly disclosure report: ``report``, as tables, as JSON, and as an HTML page to publish."""

from __future__ import annotations

from pathlib import Path

import click

from dispatcher.cli.invocation import acting_user, day, get_settings, open_ledger, print_json
from dispatcher.text import table

#: the final states shown as columns of their own; the others are deliveries still on their way
FINAL = ("sent", "failed", "dead", "expired", "superseded", "cancelled")


@click.command()
@click.option("--quarter", help="The quarter, YYYYQn (2026Q4), its days in the office's time zone.")
@click.option("--from", "start", help="Or the first day (YYYY-MM-DD, the office's time zone)…")
@click.option("--to", "end", help="…and the last day, included.")
@click.option(
    "--html", "html", type=click.Path(path_type=Path, dir_okay=False), help="Also write the page to FILE."
)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def report(quarter: str | None, start: str | None, end: str | None, html: Path | None, as_json: bool) -> None:
    """The disclosure report: items by kind and department, deliveries and success rates per channel,
    time from approval to publication, corrections and withdrawals."""
    from dispatcher import disclosure

    first = day(start, "--from") if start is not None else None
    last = day(end, "--to") if end is not None else None
    if quarter is not None and (first or last):
        raise click.UsageError("give --quarter, or --from and --to, not both")
    settings = get_settings()
    acting_user("ledger")
    if quarter is not None:
        found = disclosure.quarterly(open_ledger(), settings, quarter)
    elif first is None or last is None:
        raise click.UsageError("which period? --quarter 2026Q4, or --from and --to")
    elif last < first:
        raise click.BadParameter("--to comes before --from", param_hint="--to")
    else:
        found = disclosure.compile_report(open_ledger(), settings, first, last)
    if html is not None:
        try:
            html.write_text(disclosure.render_html(found, settings), encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(f"cannot write {html}: {exc.strerror}", param_hint="--html") from None
    if as_json:
        print_json(found.to_json())
        return
    duration, rate = disclosure.duration_text, disclosure.rate_text
    click.echo(f"Disclosure report {found.label}: {found.start} to {found.end} ({found.zone})")
    click.echo(
        f"{found.items} item(s) approved, {len(found.corrections)} correction(s), "
        f"{len(found.withdrawals)} withdrawal(s); approval to publication: median "
        f"{duration(found.latency.median)}, p95 {duration(found.latency.p95)} "
        f"({len(found.latency.seconds)} revision(s))"
    )
    click.echo("")
    click.echo(table([[k, n] for k, n in found.by_kind.items()], ["kind", "items"]))
    click.echo("")
    click.echo(table([[d, n] for d, n in found.by_department.items()], ["department", "items"]))
    click.echo("")
    click.echo(
        table(
            [
                [
                    line.channel,
                    line.total,
                    *[line.states.get(state, 0) for state in FINAL],
                    sum(n for state, n in line.states.items() if state not in FINAL),
                    rate(line.rate),
                    duration(line.latency.median),
                    duration(line.latency.p95),
                ]
                for line in found.channels
            ],
            ["channel", "deliveries", *FINAL, "on the way", "success", "median", "p95"],
        )
    )
    if found.corrections:
        click.echo("\ncorrections:")
        click.echo(
            table(
                [
                    [c["item"], c["revision"], c["title"], c["department"], c["approved_at"], c["approver"]]
                    for c in found.corrections
                ],
                ["item", "revision", "title", "department", "approved", "approver"],
            )
        )
    if found.withdrawals:
        click.echo("\nwithdrawals:")
        click.echo(
            table(
                [
                    [w["item"], w["title"], w["department"], w["withdrawn_at"], w["by"], w["reason"] or ""]
                    for w in found.withdrawals
                ],
                ["item", "title", "department", "withdrawn", "by", "reason"],
            )
        )
    if html is not None:
        click.echo(f"\npage written to {html}", err=True)
