"""``dispatch demo``: the whole flow once, on the embedded broker and the sandbox emulators."""

from __future__ import annotations

import os
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from dispatcher import approval
from dispatcher.items import load_item
from dispatcher.ledger import TERMINAL, Ledger
from dispatcher.processes import start_worker, stop_worker
from dispatcher.reports import item_status
from dispatcher.sandboxes import sandbox_for
from dispatcher.serving import serve_app_in_thread
from dispatcher.subscribers import import_csv, recipient_counts
from dispatcher.tasks import broker_for
from dispatcher.text import table
from dispatcher.web.app import create_app
from settings import PROJECT_DIR, load_settings

#: two people approve: the sample is a Severe warning, which needs two (DISPATCH_APPROVALS_REQUIRED)
APPROVERS = ("陈刚", "王强")
SUBSCRIBERS = PROJECT_DIR / "examples" / "subscribers.csv"


def wait_for_reports(ledger: Ledger, report: dict[str, Any], deadline: float) -> None:
    """Give the gateway's delivery reports a moment to arrive for every sent SMS."""
    sent = [d["id"] for d in report["deliveries"] if d["channel"] == "sms" and d["state"] == "sent"]
    while sent and time.monotonic() < deadline:
        with ledger.session() as session:
            waiting = [
                i for i in sent if set(recipient_counts(session, i)) - {"delivered", "failed", "rejected"}
            ]
        if not waiting:
            return
        time.sleep(0.1)


def received_summary(channel: str, entries: list[dict[str, Any]], target: str) -> str:
    """One line of what the emulator got for this target."""
    if channel == "website":
        posts = {e["post_id"] for e in entries}
        titles = {e["body"].get("title") for e in entries}
        return f"{len(posts)} post(s) #{','.join(map(str, posts))}: {', '.join(map(str, titles))}"
    if channel == "sms":
        text = entries[-1]["text"] if entries else ""
        return f"{len(entries)} text(s) to {len({e['to'] for e in entries})} phones: {text[:22]}…"
    if channel == "display":
        mine = [e for e in entries if e.get("sign") == target and "multi" in e]
        if not mine:
            return "nothing"
        return f"{len(mine[-1]['pages'])} page(s): {mine[-1]['multi'][:34]}…"
    mine = [e for e in entries if e.get("action") in ("share", "post")]
    return f"{len(mine)} status(es): {mine[-1]['status'][:26]}…" if mine else "nothing"


def run_demo(item_file: Path | None, timeout: float) -> int:
    item_file = item_file or PROJECT_DIR / "examples" / "warning.yaml"
    # The demo has a ledger and a broker of its own, made afresh under var/demo: its sample warning
    # never enters the office's ledger (where a sign watch would put it on real signs, and the export
    # would count it), whatever DISPATCH_LEDGER_URL and DISPATCH_BROKER_URL say.
    place = load_settings().var_dir / "demo"
    shutil.rmtree(place, ignore_errors=True)
    os.environ["DISPATCH_VAR_DIR"] = str(place)
    for name in ("DISPATCH_LEDGER_URL", "DISPATCH_BROKER_URL"):
        os.environ.pop(name, None)
    # The worker is another process: what this one sets up reaches it through its environment, and
    # this process reads its own settings again from the same values.
    settings = load_settings()
    ledger = Ledger(settings.ledger_url)
    api = serve_app_in_thread(create_app(settings, ledger), "127.0.0.1", 0, "demo-api")
    os.environ["DISPATCH_API__PUBLIC_URL"] = f"http://127.0.0.1:{api.port}"  # where reports go
    box = sandbox_for(load_settings()).start()
    os.environ.update(box.environment())
    # The office posts on Weibo and on a Mastodon instance: one delivery per account.
    os.environ["DISPATCH_MICROBLOG__ACCOUNTS"] = box.microblog_accounts()
    settings = load_settings()
    log_path = settings.var_dir / "demo-worker.log"
    click.echo("sandbox emulators: " + ", ".join(f"{k} {v}" for k, v in box.urls.items()))
    worker = start_worker(dict(os.environ), log_path, beat=True)
    click.echo(f"worker started (pid {worker.pid}, broker {settings.broker_url}, log {log_path})")
    try:
        imported = import_csv(ledger, SUBSCRIBERS, settings.sms)
        click.echo(
            f"subscribers: {imported.created} new, {imported.updated} updated from {SUBSCRIBERS.name}"
            f" (API for delivery reports on port {api.port})"
        )
        item = load_item(item_file)
        item_id = approval.submit(ledger, item)
        click.echo(f"submitted {item_file.name} as item {item_id} by {item.author}")
        started = time.monotonic()
        for approver in APPROVERS:
            result = approval.approve(ledger, settings, item_id, approver, broker_for(settings))
            if not result.awaiting:
                break
            click.echo(
                f"first approval by {approver} recorded: a {item.severity} warning needs "
                f"{len(result.approvers) + result.awaiting} approvers; nothing is sent yet"
            )
        click.echo(
            f"approved by {', '.join(result.approvers)}: {len(result.payloads)} deliveries written, enqueued"
        )
        for note in result.notes:
            click.echo(f"  note: {note}")
        report = item_status(ledger, item_id)
        while time.monotonic() - started < timeout:
            report = item_status(ledger, item_id)
            if all(d["state"] in {s.value for s in TERMINAL} for d in report["deliveries"]):
                break
            if worker.poll() is not None:
                click.echo(f"the worker stopped (exit {worker.returncode}); see {log_path}", err=True)
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        wait_for_reports(ledger, report, deadline=time.monotonic() + 5)
        report = item_status(ledger, item_id)
        approved_at = report["approved_at"]
        rows = []
        for d in report["deliveries"]:
            taken = "-"
            if d["sent_at"] and approved_at:
                delta = datetime.fromisoformat(d["sent_at"]) - datetime.fromisoformat(approved_at)
                taken = f"{delta.total_seconds():.2f}s"
            emulator = (
                "mastodon" if d["channel"] == "microblog" and d["target"] == "fediverse" else d["channel"]
            )
            entries = box.states[emulator].received
            if d["channel"] == "sms" and d.get("recipients"):
                counts = d["recipients"]
                taken += " (" + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + ")"
            rows.append(
                [
                    d["channel"],
                    d["target"],
                    d["state"],
                    d["attempts"],
                    taken,
                    received_summary(d["channel"], entries, d["target"])
                    if d["state"] == "sent"
                    else (d["last_error"] or "")[:50],
                ]
            )
        click.echo("")
        click.echo(table(rows, ["channel", "target", "state", "tries", "time", "what the emulator received"]))
        click.echo("")
        click.echo(
            f"item {item_id} is {report['state']} after {elapsed:.1f}s. The demo's own ledger stays in "
            f"{settings.var_dir} until the next demo: DISPATCH_VAR_DIR={settings.var_dir} dispatch status "
            f"{item_id} shows it again."
        )
        return 0 if report["state"] == "published" else 1
    finally:
        stop_worker(worker)
        box.stop()
        api.stop()
        ledger.dispose()
