"""What the benchmarks share: a Redis of their own, free ports, and the file of latest figures."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
LATEST = PROJECT / "var" / "bench" / "latest.json"
# Two signs in Chaoyang (110105), where every benchmark's warning is.
SIGNS = """\
signs:
  - {id: S1, area: "110105", lines: 2, chars_per_line: 12, max_pages: 6, address: S1}
  - {id: S2, area: "110105", lines: 3, chars_per_line: 16, max_pages: 4, address: S2}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A redis-server of the benchmark's own on 127.0.0.1, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    port = free_port()
    (workdir / "redis").mkdir()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*argv, "--dir", str(workdir / "redis")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    stop(process)
    sys.exit("redis-server did not answer PING within 10 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def merge(keys: tuple[str, ...], figures: dict[str, Any]) -> Path:
    """Put ``figures`` under ``keys`` in var/bench/latest.json, keeping every other benchmark's."""
    LATEST.parent.mkdir(parents=True, exist_ok=True)
    latest = json.loads(LATEST.read_text()) if LATEST.exists() else {}
    node = latest
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = figures
    scratch = LATEST.with_suffix(f".{os.getpid()}.tmp")
    scratch.write_text(json.dumps(latest, indent=2, ensure_ascii=False) + "\n")
    scratch.replace(LATEST)
    return LATEST
