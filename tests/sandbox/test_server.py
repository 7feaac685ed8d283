"""The sandbox as a whole: the emulators served on real ports by ``dispatch sandbox``, stopped by SIGTERM.

Each emulator's own behaviour is tested beside it (``test_<peer>_emulator.py``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests


def five_free_ports() -> int:
    """A port p with p..p+4 free on 127.0.0.1 (the sandbox listens on five consecutive ports)."""
    for base in range(21000 + os.getpid() % 2000 * 5, 65000, 5):
        socks = []
        try:
            for port in range(base, base + 5):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError("no five consecutive free ports")


def test_the_sandbox_command_serves_and_stops_on_sigterm(environment: dict[str, str]) -> None:
    base = five_free_ports()
    process = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "sandbox", "--port-base", str(base)],
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"http://127.0.0.1:{base + 3}/_sandbox/received", timeout=1).raise_for_status()
                break
            except requests.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stdout.read().decode() if process.stdout else ""
                    pytest.fail(f"the sandbox did not come up: {output}")
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
