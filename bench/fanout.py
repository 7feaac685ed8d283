"""Fan-out throughput, measured against its baseline in the same run; the median of three runs.

Starts the sandbox emulators once, then for each run one worker (with the scheduler) on a fresh
ledger and broker, and measures:

1. the baseline: N no-op Celery tasks (``celery.accumulate``) through the same broker and worker,
   from the first publish until the queue is drained;
2. the dispatcher: items submitted and approved (each to all four channels: 5 deliveries), their
   tasks held back while they are approved, then published at once as the baseline's are; timed from
   that first publish until every delivery is terminal in the ledger. Approving is timed on its own.

Each run prints both rates and their ratio, so a change in the dispatcher's own cost shows whatever
the machine's speed that day; the medians of the runs are printed last and merged into
``var/bench/latest.json`` under ``fanout.<embedded|redis>``. ``--broker redis`` starts a
``redis-server`` of its own on 127.0.0.1 (no persistence) and stops it at the end; ``--broker
redis://…`` uses a running one. ``--profile`` records each of the worker's pool processes with
py-spy during the dispatcher's part of the last run (idle time included) and prints where it went.

Run: ``.venv/bin/python bench/fanout.py [--items 60] [--runs 3] [--broker embedded|redis|redis://…]``.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # bench/, beside this file
from common import PROJECT, SIGNS, RedisServer

sys.path.insert(0, str(PROJECT))

DOCUMENT = {
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


class Held:
    """The outbox's broker while items are approved: it takes their tasks and publishes none yet, so the
    fan-out is timed from its first publish, as the baseline is (and approving is timed apart)."""

    def __init__(self) -> None:
        self.work: list[tuple[int, str]] = []

    def publish(self, work: list[tuple[int, str]]) -> list[int]:
        self.work += work
        return [delivery_id for delivery_id, _ in work]

    def depths(self, queues: set[str]) -> dict[str, int | None]:
        return dict.fromkeys(queues, 0)

    def tidy(self) -> None:
        pass


def worker_children(worker_pid: int) -> list[int]:
    """The worker's child processes: its pool, and the beat (told apart by its stacks afterwards)."""
    found = subprocess.run(["pgrep", "-P", str(worker_pid)], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


def spy(pids: list[int], out: Path) -> list[tuple[subprocess.Popen[bytes], Path]]:
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    spies = []
    for pid in pids:
        path = out / f"pool-{pid}.txt"
        argv = [binary, "record", "--pid", str(pid), "--idle", "--rate", "250", "--format", "raw"]
        process = subprocess.Popen(
            [*argv, "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        spies.append((process, path))
    time.sleep(1)  # py-spy attaches
    return spies


def kind_of(leaf: str) -> str:
    """What a sampled stack was doing at its innermost frame."""
    if "billiard/" in leaf:
        return "waiting for a task"
    if "sqlalchemy/engine/default.py" in leaf or "sqlite3" in leaf:
        return "in SQLite (queries, commits, waits for its lock)"
    if "socket.py" in leaf or "urllib3/util/connection.py" in leaf or "selectors.py" in leaf:
        return "on the network (HTTP to the emulators, the broker)"
    return "running Python"


def summarise(paths: list[Path], top: int = 16) -> list[str]:
    """Where the pool's sampled time went: by what the innermost frame was doing, then by each of the
    project's functions (inclusive: its callees count), with the part of it spent in SQLite."""
    total = 0
    kinds: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    ours_sql: collections.Counter[str] = collections.Counter()
    for path in paths:
        text = path.read_text() if path.exists() else ""
        if "celery/beat.py" in text:  # the scheduler's process, not one of the pool
            continue
        for line in text.splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            kind = kind_of(frames[-1])
            total += n
            kinds[kind] += n
            seen = set()
            for frame in frames:
                where = frame[frame.find("(") + 1 : frame.rfind(":")]
                if where.startswith(("dispatcher/", "channels/")) and not where.startswith("dispatcher/cli"):
                    label = f"{frame.split(' (')[0]} ({where})"
                    if label not in seen:
                        seen.add(label)
                        ours[label] += n
                        if kind.startswith("in SQLite"):
                            ours_sql[label] += n
    if not total:
        return ["(no samples)"]
    lines = [f"{100 * n / total:5.1f} %  {kind}" for kind, n in kinds.most_common()]
    lines.append("of which, in the project's functions (and what they call):")
    lines += [
        f"{100 * n / total:5.1f} %  {label}   [{100 * ours_sql[label] / total:.1f} % in SQLite]"
        for label, n in ours.most_common(top)
    ]
    return lines


def one_run(
    args: argparse.Namespace, run: int, workdir: Path, broker_url: str | None, profile: Path | None
) -> dict[str, Any]:
    """One worker on a fresh ledger and broker: the baseline, then the dispatcher."""
    rundir = workdir / f"run-{run}"
    rundir.mkdir()
    os.environ["DISPATCH_LEDGER_URL"] = f"sqlite:///{rundir / 'ledger.sqlite'}"
    os.environ["DISPATCH_BROKER_URL"] = broker_url or f"sqla+sqlite:///{rundir / 'broker.sqlite'}"
    if broker_url:
        import redis

        redis.Redis.from_url(broker_url).flushall()

    from sqlalchemy import func, select

    from dispatcher import approval
    from dispatcher.items import parse_item
    from dispatcher.ledger import TERMINAL, DeliveryRow, DeliveryState, Ledger
    from dispatcher.processes import start_worker, stop_worker
    from dispatcher.subscribers import import_csv
    from dispatcher.tasks import broker_for
    from settings import load_settings

    settings = load_settings()
    ledger = Ledger(settings.ledger_url)
    import_csv(ledger, workdir / "subscribers.csv", settings.sms)
    worker = start_worker(dict(os.environ), rundir / "worker.log", beat=True, concurrency=args.concurrency)
    spies: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        broker = broker_for(settings)
        app = broker.app

        open_states = ", ".join(f"'{state.value}'" for state in DeliveryState if state not in TERMINAL)
        unfinished_sql = f"SELECT count(*) FROM deliveries WHERE state IN ({open_states})"

        def unfinished() -> int:
            # A plain read: the ledger's own sessions begin IMMEDIATE, taking the write lock the
            # workers need, and polling with them would slow down what is measured.
            with sqlite3.connect(f"file:{rundir / 'ledger.sqlite'}?mode=ro", uri=True, timeout=30) as db:
                return db.execute(unfinished_sql).fetchone()[0]

        def drain(what: str, done: Any) -> float:
            started = time.monotonic()
            while not done():
                if time.monotonic() - started > 600:
                    raise SystemExit(
                        f"{what}: gave up after 600 s (the worker's log: {rundir / 'worker.log'})"
                    )
                time.sleep(0.01)
            return time.monotonic()

        # Warm up: the pool processes connect, open the ledger and build their adapters, and neither
        # measurement pays for it.
        warm = approval.submit(ledger, parse_item({**DOCUMENT, "title": "基准测试预警 预热"}))
        with app.producer_or_acquire() as producer:
            for _ in range(20):
                app.send_task("celery.accumulate", args=[1], queue="control", producer=producer)
        approval.approve(ledger, settings, warm, "bench-approver", broker)
        drain("warm-up", lambda: unfinished() == 0 and queue_depth(settings.broker_url) == 0)

        noops = args.items * 5
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for _ in range(noops):
                app.send_task("celery.accumulate", args=[1], queue="control", producer=producer)
        baseline = noops / (drain("baseline", lambda: queue_depth(settings.broker_url) == 0) - started)

        ids = [
            approval.submit(ledger, parse_item({**DOCUMENT, "title": f"基准测试预警 {n}"}))
            for n in range(args.items)
        ]
        held = Held()
        approve_ms = []
        for item_id in ids:
            t0 = time.monotonic()
            approval.approve(ledger, settings, item_id, "bench-approver", held)
            approve_ms.append((time.monotonic() - t0) * 1000)
        if profile is not None:
            spies = spy(worker_children(worker.pid), profile)
        started = time.monotonic()
        published = broker.publish(held.work)
        assert len(published) == len(held.work), "the broker took only some of the tasks"
        elapsed = drain("dispatcher", lambda: unfinished() == 0) - started
        with ledger.session() as session:
            states = dict(
                session.execute(select(DeliveryRow.state, func.count()).group_by(DeliveryRow.state)).all()
            )
    finally:
        for process, _ in spies:
            process.send_signal(signal.SIGINT)
        for process, _ in spies:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_worker(worker)
        ledger.dispose()
    deliveries = len(held.work)
    rate = deliveries / elapsed
    ended = ", ".join(f"{count} {state.value}" for state, count in sorted(states.items()))
    print(
        f"run {run}: no-ops {baseline:7.1f}/s   deliveries {rate:7.1f}/s   ratio {rate / baseline:5.2f}   "
        f"({deliveries} deliveries in {elapsed:.2f} s: {ended}; approval median "
        f"{statistics.median(approve_ms):.1f} ms)",
        flush=True,
    )
    return {
        "baseline_tasks_per_second": round(baseline, 1),
        "deliveries_per_second": round(rate, 1),
        "ratio": round(rate / baseline, 3),
        "approval_median_ms": round(statistics.median(approve_ms), 1),
        "deliveries": deliveries,
        "spied": [str(path) for _, path in spies],
    }


def merge(key: str, figures: dict[str, Any]) -> Path:
    """Keep ``fanout.<key>`` in var/bench/latest.json beside every other benchmark's figures."""
    return common.merge(("fanout", key), figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--broker",
        default="embedded",
        help="embedded (default), redis (a server of its own) or a redis:// URL",
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="py-spy the pool during the last run")
    parser.add_argument("--keep", action="store_true", help="keep the runs' ledgers and worker logs")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dispatch-bench-"))
    redis_server = None
    broker_url = None
    if args.broker == "redis":
        redis_server = RedisServer(workdir)
        broker_url = redis_server.url
    elif args.broker != "embedded":
        broker_url = args.broker
    key = "redis" if broker_url else "embedded"
    (workdir / "signs.yaml").write_text(SIGNS, encoding="utf-8")
    phones = "\n".join(f"+86139100{n:05d},110105,,yes" for n in range(50))
    (workdir / "subscribers.csv").write_text(f"phone,areas,topics,consent\n{phones}\n", encoding="utf-8")
    os.environ.update(
        {
            "DISPATCH_VAR_DIR": str(workdir / "var"),
            "DISPATCH_DISPLAY__REGISTRY": str(workdir / "signs.yaml"),
            "DISPATCH_WORKER_CONCURRENCY": str(args.concurrency),
        }
    )
    profile = PROJECT / "var" / "bench" / f"profile-{key}" if args.profile else None
    if profile is not None:
        shutil.rmtree(profile, ignore_errors=True)
        profile.mkdir(parents=True)

    from dispatcher.sandboxes import sandbox_for
    from settings import load_settings

    # Weibo's hourly posting limit (30 per account) would make the fan-out wait for the next hour.
    box = sandbox_for(load_settings(), microblog={"hourly_limit": 10**9}).start()
    os.environ.update(box.environment())
    print(
        f"broker: {key}, concurrency {args.concurrency}, {args.items} items (5 deliveries each), "
        f"{args.runs} runs",
        flush=True,
    )
    runs = []
    try:
        for run in range(1, args.runs + 1):
            last = run == args.runs
            runs.append(one_run(args, run, workdir, broker_url, profile if last else None))
    finally:
        box.stop()
        if redis_server is not None:
            redis_server.stop()
        if args.keep:
            print(f"ledgers and worker logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    def median(name: str) -> float:
        return round(statistics.median(r[name] for r in runs), 3)

    figures = {
        "items": args.items,
        "deliveries": runs[0]["deliveries"],
        "concurrency": args.concurrency,
        "runs": [{k: v for k, v in r.items() if k not in ("deliveries", "spied")} for r in runs],
        "baseline_tasks_per_second": median("baseline_tasks_per_second"),
        "deliveries_per_second": median("deliveries_per_second"),
        "ratio": median("ratio"),
        "approval_median_ms": median("approval_median_ms"),
    }
    print(
        f"median of {len(runs)}: no-ops {figures['baseline_tasks_per_second']:.1f}/s, deliveries "
        f"{figures['deliveries_per_second']:.1f}/s, ratio {figures['ratio']:.2f} (each run's ratio "
        f"against its own baseline), approval {figures['approval_median_ms']:.1f} ms"
    )
    print(f"kept in {merge(key, figures).relative_to(PROJECT)} under fanout.{key}")
    if profile is not None:
        print(f"\nprofile of the pool processes while the deliveries drained (raw stacks in {profile}):")
        for line in summarise(sorted(profile.glob("pool-*.txt"))):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
