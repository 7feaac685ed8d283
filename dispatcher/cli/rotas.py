"""``dispatch rota``: preview, submit, approve, reject, list, pause, resume, retire rotas of safety tips."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from dispatcher.cli.invocation import acting_user, get_settings, open_ledger, print_json
from dispatcher.text import table


@click.group(name="rota")
def rota_group() -> None:
    """Safety tips on a rota: a file of tips and cadences, approved once, then sent on time."""


@rota_group.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option(
    "--from", "start", help="Start (ISO date-time; without an offset: the office's time zone). Now."
)
@click.option("--days", type=click.IntRange(1, 366), default=7, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A list of entries: at, title, channels, sends.")
def preview(source: Path, start: str | None, days: int, as_json: bool) -> None:
    """What a rota file would send, when and on which channels, quiet hours applied; sends nothing."""
    from dispatcher import rota

    settings = get_settings()
    zone = ZoneInfo(settings.time_zone)
    loaded = rota.load_rota(source)
    if start is None:
        begin = datetime.now(zone)
    else:
        try:
            begin = datetime.fromisoformat(start)
        except ValueError:
            raise click.BadParameter(f"{start!r} is not an ISO date-time", param_hint="--from") from None
        begin = begin if begin.tzinfo else begin.replace(tzinfo=zone)
    quiet = rota.quiet_hours_of(settings.quiet_hours)
    entries = rota.preview(loaded, begin, days, zone, quiet)
    if as_json:
        print_json([entry.to_json() for entry in entries])
        return
    rows = [
        [
            entry.at.isoformat(timespec="minutes"),
            entry.title[:24],
            " ".join(
                name if sent == entry.at else f"{name}@{sent.strftime('%m-%d %H:%M')}"
                for name, sent in entry.per_channel.items()
            ),
        ]
        for entry in entries
    ]
    click.echo(
        table(rows, ["slot", "tip", "channels (a later send when quiet hours hold it)"])
        if rows
        else "no slot"
    )
    click.echo(
        f"{len(entries)} slot(s) in {days} day(s) from {begin.isoformat(timespec='minutes')}", err=True
    )


@rota_group.command()
@click.argument("source", type=click.Path(path_type=Path))
def submit(source: Path) -> None:
    """Submit a rota file for review (a new version of the rota of its name); you are its author."""
    from dispatcher import rotas

    done = rotas.submit(open_ledger(), source, author=acting_user("rota.submit").name)
    click.echo(f"rota {done.rota_id} version {done.version} submitted for review (digest {done.digest[:12]})")


@rota_group.command()
@click.argument("rota")
def approve(rota: str) -> None:
    """Approve a rota's submitted version: from now on it sends on its cadences (never its author)."""
    from dispatcher import rotas

    approver = acting_user("rota.review").name
    version = rotas.approve(open_ledger(), rota, approver)
    click.echo(f"rota {rota}: version {version.number} approved by {approver} (digest {version.digest[:12]})")


@rota_group.command()
@click.argument("rota")
@click.option("--reason", required=True)
def reject(rota: str, reason: str) -> None:
    """Reject a rota's submitted version (an approved one keeps running)."""
    from dispatcher import rotas

    reviewer = acting_user("rota.review").name
    rotas.reject(open_ledger(), rota, reviewer, reason)
    click.echo(f"rota {rota}: rejected by {reviewer}")


def _change(what: str) -> click.Command:
    @click.command(name=what, help=f"{what.capitalize()} a rota, on the record.")
    @click.argument("rota")
    @click.option("--reason", default="", help="Why (recorded).")
    def command(rota: str, reason: str) -> None:
        from dispatcher import rotas

        actor = acting_user("rota.run").name
        rotas.change(open_ledger(), get_settings(), rota, what, actor, reason)
        click.echo(f"rota {rota}: {what}d by {actor}" + (f" ({reason})" if reason else ""))

    return command


for _what in ("pause", "resume", "retire"):
    rota_group.add_command(_change(_what))


@rota_group.command(name="list")
@click.option("--json", "as_json", is_flag=True)
def list_rotas(as_json: bool) -> None:
    """Every rota: state, live version and its approver, slots sent, late and skipped."""
    from dispatcher import rotas

    found = rotas.listing(open_ledger())
    if as_json:
        print_json(found)
        return
    rows = [
        [
            r["id"],
            r["name"][:20],
            r["state"],
            r["live_version"] or "-",
            r["approved_by"] or "-",
            r["awaiting_review"] or "-",
            " ".join(f"{k}:{v}" for k, v in sorted(r["slots"].items())) or "none yet",
        ]
        for r in found
    ]
    headers = ["id", "name", "state", "live", "approved by", "awaiting review", "slots"]
    click.echo(table(rows, headers) if rows else "no rota yet")
