"""What the benchmarks share: a Redis of their own, free ports, and the file of latest figures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
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


class RedisServer:
    """A ``redis-server`` on 127.0.0.1 in ``workdir``, configured as the README asks of a broker."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(workdir)]
        argv += ["--appendonly", "yes", "--maxmemory-policy", "noeviction", "--save", ""]
        with open(workdir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start (see {workdir / 'redis.log'})")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after ten seconds: a process the benchmark started, by its PID."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
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
