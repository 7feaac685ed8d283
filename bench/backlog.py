"""Warning latency behind a routine backlog, against the same warnings with no backlog in the same run.

A run starts, under a fresh temporary directory, a ledger, a broker (the embedded one, or a
``redis-server`` of its own on 127.0.0.1), the sandbox emulators (``dispatch sandbox``, in a process of
their own; the microblog account is a Mastodon one, as Weibo takes 30 statuses an hour) and the workers
(``--workers``: by default one worker on every queue with concurrency 2, as the README recommends), and
imports subscribers: N in one district following the topic ``safety``, and 50 in the warnings' district.
Then:

1. the baseline: R rounds of W warnings approved one by one, ``--gap`` seconds apart, each to every
   channel (the website, one SMS batch of 50 phones, two signs, one microblog account: 5 deliveries),
   with nothing else queued;
2. the backlog, queued with the workers stopped: one safety tip to the N subscribers approved in
   batches of one phone, so the broker holds N single-phone SMS deliveries on queue ``sms`` (as a tip
   to N x 100 subscribers in the default batches of 100 would), plus its website post and status;
3. the workers started again and, while the backlog drains, R more rounds of W warnings.

A warning's latency runs from the moment ``approve`` returns to the last of its deliveries sent
(``sent_at`` in the ledger). Each round prints p50, p99 and max, the load average (the machine may be
shared), and behind the backlog how much of it was waiting when the round's first warning was approved
and when its last one was sent, with the routine deliveries sent per second meanwhile (a deployment
that meets the target by starving routine work shows it there). The medians over the rounds are merged
into ``var/bench/latest.json`` under ``backlog.<broker>``. No delivery reports are requested (dlr-mask
0): the API that would receive them is not started.

Run: ``.venv/bin/python bench/backlog.py [--broker embedded|redis] [--backlog 20000] [--rounds 3]
[--warnings 20] [--workers all:2 | urgent:1+rest:2] [--keep]`` (``make bench`` runs both brokers).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common  # bench/, beside this file
from common import RedisServer, free_port, stop_process
from sqlalchemy import delete

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

WARNING_AREA = "110105"
ROUTINE_AREA = "110108"
SIGNS = f"""\
signs:
  - {{id: S1, area: "{WARNING_AREA}", lines: 2, chars_per_line: 12, max_pages: 6, address: S1}}
  - {{id: S2, area: "{WARNING_AREA}", lines: 3, chars_per_line: 16, max_pages: 4, address: S2}}
"""
FINAL = ("sent", "failed", "dead", "expired")
EXPIRES = "2099-01-01T00:00:00+08:00"


class SandboxProcess:
    """The emulators (``dispatch sandbox``) in a process of their own on five free ports of 127.0.0.1.

    Not threads of this process: approving a warning here scans every subscriber in Python, and the
    emulators would wait for the interpreter's lock meanwhile (a peer that stalls for as long as an
    approval takes, which a real gateway or site does not)."""

    def __init__(self, workdir: Path) -> None:
        from sandbox.server import NAMES

        self.ports = dict(zip(NAMES, free_ports(len(NAMES)), strict=True))
        base = self.ports[NAMES[0]]
        argv = [sys.executable, "-m", "dispatcher.cli", "sandbox", "--port-base", str(base)]
        with open(workdir / "sandbox.log", "ab") as log:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **self.environment()},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
            )
        deadline = time.monotonic() + 30
        for port in self.ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        log_path = workdir / "sandbox.log"
                        raise RuntimeError(f"the emulators did not start (see {log_path})") from None
                    time.sleep(0.05)

    def environment(self) -> dict[str, str]:
        """Where the dispatcher finds the emulators. The microblog account is a Mastodon one: Weibo
        takes 30 statuses an hour from an account, fewer than one run's warnings."""
        url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        account = {
            "name": "bench",
            "access_token": "sandbox-mastodon-token",
            "driver": "mastodon",
            "api_base": url["mastodon"],
        }
        return {
            "DISPATCH_WEBSITE__BASE_URL": url["website"],
            "DISPATCH_WEBSITE__PUBLIC_URL": url["website"],
            "DISPATCH_SMS__SENDSMS_URL": f"{url['sms']}/cgi-bin/sendsms",
            "DISPATCH_DISPLAY__HTTP_BASE_URL": url["display"],
            "DISPATCH_MICROBLOG__API_BASE": url["microblog"],
            "DISPATCH_MICROBLOG__ACCOUNTS": json.dumps([account]),
        }

    def stop(self) -> None:
        stop_process(self.process)


