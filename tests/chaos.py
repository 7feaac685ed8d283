"""The fault suite: many items through a real broker and worker while everything goes wrong.

``python -m tests.chaos [--items 300] [--broker embedded|redis|both] [--seed N] [--kills K]``
(``make chaos``) approves items to every channel — warnings to website, SMS batches, signs, a Weibo and
a Mastodon account; safety tips to website, SMS and microblogs — while the emulators answer at random
(from the printed seed) with 5xx, 429 + Retry-After, answers that come too late (before or after the
emulator acted), and dropped connections (before or after acting); the whole worker process group is
killed with SIGKILL at random moments and restarted; on Redis, the broker is restarted once. Meanwhile
items are corrected (a new revision approved) and withdrawn at random moments, whatever their
deliveries are doing.

Then it checks, from the emulators' own records and the ledger: every delivery terminal; none lost
(every ``sent`` delivery's effect is at the emulator, every other has its reason); no duplicate on a
channel that can look up or takes an idempotency key; SMS duplicates only where the ledger records a
repeat the policy allowed; ledger and emulators agree item by item; what each target shows in the end is
the item's latest approved revision, or nothing once it was withdrawn (unless the ledger records why a
takedown could not be done); and nothing of an older revision landed on a target (a post, a sign, an
account, a phone) after a newer one. It prints one table per broker and exits 1, printing the seed, if
an invariant failed.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

RATES = {
    "status503": 0.04,
    "status429": 0.03,
    "delay": 0.015,
    "lost": 0.015,
    "reset": 0.015,
    "reset_after": 0.015,
}
SIGNS = """\
signs:
  - {id: CH-1, area: "110105", lines: 3, chars_per_line: 16, max_pages: 8, address: CH-1}
  - {id: CH-2, area: "110105", lines: 2, chars_per_line: 12, max_pages: 8, address: CH-2}
  - {id: CH-3, area: "110105", lines: 4, chars_per_line: 20, max_pages: 8, address: CH-3}
