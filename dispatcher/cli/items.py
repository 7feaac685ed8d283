"""Items through review and after: ``submit``, ``update``, ``preview``, ``approve``, ``reject``, ``retract``
and ``status``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from dispatcher.cli.invocation import acting_user, broker, get_settings, open_ledger, print_json
from dispatcher.text import table


def stored_id(source: str) -> int | None:
    """The item id SOURCE names, or None when it names a file: digits are an id unless such a file
    exists."""
    return int(source) if source.isdigit() and not Path(source).exists() else None


@click.command()
@click.argument("source")
@click.option("--draft", is_flag=True, help="Store the file as a draft, not yet for review.")
@click.option("--json", "as_json", is_flag=True, help="Print the item as JSON.")
def submit(source: str, draft: bool, as_json: bool) -> None:
    """Store an item file (YAML or JSON) for review and print its id; or submit draft ID. You are its
    author: the file may leave ``author`` out, and may not name someone else.

    A CAP 1.2 alert (a .xml file) is taken in too: an Alert becomes an item, an Update a revision of the
    item the alert it references became, a Cancel withdraws that item at once (that needs an approver)."""
    from dispatcher import approval
    from dispatcher.items import load_item

    ledger = open_ledger()
    item_id = stored_id(source)
    if item_id is None and source.lower().endswith(".xml"):
        submit_alert(Path(source), as_json)
        return
    user = acting_user("submit")
    if item_id is not None:
        approval.submit_draft(ledger, item_id, by=user.name)
        state = "submitted"
    else:
        item_id = approval.submit(ledger, load_item(Path(source), author=user.name), draft=draft)
        state = "draft" if draft else "submitted"
    if as_json:
        print_json({"id": item_id, "state": state})
    else:
        click.echo(item_id)


def submit_alert(path: Path, as_json: bool) -> None:
    from dispatcher.alerts import receive
    from dispatcher.errors import InvalidItemError

    user = acting_user("submit")  # and a Cancel, which withdraws at once, needs an approver too
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidItemError(str(path), [("(file)", "no such file")]) from None
    ledger, settings = open_ledger(), get_settings()
    done = receive(ledger, settings, data, user.name, source=str(path), broker=broker(), allowed=user.require)
    if as_json:
        print_json(done.view())
    elif done.withdrawal is not None:
        click.echo(f"item {done.item_id} withdrawn (CAP Cancel {done.identifier})")
    elif done.revision == 1:
        click.echo(done.item_id)
    else:
        click.echo(f"revision {done.revision} of item {done.item_id} submitted for review (CAP Update)")


@click.command()
@click.argument("item_id", type=int)
@click.option(
    "--cap", "as_cap", is_flag=True, help="As an OASIS CAP 1.2 alert (XML): the one format, so far."
)
@click.option("--revision", type=int, help="The alert of this approved revision (default: the latest).")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write to this file (default: stdout).")
def export(item_id: int, as_cap: bool, revision: int | None, output: Path | None) -> None:
    """Write a warning as a CAP 1.2 alert: Alert, Update for a correction, Cancel once withdrawn."""
    from dispatcher.alerts import export as export_alert

    xml = export_alert(open_ledger(), get_settings(), item_id, revision)
    if output is None:
        click.echo(xml.decode("utf-8"), nl=False)
    else:
        output.write_bytes(xml)
        click.echo(f"item {item_id}: CAP alert written to {output}", err=True)


@click.command()
@click.argument("item_id", type=int)
def approve(item_id: int) -> None:
    """Approve a submitted item: pin its payloads and fan it out (you are never its author)."""
    from dispatcher.approval import approve as approve_item

    approver = acting_user("approve").name
    result = approve_item(open_ledger(), get_settings(), item_id, approver, broker())
    if result.awaiting:
        click.echo(
            f"item {item_id}: approval by {approver} recorded ({len(result.approvers)} of "
            f"{len(result.approvers) + result.awaiting}: a {result.publication.item.severity} warning needs "
            f"{len(result.approvers) + result.awaiting} different approvers); nothing is sent yet"
        )
        return
    summary = ", ".join(f"{name} {count}" for name, count in result.per_channel.items())
    total = len(result.payloads)
    publication = result.publication
    what = f"item {item_id}"
    if publication.stage == "correction":
        what = f"revision {publication.revision} of item {item_id} (a correction)"
    if result.enqueued == total:
        click.echo(f"{what} approved by {', '.join(result.approvers)}: {total} deliveries queued ({summary})")
    else:
        click.echo(
            f"{what} approved by {', '.join(result.approvers)}: {total} deliveries written ({summary}); "
            f"{total - result.enqueued} of them are waiting for the broker, which did not take them — the "
            "sweeper hands them over once it answers"
        )
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


@click.command()
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why the item is rejected.")
def reject(item_id: int, reason: str) -> None:
    """Reject a submitted item."""
    from dispatcher.approval import reject as reject_item

    approver = acting_user("reject").name
    reject_item(open_ledger(), item_id, approver, reason)
    click.echo(f"item {item_id} rejected by {approver}")


@click.command()
@click.argument("item_id", type=int)
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the revision as JSON.")
def update(item_id: int, source: Path, as_json: bool) -> None:
    """Submit a new revision of an item (a correction) for review; print its number.

    It is checked and approved like any item (dispatch approve ID, by someone other than its author,
    who is you); until then the approved revision stands."""
    from dispatcher import approval
    from dispatcher.items import load_item

    number = approval.revise(open_ledger(), item_id, load_item(source, author=acting_user("update").name))
    if as_json:
        print_json({"id": item_id, "revision": number, "state": "submitted"})
    else:
        click.echo(f"revision {number} of item {item_id} submitted for review")


@click.command()
@click.argument("item_id", type=int)
@click.option("--reason", required=True, help="Why it is withdrawn (recorded, and said in the SMS notice).")
@click.option("--json", "as_json", is_flag=True, help="Print what was set in motion as JSON.")
def retract(item_id: int, reason: str, as_json: bool) -> None:
    """Withdraw an item from every channel it reached, at once.

    Deliveries not yet sent are cancelled; the post goes to the trash (or to draft), microblog posts are
    deleted, signs cleared, and a notice is texted to everyone who received the item (settings say)."""
    from dispatcher.withdrawals import retract as retract_item

    actor = acting_user("retract").name
    done = retract_item(open_ledger(), get_settings(), item_id, actor, reason, broker())
    if as_json:
        print_json(done.view())
        return
    parts = (
        ", ".join(f"{name} {count}" for name, count in done.taking_down.items())
        or "nothing had reached a target"
    )
    click.echo(
        f"item {item_id} withdrawn by {actor}: {done.cancelled} unsent deliveries cancelled; "
        f"taking down: {parts}"
    )
    if done.notified:
        click.echo(f"a withdrawal notice goes to {done.notified} phone(s) that received it")


@click.command()
@click.argument("source")
@click.option("--channel", "channel", help="Only this channel.")
@click.option("--json", "as_json", is_flag=True, help="Every payload as JSON.")
def preview(source: str, channel: str | None, as_json: bool) -> None:
    """Render an item file, or a stored item by id, for every channel and target."""
    from dispatcher.items import load_item
    from dispatcher.previews import described, preview_view
    from dispatcher.previews import preview as preview_item

    settings = get_settings()
    item_id = stored_id(source)
    item = item_id if item_id is not None else load_item(Path(source))
    result = preview_item(open_ledger(), settings, item, only=channel)
    if as_json:
        print_json(preview_view(result))
    else:
        for payload, lines in described(settings, result.payloads):
            click.echo(f"── {payload.channel} / {payload.target}")
            for line in lines:
                click.echo(line)
        for problem in result.problems:
            click.echo(f"problem: {problem}", err=True)
        for note in result.notes:
            click.echo(f"note: {note}", err=True)
    if result.problems:
        sys.exit(2)


@click.command()
@click.argument("item_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Items per page.")
@click.option("--before", type=int, default=None, help="Only items older than this id (the next page).")
def status(item_id: int | None, as_json: bool, limit: int, before: int | None) -> None:
    """Items and their deliveries, newest first, a page at a time; with an id, every delivery of that item."""
    from dispatcher.reports import item_status, items_overview

    ledger = open_ledger()
    if item_id is None:
        page = items_overview(ledger, limit=limit, before=before)
        items = page["items"]
        if as_json:
            print_json(page)
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
        print_json(report)
        return
    click.echo(f"item {report['id']} ({report['kind']}) {report['state']}: {report['title']}")
    click.echo(f"author {report['author']}, approver {report['approver'] or '-'}")
    if len(report["revisions"]) > 1 or any(r["approvers"] or r["reason"] for r in report["revisions"]):
        for r in report["revisions"]:
            if r["state"] == "rejected":
                by = f" by {r['reviewer']}" + (f": {r['reason']}" if r["reason"] else "")
            elif r["state"] == "submitted" and r["approvers"]:
                by = f", approved so far by {', '.join(r['approvers'])} (awaiting another approver)"
            else:
                by = f" by {', '.join(r['approvers'])}" if r["approvers"] else ""
            click.echo(f"revision {r['number']} ({r['author']}): {r['state']}{by} — {r['title']}")
    if report["withdrawn"]:
        w = report["withdrawn"]
        at = datetime.fromisoformat(w["at"]).astimezone(ZoneInfo(get_settings().time_zone))
        click.echo(f"withdrawn by {w['by']} at {at:%Y-%m-%d %H:%M:%S%z}: {w['reason']}")
    rows = [
        [
            d["id"],
            d["revision"],
            d["action"],
            d["channel"],
            d["target"],
            d["state"],
            " ".join(f"{n} {state}" for state, n in sorted((d.get("recipients") or {}).items())),
            d["attempts"],
            d["provider_id"] or "",
            (d["last_error"] or "")[:60],
        ]
        for d in report["deliveries"]
    ]
    if rows:
        click.echo(
            table(
                rows,
                [
                    "delivery",
                    "rev",
                    "action",
                    "channel",
                    "target",
                    "state",
                    "phones",
                    "attempts",
                    "provider id",
                    "last error",
                ],
            )
        )