def free_ports(count: int) -> list[int]:
    """``count`` consecutive free ports (``dispatch sandbox`` takes a base and the ports after it)."""
    for _ in range(100):
        base = free_port()
        if base + count > 65535:
            continue
        probes = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def worker_specs(text: str) -> list[tuple[str, int]]:
    """``all:2`` or ``urgent:1+rest:2``: (queues, concurrency) of each worker."""
    specs = []
    for part in text.split("+"):
        queues, _, concurrency = part.partition(":")
        if queues not in ("all", "urgent", "rest") or not concurrency.isdigit():
            raise SystemExit(f"--workers: {part!r} is not all:N, urgent:N or rest:N")
        specs.append((queues, int(concurrency)))
    return specs


class LedgerReader:
    """Reads the ledger's deliveries on a plain connection: a read in WAL mode takes no lock, where the
    ledger's own sessions begin IMMEDIATE and would queue behind the workers."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)

    def progress(self, item_ids: list[int]) -> dict[int, tuple[int, int, int, str | None]]:
        """Per item: deliveries, how many are final, how many sent, the last ``sent_at``."""
        marks = ",".join("?" * len(item_ids))
        finals = ",".join(f"'{state}'" for state in FINAL)
        rows = self.db.execute(
            f"SELECT item_id, count(*), sum(state IN ({finals})), sum(state = 'sent'), max(sent_at) "
            f"FROM deliveries WHERE item_id IN ({marks}) GROUP BY item_id",
            item_ids,
        ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def waiting(self, item_id: int) -> int:
        finals = ",".join(f"'{state}'" for state in FINAL)
        query = f"SELECT count(*) FROM deliveries WHERE item_id = ? AND state NOT IN ({finals})"
        return int(self.db.execute(query, (item_id,)).fetchone()[0])

    def close(self) -> None:
        self.db.close()


def ledger_time(text: str) -> datetime:
    """A time as SQLAlchemy keeps it in SQLite (UTC, without its zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_seconds": round(percentile(latencies, 0.5), 3),
        "p99_seconds": round(percentile(latencies, 0.99), 3),
        "max_seconds": round(max(latencies), 3),
    }


@dataclass
class Phase:
    """Warnings approved one by one and how long each took to reach every channel."""

    latencies: list[float] = field(default_factory=list)
    approve_seconds: list[float] = field(default_factory=list)
    not_sent: int = 0
    finished_at: float = 0.0


def warnings_phase(
    count: int,
    gap: float,
    approve: Callable[[int], None],
    submit: Callable[[str], int],
    reader: LedgerReader,
    label: str,
    timeout: float,
) -> Phase:
    phase = Phase()
    ids = [submit(f"{label} {n + 1}") for n in range(count)]
    approved_at: dict[int, datetime] = {}
    started = time.monotonic()
    for n, item_id in enumerate(ids):
        pause = started + n * gap - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        t0 = time.monotonic()
        approve(item_id)
        approved_at[item_id] = datetime.now(UTC)
        phase.approve_seconds.append(time.monotonic() - t0)
    deadline = time.monotonic() + timeout
    while True:
        progress = reader.progress(ids)
        if len(progress) == len(ids) and all(total == final for total, final, _, _ in progress.values()):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{label}: warnings not final after {timeout:.0f} s: {progress}")
        time.sleep(0.1)
    phase.finished_at = time.monotonic()
    polled = datetime.now(UTC)
    for item_id in ids:
        total, _, sent, last = progress[item_id]
        if sent < total or last is None:
            phase.not_sent += 1
            phase.latencies.append((polled - approved_at[item_id]).total_seconds())
        else:
            phase.latencies.append((ledger_time(last) - approved_at[item_id]).total_seconds())
    return phase


