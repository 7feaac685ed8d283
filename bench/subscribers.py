"""Importing subscribers: rows per second and the peak memory of the importing process.

Writes a CSV of N subscribers (valid mainland mobile numbers, one area, one topic, every 50th row a
number given twice and every 1,000th a bad row), then runs ``dispatch subscribers import`` on it in a
process of its own against a new SQLite ledger, as an operator would. The baseline, measured in the same
run, is reading the same file with the csv module alone: the floor any import pays. The figures are
printed and merged into ``var/bench/latest.json`` under ``import``.

Run: ``.venv/bin/python bench/subscribers.py [--rows 1000000]`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def write_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("phone,areas,topics,consent\n")
        for n in range(rows):
            if n % 1000 == 999:
                handle.write("not-a-phone,110105,safety,yes\n")
                continue
            number = 13900000000 + (n if n % 50 else n - 1)  # every 50th repeats the one before
            handle.write(f"{number},1101{n % 20 + 1:02d},safety,{'yes' if n % 7 else 'no'}\n")


def baseline(path: Path) -> float:
    started = time.monotonic()
    with path.open(encoding="utf-8", newline="") as handle:
        for _row in csv.DictReader(handle):
            pass
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-import-") as workdir:
        work = Path(workdir)
        path = work / "subscribers.csv"
        write_file(path, args.rows)
        read_seconds = baseline(path)
        env = {**os.environ, "DISPATCH_VAR_DIR": str(work / "var")}
        started = time.monotonic()
        run = subprocess.run(
            [sys.executable, "-m", "dispatcher.cli", "subscribers", "import", str(path)],
            env=env,
            capture_output=True,
            text=True,
            cwd=PROJECT,
        )
        seconds = time.monotonic() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        ledger_bytes = (work / "var" / "ledger.sqlite").stat().st_size
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-300:]
    figures = {
        "rows": args.rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(args.rows / seconds),
        "peak_rss_mb": round(peak_mb, 1),
        "baseline_csv_read_seconds": round(read_seconds, 2),
        "ratio_to_csv_read": round(seconds / read_seconds, 1),
        "ledger_bytes_per_subscriber": round(ledger_bytes / args.rows),
    }
    print(f"import of {args.rows:,} subscribers: {summary}")
    print(
        f"  {seconds:.1f} s ({figures['rows_per_second']:,} rows/s), peak {peak_mb:.0f} MB; "
        f"reading the file alone {read_seconds:.1f} s (import = {figures['ratio_to_csv_read']}× that); "
        f"ledger {figures['ledger_bytes_per_subscriber']} bytes per subscriber"
    )
    out = PROJECT / "var" / "bench" / "latest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    latest = json.loads(out.read_text()) if out.exists() else {}
    latest["import"] = figures
    out.write_text(json.dumps(latest, indent=2) + "\n")
    if run.returncode not in (0, 1):  # 1: some rows refused, as planted
        sys.exit(f"the import failed: {run.stderr[-500:]}")


if __name__ == "__main__":
    main()
