"""Fan-out throughput, measured against its baseline in the same run.

Starts the sandbox emulators and one worker (with the scheduler) on a fresh ledger and broker under a
temporary directory, then measures:

1. the baseline: N no-op Celery tasks (``celery.accumulate``) through the same broker and worker,
   from the first publish until the queue is drained;
2. the dispatcher: items submitted and approved (each to all four channels: 5 deliveries), from the
   first approval until every delivery is terminal in the ledger; and the approval latency.

It prints both rates and their ratio, so a change in the dispatcher's own cost shows whatever the
machine's speed that day. Run: ``.venv/bin/python bench/fanout.py [--items 60] [--broker redis://…]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

SIGNS = """\
signs:
  - {id: S1, area: "110105", lines: 2, chars_per_line: 12, max_pages: 6, address: S1}
  - {id: S2, area: "110105", lines: 3, chars_per_line: 16, max_pages: 4, address: S2}
"""


def queue_depth(broker_url: str) -> int:
    if broker_url.startswith("sqla+sqlite:///"):
        path = broker_url.removeprefix("sqla+sqlite:///")
        try:
            with sqlite3.connect(path, timeout=30) as db:
                return db.execute("SELECT count(*) FROM kombu_message WHERE visible = 1").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
    import redis

    client = redis.Redis.from_url(broker_url)
    return sum(client.llen(name) for name in ("control", "urgent", "website", "sms", "display", "microblog"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--broker", default=None, help="broker URL (default: the embedded one)")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    (workdir / "signs.yaml").write_text(SIGNS, encoding="utf-8")
    os.environ.update(
        {
            "DISPATCH_VAR_DIR": str(workdir / "var"),
            "DISPATCH_DISPLAY__REGISTRY": str(workdir / "signs.yaml"),
            "DISPATCH_WORKER_CONCURRENCY": str(args.concurrency),
        }
    )
    if args.broker:
        os.environ["DISPATCH_BROKER_URL"] = args.broker

    from dispatcher import approval
    from dispatcher.items import parse_item
    from dispatcher.ledger import TERMINAL, DeliveryRow, Ledger
    from dispatcher.processes import start_worker, stop_worker
    from dispatcher.sandboxes import sandbox_for
    from dispatcher.subscribers import import_csv
    from dispatcher.tasks import broker_for
    from settings import load_settings

    box = sandbox_for(load_settings()).start()
    os.environ.update(box.environment())
    settings = load_settings()
    ledger = Ledger(settings.ledger_url)
    phones = "\n".join(f"+86139100{n:05d},110105,,yes" for n in range(50))
    (workdir / "subscribers.csv").write_text(f"phone,areas,topics,consent\n{phones}\n", encoding="utf-8")
    import_csv(ledger, workdir / "subscribers.csv", settings.sms)
    worker = start_worker(dict(os.environ), workdir / "worker.log", beat=True, concurrency=args.concurrency)
    try:
        broker = broker_for(settings)
        app = broker.app
        noops = args.items * 5
        time.sleep(3)  # let the worker connect, so neither run pays its start-up
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for _ in range(noops):
                app.send_task("celery.accumulate", args=[1], queue="control", producer=producer)
        while queue_depth(settings.broker_url) > 0:
            time.sleep(0.02)
        baseline = noops / (time.monotonic() - started)

        document = {
            "kind": "warning",
            "title": "基准测试预警",
            "body": "基准测试正文。",
            "areas": ["110105"],
            "author": "bench-author",
            "department": "bench",
            "expires": "2099-01-01T00:00:00+08:00",
            "severity": "Minor",
            "urgency": "Expected",
            "certainty": "Possible",
        }
        ids = [
            approval.submit(ledger, parse_item({**document, "title": f"基准测试预警 {n}"}))
            for n in range(args.items)
        ]
        approve_ms = []
        started = time.monotonic()
        for item_id in ids:
            t0 = time.monotonic()
            approval.approve(ledger, settings, item_id, "bench-approver", broker)
            approve_ms.append((time.monotonic() - t0) * 1000)
        while True:
            with ledger.session() as session:
                states = [row.state for row in session.query(DeliveryRow.state)]
            if all(state in TERMINAL for state in states):
                break
            if time.monotonic() - started > 600:
                print("gave up after 600 s", file=sys.stderr)
                return 1
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        rate = len(states) / elapsed
    finally:
        stop_worker(worker)
        box.stop()
        ledger.dispose()
        shutil.rmtree(workdir, ignore_errors=True)

    broker = "redis" if settings.broker_url.startswith("redis") else "embedded (SQLite)"
    print(f"broker: {broker}, concurrency {args.concurrency}, {args.items} items, {len(states)} deliveries")
    print(f"baseline  no-op tasks          {baseline:8.1f} tasks/s")
    print(f"dispatch  deliveries           {rate:8.1f} deliveries/s   ({elapsed:.1f} s to drain)")
    print(f"ratio     deliveries / no-ops  {rate / baseline:8.2f}")
    print(
        f"approval  median {statistics.median(approve_ms):.1f} ms, max {max(approve_ms):.1f} ms "
        f"(render + pin + write 5 deliveries + enqueue)"
    )
    key = "redis" if broker == "redis" else "embedded"
    out = Path(__file__).resolve().parent.parent / "var" / "bench" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    latest = json.loads(out.read_text()) if out.exists() else {}
    latest.setdefault("fanout", {})[key] = {
        "items": args.items,
        "deliveries": len(states),
        "baseline_tasks_per_second": round(baseline, 1),
        "deliveries_per_second": round(rate, 1),
        "ratio": round(rate / baseline, 3),
        "approval_median_ms": round(statistics.median(approve_ms), 1),
    }
    out.write_text(json.dumps(latest, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