"""


@dataclass
class Outcome:
    broker: str
    items: int = 0
    deliveries: int = 0
    states: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    broker_restarts: int = 0
    retries: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    allowed_sms_repeats: int = 0
    not_sent_by_policy: list[str] = field(default_factory=list)
    refused_by_channel: list[str] = field(default_factory=list)
    absorbed_repeats: int = 0
    reports_refused: int = 0
    reports_applied: int = 0
    disagreements: list[str] = field(default_factory=list)
    corrections: int = 0
    withdrawals: int = 0
    stopped: int = 0
    #: a target showing an older revision, or anything of a withdrawn item, at the end
    stale: list[str] = field(default_factory=list)
    #: an older revision landing on a target after a newer one
    out_of_order: list[str] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    drain_seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.lost
            or self.duplicates
            or self.disagreements
            or self.stale
            or self.out_of_order
            or self.timed_out
        )


def refusing(app: Any, rng: random.Random, outcome: Outcome, rate: float = 0.05) -> Any:
    """The API's ASGI app, answering 503 to a share of delivery reports before reading them."""

    async def middleware(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == "/sms/dlr" and rng.random() < rate:
            outcome.reports_refused += 1
            await send(
                {"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]}
            )
            await send({"type": "http.response.body", "body": b"refused by the fault suite"})
            return
        await app(scope, receive, send)

    return middleware


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Redis:
    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (`make test` installs it)")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def subscribers_csv(path: Path, count: int) -> None:
    rows = ["phone,areas,topics,consent"]
    rows += [f"+861390000{n:04d},110105,safety,yes" for n in range(count)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def run(broker: str, items: int, seed: int, kills: int, timeout: float) -> Outcome:
    """One broker's run; whatever it started is stopped however it ends."""
    cleanup: list[Any] = []
    try:
        return _run(broker, items, seed, kills, timeout, cleanup)
    finally:
        for stop in reversed(cleanup):
            try:
                stop()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass


def _run(broker: str, items: int, seed: int, kills: int, timeout: float, cleanup: list[Any]) -> Outcome:
    rng = random.Random(f"{seed}/{broker}")
    workdir = Path(tempfile.mkdtemp(prefix=f"dispatch-chaos-{broker}-"))
    outcome = Outcome(broker)
    redis = Redis(workdir) if broker == "redis" else None
    cleanup.append(lambda: shutil.rmtree(workdir, ignore_errors=True))
    if redis:
        redis.start()
        cleanup.append(redis.stop)
    (workdir / "signs.yaml").write_text(SIGNS, encoding="utf-8")
    env = {
        "DISPATCH_VAR_DIR": str(workdir / "var"),
        "DISPATCH_DISPLAY__REGISTRY": str(workdir / "signs.yaml"),
        "DISPATCH_BROKER_POLLING_INTERVAL": "0.02",
        "DISPATCH_LEASE_SECONDS": "8",
        "DISPATCH_SWEEP_INTERVAL": "1",
        "DISPATCH_RETRY_BASE_SECONDS": "0.5",
        "DISPATCH_RETRY_MAX_SECONDS": "4",
        "DISPATCH_MAX_ATTEMPTS": "12",
        # The emulators' slow faults act up to 3 s after the request: a lookup sooner than that after a
        # lost answer must not conclude the request never landed.
        "DISPATCH_PROCESSING_WINDOW": "5",
        "DISPATCH_CIRCUIT_FAILURES": "1000",
        "DISPATCH_SMS__BATCH_SIZE": "20",
        # The suite runs at any hour: routine texts must not wait for the morning, nor for tomorrow's cap.
        "DISPATCH_QUIET_HOURS": "{}",
        "DISPATCH_SMS__DAILY_CAP": "100000",
        "DISPATCH_WORKER_CONCURRENCY": "4",
        **{f"DISPATCH_{c}__TIMEOUT": "2" for c in ("WEBSITE", "SMS", "DISPLAY", "MICROBLOG")},
    }
    os.environ.pop("DISPATCH_BROKER_URL", None)
    if redis:
        env["DISPATCH_BROKER_URL"] = redis.url
    os.environ.update(env)

    from dispatcher import approval
    from dispatcher.items import parse_item
    from dispatcher.ledger import TERMINAL, DeliveryRow, EventRow, ItemRow, Ledger
    from dispatcher.processes import start_worker, stop_worker
    from dispatcher.sandboxes import sandbox_for
    from dispatcher.serving import serve_app_in_thread
    from dispatcher.subscribers import import_csv
    from dispatcher.tasks import broker_for
    from dispatcher.web.app import create_app
    from settings import load_settings

    # The delivery-report path runs too: the API, with a share of its answers refused (503), and a
    # gateway that calls again after a refusal (Kannel's http-request-retry, as the README advises).
    api_rng = random.Random(f"{seed}/{broker}/api")
    api_port = free_port()
    os.environ["DISPATCH_API__PUBLIC_URL"] = f"http://127.0.0.1:{api_port}"
    api_ledger = Ledger(load_settings().ledger_url)
    api = serve_app_in_thread(
        refusing(create_app(load_settings(), api_ledger), api_rng, outcome), "127.0.0.1", api_port, "api"
    )
    cleanup.append(api.stop)
    # Weibo's real limit (30 statuses an hour) would hold 300 items for hours: the suite's account may
    # post freely, and the injected 429s stand for the limits.
    box = sandbox_for(
        load_settings(),
        sms={"http_request_retry": 5, "http_queue_delay": 0.5},
        microblog={"hourly_limit": 100_000},
    ).start()
    cleanup.append(box.stop)
    os.environ.update(box.environment())
    os.environ["DISPATCH_MICROBLOG__ACCOUNTS"] = box.microblog_accounts("weibo", "fedi")
    settings = load_settings()
    ledger = Ledger(settings.ledger_url)
    broker = broker_for(settings)
    subscribers_csv(workdir / "subscribers.csv", 60)
    import_csv(ledger, workdir / "subscribers.csv", settings.sms)
    for name, url in box.urls.items():
        requests.post(
            f"{url}/_sandbox/chaos", json={"rates": RATES, "seconds": 3, "seed": f"{seed}/{name}"}, timeout=5
        ).raise_for_status()

    log = workdir / "worker.log"
    worker = {"process": start_worker(dict(os.environ), log, beat=True, concurrency=4)}
    cleanup.append(lambda: stop_worker(worker["process"]))
    started = time.monotonic()
    expires = "2099-01-01T00:00:00+08:00"
    documents: dict[int, dict[str, Any]] = {}
    for n in range(items):
        warning = n % 2 == 0
        doc: dict[str, Any] = {
            "kind": "warning" if warning else "safety_tip",
            "title": f"演练{n:04d}号{'预警' if warning else '提示'}",
            "body": f"第{n}次故障演练：请忽略本条信息。",
            "areas": ["110105"],
            "author": "演练作者",
            "department": "演练部门",
            "expires": expires,
            "channels": ["website", "sms", "display", "microblog"]
            if warning
            else ["website", "sms", "microblog"],
        }
        if warning:
            doc.update(severity="Minor", urgency="Expected", certainty="Possible")
        else:
            doc["topics"] = ["safety"]
        item_id = approval.submit(ledger, parse_item(doc))
        approval.approve(ledger, settings, item_id, "演练审批", broker)
        documents[item_id] = doc
    outcome.items = items
    # Corrections (about one item in three) and withdrawals (one in seven) at random moments of the drain
    span = max(10.0, items * 0.2)
    changes = sorted(
        [(rng.uniform(0.3, span), "correct") for _ in range(max(1, items * 3 // 10))]
        + [(rng.uniform(0.3, span), "withdraw") for _ in range(max(1, items // 7))]
    )

    stop = threading.Event()

    def killer() -> None:
        # Spread over the whole drain (about a quarter of a second per item here), not its first seconds.
        moments = sorted(rng.uniform(1, max(20.0, items * 0.25)) for _ in range(kills))
        begun = time.monotonic()
        for moment in moments:
            if stop.wait(max(0.0, moment - (time.monotonic() - begun))):
                return
            os.killpg(worker["process"].pid, signal.SIGKILL)  # the whole group: pool, beat and all
            worker["process"].wait()
            outcome.kills += 1
            worker["process"] = start_worker(dict(os.environ), log, beat=True, concurrency=4)
        if redis and not stop.is_set():
            redis.stop()  # SIGKILL; the append-only file brings the queues back
            time.sleep(1)
            redis.start()
            outcome.broker_restarts += 1

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    deadline = started + timeout
    drain_started = time.monotonic()
    while True:
        while changes and time.monotonic() - drain_started >= changes[0][0]:
            _, change = changes.pop(0)
            change_one(change, rng, documents, ledger, settings, broker, outcome)
        with ledger.session() as session:
            states = [s for (s,) in session.query(DeliveryRow.state)]
        if states and all(s in TERMINAL for s in states) and not thread.is_alive() and not changes:
            break
        if time.monotonic() > deadline:
            outcome.timed_out = True
            break
        time.sleep(0.2 if changes else 0.5)
    outcome.drain_seconds = time.monotonic() - started
    stop.set()
    thread.join(timeout=30)
    for url in box.urls.values():
        outcome.faults.update(requests.get(f"{url}/_sandbox/chaos", timeout=5).json()["injected"])
        requests.post(f"{url}/_sandbox/chaos", json={}, timeout=5)
    stop_worker(worker["process"])
    verify(outcome, ledger, box)
    with ledger.session() as session:
        outcome.retries = (
            session.query(EventRow)
            .filter(EventRow.name.in_(["delivery.retrying", "delivery.unknown"]))
            .count()
        )
        outcome.deliveries = session.query(DeliveryRow).count()
        outcome.states = Counter(s.value for (s,) in session.query(DeliveryRow.state))
        outcome.reasons = Counter(
            (d.last_error or "").split(":")[0]
            + (" (policy: do not repeat)" if "not to repeat" in (d.last_error or "") else "")
            for d in session.query(DeliveryRow).filter(DeliveryRow.state.in_(["failed", "dead"]))
        )
        assert session.query(ItemRow).count() == items
    box.stop()
    ledger.dispose()
    if redis:
        redis.stop()
    shutil.rmtree(workdir, ignore_errors=True)
    return outcome


def change_one(
    change: str,
    rng: random.Random,
    documents: dict[int, dict[str, Any]],
    ledger: Any,
    settings: Any,
    broker: Any,
    outcome: Outcome,
) -> None:
    """Correct or withdraw one item still standing, picked at random."""
    from dispatcher import approval
    from dispatcher.errors import ContentError, RefusedError
    from dispatcher.items import parse_item
    from dispatcher.withdrawals import retract

    standing = sorted(documents)
    if not standing:
        return
    item_id = rng.choice(standing)
    try:
        if change == "withdraw":
            retract(ledger, settings, item_id, "演练撤回", f"演练撤回{item_id}", broker)
            del documents[item_id]
            outcome.withdrawals += 1
            return
        outcome.corrections += 1
        doc = dict(documents[item_id])
        doc.update(author="演练更正", body=f"{doc['body']}（第{outcome.corrections}次更正）")
        doc["title"] = f"{doc['title'].split('更正')[0]}更正{outcome.corrections}"
        documents[item_id] = doc
        approval.revise(ledger, item_id, parse_item(doc))
        approval.approve(ledger, settings, item_id, "演练审批", broker)
    except (RefusedError, ContentError) as exc:  # the suite's own slip (an expired item), reported
        print(f"  {change} of item {item_id} refused: {exc}", flush=True)


def order_violations(sequences: dict[str, list[tuple[int, int]]]) -> list[str]:
    """Per target, what landed there in order, as (item, revision): an older revision of an item after a
    newer one is a violation. A pure function, so a test can plant one."""
    found = []
    for target, landed in sequences.items():
        newest: dict[int, int] = {}
        for item, revision in landed:
            if revision < newest.get(item, 0):
                found.append(
                    f"{target}: revision {revision} of item {item} landed after revision {newest[item]}"
                )
            newest[item] = max(newest.get(item, 0), revision)
    return found


def showing_violations(
    showing: dict[str, list[tuple[int, int]]],
    live: dict[int, int | None],
    excused: set[tuple[str, int]],
) -> list[str]:
    """What each target shows at the end, as (item, revision): anything of a withdrawn item (``live`` None)
    or of a revision older than the live one is stale — unless the ledger excuses it (``excused``: the
    (target, item) pairs whose takedown failed or died on the record). Pure, so a test can plant one."""
    found = []
    for target, shown in showing.items():
        for item, revision in shown:
            if (target, item) in excused or item not in live:
                continue
            if live[item] is None:
                found.append(f"{target} still shows revision {revision} of withdrawn item {item}")
            elif revision < live[item]:  # type: ignore[operator]
                found.append(f"{target} shows revision {revision} of item {item}, not revision {live[item]}")
    return found


def verify(outcome: Outcome, ledger: Any, box: Any) -> None:
    """Check the invariants from the emulators' own records (every attempt, absorbed ones included) and
    the ledger. A delivery is *lost* when its effect is absent, unless the channel refused it for good
    or the policy chose not to repeat it (each its own column); a delivery that is not ``sent`` but whose
    effect landed is a *disagreement* (a superseded or cancelled one included); any second copy is a
    *duplicate*, except an SMS repeat the policy decided (at most one per decision, counted). Then what
    each target shows in the end, and the order revisions landed in (``showing_violations``,
    ``order_violations``)."""
    from dispatcher import subscribers
    from dispatcher.ledger import TERMINAL, DeliveryRow, EventRow, ItemRow, ItemState, RecipientRow

    received = {name: state.received for name, state in box.states.items()}
    posts = requests.get(f"{box.urls['website']}/_sandbox/posts", timeout=10).json()
    # A stock site drops unregistered meta: a post is known by the marker in its content.
    marked = re.compile(r"<!-- dispatch:([0-9a-f]{32}) -->")

    def uid_of(post: dict[str, Any]) -> str | None:
        found = marked.search(post["content"]["raw"])
        return found.group(1) if found else None

    live_posts = [p for p in posts if p["status"] != "trash"]
    posts_by_uid = Counter(uid_of(p) for p in live_posts)
    web_writes = [
        r
        for r in received["website"]
        if r["method"] == "POST"
        and r["status"] < 300
        and isinstance(r.get("body"), dict)
        and r["body"].get("content")
    ]
    web_contents = Counter(r["body"]["content"] for r in web_writes)
    web_takedowns = {
        str(r["post_id"])
        for r in received["website"]
        if r["method"] == "DELETE" or (isinstance(r.get("body"), dict) and r["body"].get("status") == "draft")
    }
    activations = [r for r in received["display"] if "multi" in r]
    shown = Counter((r["sign"], r["id"]) for r in activations)
    cleared = {(r["sign"], r["id"]) for r in received["display"] if r.get("cleared")}
    weibo_shares = [r for r in received["microblog"] if r.get("action") == "share"]
    weibo_attempts = Counter(
        r["status"] for r in received["microblog"] if r.get("action") in ("share", "repeat_refused")
    )
    weibo_ids = {r["id"] for r in weibo_shares}
    weibo_texts = {r["status"] for r in weibo_shares}
    weibo_deleted = {r["id"] for r in received["microblog"] if r.get("action") == "destroy"}
    mastodon_posts = [r for r in received["mastodon"] if r.get("action") == "post"]
    mastodon = Counter(r["key"] for r in mastodon_posts)
    mastodon_ids = {r["id"] for r in mastodon_posts}
    mastodon_deleted = {r["id"] for r in received["mastodon"] if r.get("action") == "delete"}
    outcome.absorbed_repeats = sum(1 for r in received["mastodon"] if r.get("action") == "replayed") + sum(
        1 for r in received["display"] if r.get("repeat")
    )
    texts = Counter((r["to"], r["text"]) for r in received["sms"])
    with ledger.session() as session:
        deliveries = session.query(DeliveryRow).all()
        by_id = {d.id: d for d in deliveries}
        revision_of = {d.id: d.revision.number for d in deliveries}
        phones_of = {d.id: subscribers.phones_of(session, d.id) for d in deliveries if d.channel == "sms"}
        decisions = Counter(
            e.delivery_id
            for e in session.query(EventRow).filter(EventRow.name == "delivery.sent")
            if e.detail.get("how") == "repeated"
        )
        uids = {d.id: d.revision.item.uid for d in deliveries if d.channel == "website"}
        item_of_uid = {item.uid: item.id for item in session.query(ItemRow)}
        live = {
            item.id: None
            if item.state is ItemState.withdrawn
            else next(r.number for r in item.revisions if r.id == item.live_revision_id)
            for item in session.query(ItemRow)
        }
        outcome.reports_applied = (
            session.query(RecipientRow).filter(RecipientRow.report_type.is_not(None)).count()
        )
        history: dict[int, list[str]] = {}
        for e in session.query(EventRow).filter(EventRow.delivery_id.is_not(None)).order_by(EventRow.id):
            history.setdefault(e.delivery_id, []).append(
                e.name.removeprefix("delivery.")
                + (f"({e.detail.get('how')})" if e.name == "delivery.sent" else "")
                + (
                    f"[{str(e.detail.get('error', ''))[:40]}]"
                    if e.name in ("delivery.retrying", "delivery.unknown", "delivery.waiting")
                    else ""
                )
            )
    outcome.allowed_sms_repeats = sum(decisions.values())

    def taken_down(d: Any) -> bool:
        """Whether what a withdrawal takes down was taken down (by it, or by another withdrawal of it)."""
        gone = by_id[d.replaces_id]
        if gone.state.value == "dead":
            # What a dead delivery may have left is looked up: found and taken down, or nothing there.
            return d.provider_id is not None or not landed(gone)
        if d.channel == "website":
            return str(gone.provider_id) in web_takedowns
        if d.channel == "display":
            return (d.target, gone.idempotency_key) in cleared
        if d.target == "weibo":
            return str(gone.provider_id) in weibo_deleted
        return str(gone.provider_id) in mastodon_deleted

    def landed(d: Any) -> bool:
        if d.action.value == "withdraw":
            return taken_down(d)
        if d.channel == "website":
            return web_contents[d.payload["content"]] > 0
        if d.channel == "display":
            return shown[(d.target, d.idempotency_key)] > 0
        if d.channel == "microblog" and d.target == "weibo":
            return d.payload["text"] in weibo_texts
        if d.channel == "microblog":
            return mastodon[d.idempotency_key] > 0
        return any(texts[(phone, d.payload["text"])] for phone in phones_of[d.id])

    sms_owner = {}
    for d in deliveries:
        label = f"{d.channel}/{d.target}#{d.id}"
        if d.channel == "sms":
            for phone in phones_of[d.id]:
                sms_owner[(phone, d.payload["text"])] = d.id
        if d.state not in TERMINAL:
            outcome.lost.append(f"{label} never finished ({d.state.value})")
            continue
        effect = landed(d)
        if d.state.value != "sent":
            if effect and d.action.value != "withdraw":
                outcome.disagreements.append(f"{label} is {d.state.value} but it landed: {d.last_error}")
            elif d.state.value in ("superseded", "cancelled"):
                outcome.stopped += 1
            elif "not to repeat" in (d.last_error or ""):
                outcome.not_sent_by_policy.append(label)
            elif d.state.value == "failed":
                outcome.refused_by_channel.append(f"{label}: {d.last_error}")
            else:
                outcome.lost.append(f"{label} {d.state.value}: {d.last_error}")
            continue
        if not effect:
            outcome.lost.append(f"{label}: sent, but nothing arrived")
        elif d.action.value == "withdraw":
            continue
        elif d.channel == "website" and str(d.provider_id) not in {
            str(p["id"]) for p in posts if uid_of(p) == uids[d.id]
        }:
            outcome.disagreements.append(f"{label}: ledger says post {d.provider_id}")
        elif d.channel == "microblog" and d.target == "weibo" and d.provider_id not in weibo_ids:
            outcome.disagreements.append(f"{label}: ledger says status {d.provider_id}")
        elif d.channel == "microblog" and d.target != "weibo" and d.provider_id not in mastodon_ids:
            outcome.disagreements.append(f"{label}: ledger says status {d.provider_id}")
        elif d.channel == "sms":
            for phone in phones_of[d.id]:
                if texts[(phone, d.payload["text"])] == 0:
                    outcome.lost.append(f"{label}: {phone} got nothing")
    outcome.duplicates += [f"website post for item {uid} ×{n}" for uid, n in posts_by_uid.items() if n > 1]
    outcome.duplicates += [f"sign {sign} shown {key[:8]} ×{n}" for (sign, key), n in shown.items() if n > 1]
    outcome.duplicates += [
        f"weibo status ×{n} attempts (repeats refused by Weibo included): {text[:20]}"
        for text, n in weibo_attempts.items()
        if n > 1
    ]
    outcome.duplicates += [f"mastodon key {key[:8]} ×{n}" for key, n in mastodon.items() if n > 1]
    for (phone, text), n in texts.items():
        owner = sms_owner.get((phone, text))
        if n > 1 + decisions.get(owner, 0):
            outcome.duplicates.append(
                f"sms to {phone} ×{n} with {decisions.get(owner, 0)} repeat decision(s) (delivery {owner}: "
                f"{' → '.join(history.get(owner or 0, []))})"
            )

    # What each revision looks like at each peer, to read the emulators' records by revision
    showing_delivery = [d for d in deliveries if d.action.value in ("publish", "update", "follow_up")]
    web_rev = {
        d.payload["content"]: (d.item_id, revision_of[d.id])
        for d in showing_delivery
        if d.channel == "website"
    }
    key_rev = {d.idempotency_key: (d.item_id, revision_of[d.id]) for d in showing_delivery}
    weibo_rev = {
        d.payload["text"]: (d.item_id, revision_of[d.id]) for d in showing_delivery if d.target == "weibo"
    }
    sms_rev = {d.payload["text"]: (d.item_id, revision_of[d.id]) for d in deliveries if d.channel == "sms"}
    sequences: dict[str, list[tuple[int, int]]] = {}
    for r in web_writes:
        if r["body"]["content"] in web_rev:
            sequences.setdefault(f"website/post {r['post_id']}", []).append(web_rev[r["body"]["content"]])
    for r in activations:
        if r["id"] in key_rev:
            sequences.setdefault(f"display/{r['sign']}", []).append(key_rev[r["id"]])
    for r in weibo_shares:
        if r["status"] in weibo_rev:
            sequences.setdefault("microblog/weibo", []).append(weibo_rev[r["status"]])
    for r in mastodon_posts:
        if r["key"] in key_rev:
            sequences.setdefault("microblog/fedi", []).append(key_rev[r["key"]])
    for r in received["sms"]:
        if r["text"] in sms_rev:
            sequences.setdefault(f"sms/{r['to']}", []).append(sms_rev[r["text"]])
    outcome.out_of_order += order_violations(sequences)

    # What each target shows in the end: the site's posts, what each sign holds, and on each microblog
    # account the newest post of each item (a correction follows the original up; the original stays)
    final: dict[str, list[tuple[int, int]]] = {"website/site": []}
    for post in live_posts:
        content = post["content"]["raw"]
        item = item_of_uid.get(uid_of(post) or "")
        found = next((rev for text, rev in web_rev.items() if text == content), None)
        if item is not None:
            final["website/site"].append(found or (item, 0))
    for sign, key in set(shown) - cleared:
        if key in key_rev:
            final.setdefault(f"display/{sign}", []).append(key_rev[key])
    for account, shares in (
        (
            "microblog/weibo",
            [(r["id"], weibo_rev.get(r["status"])) for r in weibo_shares if r["id"] not in weibo_deleted],
        ),
        (
            "microblog/fedi",
            [(r["id"], key_rev.get(r["key"])) for r in mastodon_posts if r["id"] not in mastodon_deleted],
        ),
    ):
        newest: dict[int, tuple[int, int]] = {}
        for _, rev in shares:
            if rev is not None:
                newest[rev[0]] = rev  # records are in the order the posts were made
        final[account] = list(newest.values())
    # The event log, written by every process at once, is one unbroken chain
    from dispatcher.ledger import verify_chain

    with ledger.session() as session:
        checked, broken, _ = verify_chain(session)
    if broken is not None:
        outcome.disagreements.append(f"the event log's chain breaks at event {broken} after {checked}")
    excused = {
        (f"{d.channel}/{d.target}", d.item_id)
        for d in deliveries
        if d.state.value in ("failed", "dead", "expired") and d.channel != "sms"
    }
    outcome.stale += showing_violations(final, live, excused)


def table(outcomes: list[Outcome]) -> str:
    rows = [
        ("items", lambda o: o.items),
        ("deliveries", lambda o: o.deliveries),
        (
            "  sent / failed / dead / expired",
            lambda o: (
                f"{o.states['sent']} / {o.states['failed']} / {o.states['dead']} / {o.states['expired']}"
            ),
        ),
        ("faults injected", lambda o: sum(o.faults.values())),
        *[(f"  {name}", (lambda n: lambda o: o.faults.get(n, 0))(name)) for name in sorted(RATES)],
        ("worker kills (SIGKILL)", lambda o: o.kills),
        ("broker restarts", lambda o: o.broker_restarts),
        ("retries", lambda o: o.retries),
        ("lost", lambda o: len(o.lost)),
        ("duplicates", lambda o: len(o.duplicates)),
        ("SMS repeats decided by policy", lambda o: o.allowed_sms_repeats),
        ("not sent, by policy", lambda o: len(o.not_sent_by_policy)),
        ("refused by the channel", lambda o: len(o.refused_by_channel)),
        ("repeats absorbed by idempotency", lambda o: o.absorbed_repeats),
        ("delivery reports refused / applied", lambda o: f"{o.reports_refused} / {o.reports_applied}"),
        ("ledger/emulator disagreements", lambda o: len(o.disagreements)),
        ("corrections / withdrawals made", lambda o: f"{o.corrections} / {o.withdrawals}"),
        ("  deliveries superseded or cancelled", lambda o: o.stopped),
        ("  stale at the end", lambda o: len(o.stale)),
        ("  older revision after a newer", lambda o: len(o.out_of_order)),
        ("time to drain", lambda o: f"{o.drain_seconds:.1f}s" + (" (timed out)" if o.timed_out else "")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{'':{width}}  " + "  ".join(f"{o.broker:>16}" for o in outcomes)]
    for label, value in rows:
        lines.append(f"{label:{width}}  " + "  ".join(f"{str(value(o)):>16}" for o in outcomes))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fault-injection suite for the dispatcher.")
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--broker", choices=["embedded", "redis", "both"], default="both")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=1500)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**6)
    # SIGTERM unwinds like Ctrl-C, so the worker, emulators and Redis started here are stopped.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    print(f"seed {seed}", flush=True)
    brokers = ["embedded", "redis"] if args.broker == "both" else [args.broker]
    outcomes = [run(broker, args.items, seed, args.kills, args.timeout) for broker in brokers]
    print(table(outcomes))
    for outcome in outcomes:
        for reason, count in outcome.reasons.most_common():
            print(f"  {outcome.broker}: {count} not sent — {reason}")
    failed = [o for o in outcomes if not o.ok]
    for outcome in failed:
        problems = (
            outcome.lost + outcome.duplicates + outcome.disagreements + outcome.stale + outcome.out_of_order
        )
        for problem in problems[:20]:
            print(f"  {outcome.broker}: {problem}")
    if failed:
        print(f"FAILED: invariants broken; rerun with --seed {seed}")
        return 1
    print(f"all invariants hold (seed {seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
