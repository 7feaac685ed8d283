"""The ``dispatch`` command line."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from dispatcher.errors import DispatchError, NotFoundError
from settings import SANDBOX_API_TOKEN, get_settings


def _ledger():  # type: ignore[no-untyped-def]
    from dispatcher.ledger import Ledger

    return Ledger(get_settings().ledger_url)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain text table; widths count a CJK character as two columns, as terminals show it."""
    import unicodedata

    def width(text: str) -> int:
        return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)

    cells = [header] + [[str(c) for c in row] for row in rows]
    widths = [max(width(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(c + " " * (w - width(c)) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


class DispatchGroup(click.Group):
    """Turns a DispatchError into a one-line message and its exit status (2 bad input, 1 refused)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DispatchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=DispatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Publish one approved item to the website, SMS, display signs and microblogs."""


@cli.command()
@click.argument("source")
@click.option("--draft", is_flag=True, help="Store the file as a draft, not yet for review.")
@click.option("--json", "as_json", is_flag=True, help="Print the item as JSON.")
def submit(source: str, draft: bool, as_json: bool) -> None:
    """Store an item file (YAML or JSON) for review and print its id; or submit draft ID."""
    from dispatcher import approval
    from dispatcher.items import load_item

    ledger = _ledger()
    if source.isdigit() and not Path(source).exists():
        approval.submit_draft(ledger, int(source))
        item_id, state = int(source), "submitted"
    else:
        item = load_item(Path(source))
        item_id = approval.submit(ledger, item, draft=draft)
        state = "draft" if draft else "submitted"
    if as_json:
        _print_json({"id": item_id, "state": state})
    else:
        click.echo(item_id)


@cli.command()
@click.argument("item_id", type=int)
@click.option("--as", "approver", required=True, help="Name of the approver (never the author).")
def approve(item_id: int, approver: str) -> None:
    """Approve a submitted item: pin its payloads and fan it out."""
    from dispatcher.approval import approve as approve_item

    result = approve_item(_ledger(), get_settings(), item_id, approver)
    per_channel: dict[str, int] = {}
    for payload in result.payloads:
        per_channel[payload.channel] = per_channel.get(payload.channel, 0) + 1
    summary = ", ".join(f"{name} {count}" for name, count in per_channel.items())
    total = len(result.payloads)
    if result.enqueued == total:
        click.echo(f"item {item_id} approved by {approver}: {total} deliveries queued ({summary})")
    else:
        click.echo(
            f"item {item_id} approved by {approver}: {total} deliveries written ({summary}); "
            f"{total - result.enqueued} of them are waiting for the broker, which did not take them — the "
            "sweeper hands them over once it answers"
        )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@cli.command()
@click.argument("item_id", type=int)
@click.option("--as", "approver", required=True, help="Name of the reviewer.")
@click.option("--reason", required=True, help="Why the item is rejected.")
def reject(item_id: int, approver: str, reason: str) -> None:
    """Reject a submitted item."""
    from dispatcher.approval import reject as reject_item

    reject_item(_ledger(), item_id, approver, reason)
    click.echo(f"item {item_id} rejected by {approver}")


@cli.command()
@click.argument("source")
@click.option("--channel", "channel", help="Only this channel.")
@click.option("--json", "as_json", is_flag=True, help="Every payload as JSON.")
def preview(source: str, channel: str | None, as_json: bool) -> None:
    """Render an item file, or a stored item by id, for every channel and target."""
    from dispatcher import approval
    from dispatcher.items import load_item
    from dispatcher.ledger import ItemRow
    from dispatcher.reports import payload_view

    settings = get_settings()
    with _ledger().session() as session:
        if source.isdigit() and not Path(source).exists():
            row = session.get(ItemRow, int(source))
            if row is None:
                raise NotFoundError(f"no item {source}")
            publication = approval.stored_publication(session, settings, row)
        else:
            publication = approval.draft_publication(session, settings, load_item(Path(source)))
    if channel:
        from channels import build_channel

        build_channel(channel, settings)  # an unknown name is refused with a suggestion
    result = approval.plan(settings, publication, only=channel)
    if as_json:
        _print_json(
            {
                "payloads": [payload_view(p) for p in result.payloads],
                "problems": result.problems,
                "notes": result.notes,
            }
        )
    else:
        for payload in result.payloads:
            click.echo(f"── {payload.channel} / {payload.target}")
            body = payload.body
            if payload.channel == "sms":
                click.echo(
                    f"{body['encoding']}, {body['segments']} segment(s), {body['characters']} characters, "
                    f"{len(body['to'])} recipient(s)"
                )
                click.echo(body["text"])
            elif payload.channel == "display":
                click.echo(f"{len(body['pages'])} page(s), priority {body['priority']}")
                for number, page in enumerate(body["pages"], 1):
                    click.echo(f"  page {number}: " + " / ".join(page))
                click.echo(f"  MULTI: {body['multi']}")
            elif payload.channel == "microblog":
                click.echo(f"@{body['account']}, {body['length']} characters")
                click.echo(body["text"])
            else:
                click.echo(f"{body['title']}  (slug {body['slug']}, status {body['status']})")
                click.echo(body["content"])
        for problem in result.problems:
            click.echo(f"problem: {problem}", err=True)
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    if result.problems:
        sys.exit(2)


@cli.command()
@click.argument("item_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Items per page.")
@click.option("--before", type=int, default=None, help="Only items older than this id (the next page).")
def status(item_id: int | None, as_json: bool, limit: int, before: int | None) -> None:
    """Items and their deliveries, newest first, a page at a time; with an id, every delivery of that item."""
    from dispatcher.reports import item_status, items_overview

    ledger = _ledger()
    if item_id is None:
        page = items_overview(ledger, limit=limit, before=before)
        items = page["items"]
        if as_json:
            _print_json(page)
            return
        if page["next_before"] is not None:
            click.echo(
                f"the newest {len(items)} of {page['total']} items; the next page: "
                f"dispatch status --before {page['next_before']}",
                err=True,
            )
        rows = [
            [
                i["id"],
                i["kind"],
                i["state"],
                i["title"][:30],
                " ".join(f"{k}:{v}" for k, v in sorted(i["deliveries"].items())),
            ]
            for i in items
        ]
        click.echo(table(rows, ["id", "kind", "state", "title", "deliveries"]) if rows else "no items yet")
        return
    report = item_status(ledger, item_id)
    if as_json:
        _print_json(report)
        return
    click.echo(f"item {report['id']} ({report['kind']}) {report['state']}: {report['title']}")
    click.echo(f"author {report['author']}, approver {report['approver'] or '-'}")
    rows = [
        [
            d["id"],
            d["channel"],
            d["target"],
            d["state"],
            d["attempts"],
            d["provider_id"] or "",
            (d["last_error"] or "")[:60],
        ]
        for d in report["deliveries"]
    ]
    if rows:
        click.echo(
            table(rows, ["delivery", "channel", "target", "state", "attempts", "provider id", "last error"])
        )


@cli.command()
@click.option("--as", "actor", required=True, help="Name of the operator (recorded in the ledger).")
@click.option("--channel", default=None, help="Only this channel's dead deliveries.")
@click.option("--item", "item_id", type=int, default=None, help="Only this item's dead deliveries.")
@click.option("--failed", is_flag=True, help="Failed deliveries too (overrides a refusal; needs --reason).")
@click.option("--reason", default="", help="Why (kept in the ledger); required with --failed.")
def redrive(actor: str, channel: str | None, item_id: int | None, failed: bool, reason: str) -> None:
    """Give dead (and with --failed, failed) deliveries a fresh retry budget and send them again."""
    from dispatcher.fanout import redrive as redrive_deliveries

    if channel:
        from channels import build_channel

        build_channel(channel, get_settings())  # an unknown name is refused with a suggestion
    redriven = redrive_deliveries(
        _ledger(), get_settings(), actor, channel=channel, item_id=item_id, failed=failed, reason=reason
    )
    click.echo(
        f"re-drove {len(redriven)} {'dead or failed' if failed else 'dead'} deliveries"
        + (f": {', '.join(map(str, redriven))}" if redriven else "")
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def channels(as_json: bool) -> None:
    """Probe every channel: reachable, credentials accepted, how fast."""
    from channels import REGISTRY, build_channel

    settings = get_settings()
    results = []
    for name in REGISTRY:
        try:
            health = build_channel(name, settings).probe()
            results.append(
                {
                    "channel": name,
                    "ok": health.ok,
                    "detail": health.detail,
                    "latency_ms": round(health.latency_ms, 1),
                }
            )
        except DispatchError as exc:
            results.append({"channel": name, "ok": False, "detail": str(exc), "latency_ms": None})
    from dispatcher.circuits import not_closed

    with _ledger().session() as session:
        circuits: list[dict[str, Any]] = [
            {
                "channel": c.channel,
                "target": c.target,
                "state": c.state,
                "failures": c.failures,
                "open_until": c.open_until.isoformat() if c.open_until else None,
                "last_error": c.last_error,
            }
            for c in not_closed(session)
        ]
    if as_json:
        _print_json({"channels": results, "circuits": circuits})
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


@cli.group()
def subscribers() -> None:
    """The SMS subscriber store."""


@subscribers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
def subscribers_import(file: Path) -> None:
    """Import subscribers from a CSV file (phone, areas, topics, consent); bad rows are listed."""
    from dispatcher.subscribers import import_csv

    report = import_csv(_ledger(), file, get_settings().sms)
    for line, problem in report.refused:
        click.echo(f"{file}:{line}: {problem}", err=True)
    click.echo(
        f"imported {report.created + report.updated} subscribers ({report.created} new, "
        f"{report.updated} updated, {report.merged} duplicates merged), refused {len(report.refused)} rows"
    )
    if report.refused:
        sys.exit(1)


@subscribers.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def subscribers_list(as_json: bool) -> None:
    """Every subscriber with areas, topics, consent and opt-out."""
    from sqlalchemy import select

    from dispatcher.ledger import SubscriberRow

    with _ledger().session() as session:
        rows = [
            {
                "phone": s.phone,
                "areas": s.areas,
                "topics": s.topics,
                "consent": s.consent,
                "opted_out_at": s.opted_out_at.isoformat() if s.opted_out_at else None,
            }
            for s in session.scalars(select(SubscriberRow).order_by(SubscriberRow.phone))
        ]
    if as_json:
        _print_json(rows)
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


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default: DISPATCH_API__HOST).")
@click.option("--port", type=int, default=None, help="Port (default: DISPATCH_API__PORT).")
def api(host: str | None, port: int | None) -> None:
    """Serve the callbacks of the SMS gateway (delivery reports, inbound SMS) until interrupted."""
    from dispatcher.api import create_api
    from dispatcher.serving import serve_in_thread

    settings = get_settings()
    host = host or settings.api.host
    if settings.api.token.get_secret_value() == SANDBOX_API_TOKEN:
        click.echo(
            "warning: DISPATCH_API__TOKEN is the sandbox value printed in the README: anyone can send "
            "inbound texts to this API; set your own secret",
            err=True,
        )
    running = serve_in_thread(create_api(settings, _ledger()), host, port or settings.api.port, "api")
    click.echo(f"API on http://{host}:{running.port}; Ctrl-C or SIGTERM stops it")
    wait_for_interrupt()
    running.stop()


def wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass


@cli.command()
@click.option(
    "--port-base",
    type=int,
    default=8101,
    show_default=True,
    help="WordPress, Kannel, signs, Weibo and Mastodon listen on this port and the next four.",
)
def sandbox(port_base: int) -> None:
    """Run the channel emulators on 127.0.0.1 until interrupted."""
    from dispatcher.sandboxes import sandbox_for
    from sandbox.server import NAMES

    ports = {name: port_base + i for i, name in enumerate(NAMES)}
    box = sandbox_for(get_settings(), ports).start()
    for name, url in box.urls.items():
        click.echo(f"{name:10} {url}")
    click.echo("sandbox running; Ctrl-C or SIGTERM stops it")
    wait_for_interrupt()
    box.stop()


@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--beat", is_flag=True, help="Also run the scheduler (the sweeper); run exactly one.")
@click.option("--queues", "-Q", default=None, help="Comma-separated queues (default: all).")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(beat: bool, queues: str | None, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker on the configured broker."""
    from worker import QUEUES, app

    argv = ["worker", "-l", loglevel, "-Q", queues or ",".join(QUEUES)]
    if beat:
        argv.append("-B")
    if concurrency:
        argv += ["-c", str(concurrency)]
    app.worker_main(argv)


@cli.command()
@click.option(
    "--item",
    "item_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Item file to publish (default: examples/warning.yaml).",
)
@click.option("--timeout", type=float, default=90.0, show_default=True)
def demo(item_file: Path | None, timeout: float) -> None:
    """Sandbox, worker, a sample warning approved and fanned out, and a per-channel table."""
    from dispatcher.demo import run_demo

    sys.exit(run_demo(item_file, timeout))


@cli.group("ledger")
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


main = cli

if __name__ == "__main__":
    main()
