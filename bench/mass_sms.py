"""One warning to a whole subscriber store: approval, the SMS fan-out, the other channels beside it.

Starts the sandbox emulators (the SMS gateway answers at once and calls the delivery reports back), the
API (``dispatch serve``, which takes those reports) and one worker (concurrency 2, with the scheduler),
each in a process of its own, on a fresh ledger and broker under a temporary directory. It writes N
subscribers straight into the ledger (the import is measured by ``bench/subscribers.py``), then
approves one warning to all of them and to every other channel with ``dispatch approve`` in a process
of its own, and measures:

- ``approve_seconds`` and the approving process's peak memory;
- ``seconds``: approval → the last SMS batch accepted by the gateway (its delivery recorded sent);
- ``other_channels_seconds``: approval → the warning's last delivery on any other channel sent;
- the peak memory of each process (approval, the worker and its pool, the API);
- the ledger's growth per recipient, and how many delivery reports were applied by the end.

The baseline printed beside it is the same warning to the 50 subscribers of a small store, in the
same run. Run: ``.venv/bin/python bench/mass_sms.py [--subscribers 1000000] [--broker embedded|redis|URL]
[--batch-size 100]`` (``redis`` starts a redis-server of its own on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # bench/, beside this file
from common import PROJECT, SIGNS, RedisServer

sys.path.insert(0, str(PROJECT))
WARNING = {
    "kind": "warning",
    "title": "朝阳区暴雨红色预警",
    "body": "未来3小时朝阳区将出现特大暴雨，请立即停止户外活动，远离低洼地带。",
    "areas": ["110105"],
    "author": "bench-author",
    "department": "bench",
    "expires": "2099-01-01T00:00:00+08:00",
    "severity": "Severe",
    "urgency": "Immediate",
    "certainty": "Likely",
}


def peak_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM), in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def group_peaks(pgid: int) -> dict[int, float]:
    """Peak memory of every process of a process group (a worker and its pool), by pid."""
    peaks = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    peaks[int(entry.name)] = peak_mb(int(entry.name))
            except OSError:
                continue
    return peaks


def write_subscribers(ledger: Any, count: int) -> None:
    """``count`` subscribers in Chaoyang (110105), written in bulk slices."""
    from sqlalchemy import insert

    from dispatcher.ledger import SubscriberRow, utcnow

    now = utcnow()
    for start in range(0, count, 50_000):
        rows = [
            {
                "phone": f"+86139{n:08d}",
                "areas": ["110105"],
                "topics": ["weather"],
                "consent": True,
                "source": "bench",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(start, min(count, start + 50_000))
        ]
        with ledger.session() as session:
            session.execute(insert(SubscriberRow.__table__), rows)  # type: ignore[arg-type]


def ledger_bytes(var_dir: Path) -> int:
    return sum(p.stat().st_size for p in var_dir.glob("ledger.sqlite*"))


def run_once(subscribers: int, broker: str, bound: float, batch_size: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="dispatch-mass-"))
    (workdir / "signs.yaml").write_text(SIGNS, encoding="utf-8")
    env = dict(os.environ)
    env.update(
        {
            "DISPATCH_VAR_DIR": str(workdir / "var"),
            "DISPATCH_DISPLAY__REGISTRY": str(workdir / "signs.yaml"),
            "DISPATCH_WORKER_CONCURRENCY": "2",
            "DISPATCH_SMS__BATCH_SIZE": str(batch_size),
            # The gateway emulator keeps counts, not a record of every phone.
            "SANDBOX_SMS_RECORD": "counts",
        }
    )
    redis_server = None
    if broker == "redis":
        redis_server = RedisServer(workdir)
        env["DISPATCH_BROKER_URL"] = redis_server.url
    elif broker != "embedded":
        env["DISPATCH_BROKER_URL"] = broker
    os.environ.update(env)

    from sqlalchemy import func, select

    from dispatcher import approval, identity
    from dispatcher.items import parse_item
    from dispatcher.ledger import TERMINAL, DeliveryRow, Ledger, RecipientRow
    from dispatcher.processes import start_worker, stop_worker
    from dispatcher.sandboxes import sandbox_for
    from settings import load_settings

    settings = load_settings()
    box = sandbox_for(settings).start()
    env.update(box.environment())
    api_port = 18000 + os.getpid() % 1000
    env["DISPATCH_API__PUBLIC_URL"] = f"http://127.0.0.1:{api_port}"
    os.environ.update(env)
    settings = load_settings()
    ledger = Ledger(settings.ledger_url)
    write_subscribers(ledger, subscribers)
    dispatch = [sys.executable, "-m", "dispatcher.cli"]
    api_log = open(workdir / "api.log", "ab")  # noqa: SIM115 - closed below
    api = subprocess.Popen(
        [*dispatch, "serve", "--port", str(api_port)], env=env, stdout=api_log, stderr=subprocess.STDOUT
    )
    worker = start_worker(env, workdir / "worker.log", beat=True, concurrency=2)
    result: dict[str, Any] = {"recipients": subscribers, "batch_size": batch_size}
    try:
        time.sleep(3)  # the worker connects before the clock starts
        item_id = approval.submit(ledger, parse_item(WARNING))
        admin = identity.authenticate(ledger, identity.bootstrap(ledger, "bench-admin").token)
        roles = frozenset({identity.Role.approver})
        approver_token = identity.add(ledger, admin, "bench-approver", roles).token
        # A Severe warning needs two approvers: the first approval, untimed, pins nothing yet.
        approval.approve(ledger, settings, item_id, "bench-first-approver")
        before = ledger_bytes(workdir / "var")
        started = time.monotonic()
        approver = subprocess.Popen(
            [*dispatch, "approve", str(item_id)],
            env={**env, "DISPATCH_TOKEN": approver_token},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(approver.pid, 0)
        approved = time.monotonic()
        if status != 0:
            raise SystemExit(f"approval failed: {approver.stderr.read().decode() if approver.stderr else ''}")
        result["approve_seconds"] = round(approved - started, 2)
        result["approve_peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
        sms_done = other_done = None
        while time.monotonic() - approved < bound:
            with ledger.session() as session:
                rows = session.execute(
                    select(DeliveryRow.channel, DeliveryRow.state, DeliveryRow.sent_at).where(
                        DeliveryRow.item_id == item_id
                    )
                ).all()
            sms = [r for r in rows if r.channel == "sms"]
            other = [r for r in rows if r.channel != "sms"]
            if other_done is None and all(r.state in TERMINAL for r in other):
                other_done = time.monotonic()
                result["other_channels_seconds"] = round(other_done - approved, 2)
                result["other_channels_states"] = sorted({r.state.value for r in other})
            if sms_done is None and all(r.state in TERMINAL for r in sms):
                sms_done = time.monotonic()
                result["seconds"] = round(sms_done - approved, 2)
                result["batches"] = len(sms)
                result["batches_sent"] = sum(1 for r in sms if r.state.value == "sent")
            if sms_done and other_done:
                break
            time.sleep(0.5)
        else:
            result["gave_up_after_seconds"] = bound
        peaks = group_peaks(worker.pid)
        result["worker_peak_rss_mb"] = round(max(peaks.values(), default=0.0), 1)
        result["api_peak_rss_mb"] = round(peak_mb(api.pid), 1)
        # Reports still flowing in: give them a bounded while, then count what was applied.
        deadline = time.monotonic() + min(bound, 120)
        applied = 0
        while time.monotonic() < deadline:
            with ledger.session() as session:
                applied = (
                    session.scalar(select(func.count()).where(RecipientRow.report_type.is_not(None))) or 0
                )
            if applied >= subscribers:
                break
            time.sleep(1)
        result["reports_applied"] = applied
        result["reports_seconds"] = round(time.monotonic() - approved, 1)
        result["api_peak_rss_mb"] = round(peak_mb(api.pid), 1)
        result["ledger_bytes_per_recipient"] = round((ledger_bytes(workdir / "var") - before) / subscribers)
        result["peak_rss_mb"] = max(
            result["approve_peak_rss_mb"], result["worker_peak_rss_mb"], result["api_peak_rss_mb"]
        )
    finally:
        stop_worker(worker)
        api.terminate()
        try:
            api.wait(timeout=20)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait(timeout=10)
        api_log.close()
        box.stop()
        ledger.dispose()
        if redis_server is not None:
            redis_server.stop()
        if os.environ.get("DISPATCH_BENCH_KEEP"):
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument(
        "--broker", default="embedded", help="embedded (default), redis (a redis-server of its own) or a URL"
    )
    parser.add_argument("--bound", type=float, default=900, help="seconds to wait for the fan-out")
    parser.add_argument("--batch-size", type=int, default=100, help="DISPATCH_SMS__BATCH_SIZE")
    args = parser.parse_args()
    # Each run in a process of its own: settings and emulators are per process.
    if os.environ.get("DISPATCH_BENCH_CHILD"):
        print(json.dumps(run_once(args.subscribers, args.broker, args.bound, args.batch_size)))
        return 0
    runs = {}
    for label, count in (("baseline", 50), ("mass", args.subscribers)):
        argv = [sys.executable, __file__, "--subscribers", str(count), "--bound", str(args.bound)]
        argv += ["--broker", args.broker, "--batch-size", str(args.batch_size)]
        done = subprocess.run(
            argv, env={**os.environ, "DISPATCH_BENCH_CHILD": "1"}, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            print(done.stdout, done.stderr, file=sys.stderr)
            return 1
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    base, mass = runs["baseline"], runs["mass"]
    broker = "redis" if args.broker.startswith("redis") else "embedded"
    print(
        f"broker: {broker}; one warning to every channel; SMS to {mass['recipients']:,} subscribers "
        f"in batches of {args.batch_size}"
    )
    print(f"{'':28}{'50 subscribers':>16}{mass['recipients']:>14,}")
    for key, label in (
        ("approve_seconds", "approval (s)"),
        ("seconds", "every SMS batch sent (s)"),
        ("other_channels_seconds", "other channels sent (s)"),
        ("approve_peak_rss_mb", "approval peak (MB)"),
        ("worker_peak_rss_mb", "worker peak (MB)"),
        ("api_peak_rss_mb", "API peak (MB)"),
        ("reports_applied", "reports applied"),
        ("ledger_bytes_per_recipient", "ledger bytes/recipient"),
    ):
        print(f"{label:28}{base.get(key, '-')!s:>16}{mass.get(key, '-')!s:>14}")
    common.merge(("mass_sms",), {**mass, "broker": broker, "baseline": base})
    return 0


if __name__ == "__main__":
    sys.exit(main())