def write_subscribers(path: Path, warned: int, routine: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["phone", "areas", "topics", "consent"])
        for n in range(warned):
            out.writerow([f"+86139100{n:05d}", WARNING_AREA, "", "yes"])
        for n in range(routine):
            out.writerow([f"+86137{n:08d}", ROUTINE_AREA, "safety", "yes"])
    return path


def start_workers(spec: str, workdir: Path) -> list[subprocess.Popen[bytes]]:
    """The workers of ``spec`` (see :func:`worker_specs`); the scheduler runs in the first that
    consumes more than ``urgent``."""
    from dispatcher.processes import start_worker
    from dispatcher.tasks import queues

    workers, beat = [], True
    for n, (which, concurrency) in enumerate(worker_specs(spec)):
        chosen = {"all": None, "urgent": "urgent", "rest": ",".join(q for q in queues() if q != "urgent")}
        workers.append(
            start_worker(
                dict(os.environ),
                workdir / f"worker-{n}.log",
                beat=beat and which != "urgent",
                concurrency=concurrency,
                queues=chosen[which],
            )
        )
        beat = beat and which == "urgent"
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    from dispatcher.processes import stop_worker

    while workers:
        stop_worker(workers.pop())


def run_once(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One run, in a fresh directory with its own broker, emulators, ledger and workers: the baseline
    rounds, then the backlog, then the rounds behind it."""
    setup: dict[str, Any] = {}
    rounds: list[dict[str, Any]] = []
    workdir = Path(tempfile.mkdtemp(prefix="dispatch-backlog-"))
    saved = dict(os.environ)
    redis: RedisServer | None = None
    box: SandboxProcess | None = None
    workers: list[subprocess.Popen[bytes]] = []
    ledger: Any = None
    reader: LedgerReader | None = None
    try:
        (workdir / "signs.yaml").write_text(SIGNS, encoding="utf-8")
        os.environ.update(
            {
                "DISPATCH_VAR_DIR": str(workdir / "var"),
                "DISPATCH_DISPLAY__REGISTRY": str(workdir / "signs.yaml"),
                "DISPATCH_SMS__DLR_MASK": "0",
                # The routine backlog is sent whatever the hour, and its phones take many texts a day.
                "DISPATCH_QUIET_HOURS": "{}",
                "DISPATCH_SMS__DAILY_CAP": "1000000",
            }
        )
        if args.broker == "redis":
            redis = RedisServer(workdir)
            os.environ["DISPATCH_BROKER_URL"] = redis.url
        else:
            os.environ.pop("DISPATCH_BROKER_URL", None)

        from dispatcher import approval
        from dispatcher.items import parse_item
        from dispatcher.ledger import Ledger, SubscriberRow
        from dispatcher.subscribers import import_csv
        from dispatcher.tasks import broker_for
        from settings import load_settings

        load_settings()  # makes the secrets in var/ the emulators and the workers then share
        box = SandboxProcess(workdir)
        os.environ.update(box.environment())
        settings = load_settings()
        ledger = Ledger(settings.ledger_url)
        # The tip's subscribers are in the ledger only while the tip is approved, unless asked to
        # stay: then both phases' warnings are approved beside them.
        routine = write_subscribers(workdir / "routine.csv", 0, args.backlog)
        import_csv(ledger, write_subscribers(workdir / "warned.csv", 50, 0), settings.sms)
        if args.keep_subscribers:
            import_csv(ledger, routine, settings.sms)
        broker = broker_for(settings)

        warning = {
            "kind": "warning",
            "body": "基准测试预警正文。",
            "areas": [WARNING_AREA],
            "author": "bench-author",
            "department": "bench",
            "expires": EXPIRES,
            "severity": "Minor",
            "urgency": "Expected",
            "certainty": "Possible",
        }

        def submit(title: str) -> int:
            return approval.submit(ledger, parse_item({**warning, "title": title}))

        def approve(item_id: int) -> None:
            approval.approve(ledger, settings, item_id, "bench-approver", broker)

        reader = LedgerReader(Path(settings.ledger_url.removeprefix("sqlite:///")))
        workers = start_workers(args.workers, workdir)
        # one warning first, so that no round pays the workers' start
        warnings_phase(1, 0, approve, submit, reader, "预热", timeout=120)
        for n in range(args.rounds):
            load = os.getloadavg()[0]
            phase = warnings_phase(args.warnings, args.gap, approve, submit, reader, f"基线{n}", 300)
            rounds.append({"phase": "baseline", **summary(phase.latencies), "not_sent": phase.not_sent})
            rounds[-1]["load_average"] = round(max(load, os.getloadavg()[0]), 1)
            report(rounds[-1])
        # The backlog is queued while no worker runs, so the warnings start behind all of it. (Queued
        # while the workers run, a sweep re-publishes every delivery whose enqueue is still under
        # way: approval marks them enqueued only once the last one is published.)
        stop_workers(workers)
        tip = approval.submit(
            ledger,
            parse_item(
                {
                    "kind": "safety_tip",
                    "title": "防汛安全提示",
                    "body": "汛期请远离河道，注意出行安全。",
                    "channels": ["website", "sms", "microblog"],
                    "areas": [ROUTINE_AREA],
                    "topics": ["safety"],
                    "author": "bench-author",
                    "department": "bench",
                    "expires": EXPIRES,
                }
            ),
        )
        if not args.keep_subscribers:
            import_csv(ledger, routine, settings.sms)
        one_phone = settings.model_copy(update={"sms": settings.sms.model_copy(update={"batch_size": 1})})
        t0 = time.monotonic()
        approval.approve(ledger, one_phone, tip, "bench-approver", broker)
        setup["backlog_approve_seconds"] = round(time.monotonic() - t0, 1)
        setup["routine_subscribers_kept"] = args.keep_subscribers
        if not args.keep_subscribers:
            # Approving a warning scans every subscriber in Python while it holds the ledger's write
            # lock (0.7 s for 20,050 here, during which no worker can claim or record a delivery).
            # The tip's deliveries carry their phones, so its subscribers can go; what is left stands
            # for an audience the database narrows to the warning's area.
            with ledger.session() as session:
                session.execute(delete(SubscriberRow).where(SubscriberRow.phone.like("+86137%")))
        size = setup["backlog_size"] = reader.progress([tip])[tip][0]
        print(f"backlog: {size} deliveries approved in {setup['backlog_approve_seconds']:.0f} s", flush=True)
        workers = start_workers(args.workers, workdir)
        deadline = time.monotonic() + 120
        while reader.waiting(tip) > size - 20:  # the pool is taking the backlog
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not start on the backlog within 120 s")
            time.sleep(0.1)
        warnings_phase(1, 0, approve, submit, reader, "预热", timeout=120)
        for n in range(args.rounds):
            load, waiting, started = os.getloadavg()[0], reader.waiting(tip), time.monotonic()
            phase = warnings_phase(args.warnings, args.gap, approve, submit, reader, f"积压{n}", 300)
            left = reader.waiting(tip)
            rounds.append(
                {
                    "phase": "backlog",
                    **summary(phase.latencies),
                    "not_sent": phase.not_sent,
                    "waiting_at_first_warning": waiting,
                    "waiting_at_last_sent": left,
                    "routine_per_second": round((waiting - left) / (phase.finished_at - started), 1),
                    "approve_median_ms": round(statistics.median(phase.approve_seconds) * 1000, 1),
                    "load_average": round(max(load, os.getloadavg()[0]), 1),
                }
            )
            report(rounds[-1])
    finally:
        stop_workers(workers)
        if reader is not None:
            reader.close()
        if box is not None:
            box.stop()
        if ledger is not None:
            ledger.dispose()
        if redis is not None:
            redis.stop()
        os.environ.clear()
        os.environ.update(saved)
        if args.keep:
            print(f"kept {workdir} (worker logs, ledger, broker)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    return setup, rounds


def report(round_: dict[str, Any]) -> None:
    line = (
        f"  {round_['phase']:8}  p50 {round_['p50_seconds']:5.2f} s  p99 {round_['p99_seconds']:5.2f} s  "
        f"max {round_['max_seconds']:5.2f} s"
    )
    if round_["phase"] == "backlog":
        line += (
            f"  waiting {round_['waiting_at_first_warning']} -> {round_['waiting_at_last_sent']}, "
            f"routine {round_['routine_per_second']:.0f}/s"
        )
    print(f"{line}  (load average {round_['load_average']})", flush=True)


def median_of(rounds: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in rounds), 3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--backlog", type=int, default=20_000, help="routine SMS deliveries queued")
    parser.add_argument("--warnings", type=int, default=20, help="warnings in each phase")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two warnings' approvals")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of warnings in each phase")
    parser.add_argument(
        "--workers", default="all:2", help="all:N (one worker, every queue) or urgent:N+rest:M"
    )
    parser.add_argument(
        "--keep-subscribers",
        action="store_true",
        help="keep the tip's subscribers in the ledger while the warnings are approved",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's directory (logs, ledger)")
    args = parser.parse_args()
    worker_specs(args.workers)
    # stopped by SIGTERM, the run still stops what it started (workers, emulators, Redis)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.broker == "redis" and not shutil.which("redis-server"):
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 1

    print(
        f"broker: {args.broker}, workers {args.workers}, backlog {args.backlog} SMS deliveries, "
        f"{args.rounds} rounds of {args.warnings} warnings {args.gap:g} s apart",
        flush=True,
    )
    setup, rounds = run_once(args)
    base = [r for r in rounds if r["phase"] == "baseline"]
    behind = [r for r in rounds if r["phase"] == "backlog"]
    figures: dict[str, Any] = {
        "workers": args.workers,
        "queue_order": os.environ.get("DISPATCH_QUEUE_ORDER", "urgent_first"),
        "rounds": args.rounds,
        "warnings_per_round": args.warnings,
        **setup,
        **{key: median_of(behind, key) for key in ("p50_seconds", "p99_seconds", "max_seconds")},
        "baseline": {key: median_of(base, key) for key in ("p50_seconds", "p99_seconds", "max_seconds")},
        "waiting_at_first_warning": behind[0]["waiting_at_first_warning"],
        "waiting_at_last_sent": behind[-1]["waiting_at_last_sent"],
        "drained_fraction": round(1 - behind[-1]["waiting_at_last_sent"] / setup["backlog_size"], 3),
        "routine_per_second": median_of(behind, "routine_per_second"),
        "not_sent": sum(r["not_sent"] for r in rounds),
        "load_average_max": max(r["load_average"] for r in rounds),
        "per_round": rounds,
    }
    print(f"medians of {args.rounds} rounds:  p50      p99      max")
    for label, source in (("no backlog", figures["baseline"]), (f"behind {setup['backlog_size']}", figures)):
        print(
            f"  {label:16} {source['p50_seconds']:6.2f} s {source['p99_seconds']:6.2f} s "
            f"{source['max_seconds']:6.2f} s"
        )
    print(
        f"  backlog waiting {figures['waiting_at_first_warning']} at the first warning, "
        f"{figures['waiting_at_last_sent']} when the last was sent; routine "
        f"{figures['routine_per_second']:.0f} deliveries/s meanwhile"
    )
    if figures["not_sent"]:
        print(f"  {figures['not_sent']} warning(s) not sent on every channel", file=sys.stderr)

    common.merge(("backlog", args.broker), figures)
    return 1 if figures["not_sent"] else 0


if __name__ == "__main__":
    sys.exit(main())
