"""``dispatch serve`` as a process: it answers, and SIGTERM stops it cleanly (exit 0)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import requests

from tests.support import free_port


def test_serve_answers_and_stops_on_sigterm_with_exit_0(environment: dict[str, str]) -> None:
    port = free_port()
    env: dict[str, Any] = {**os.environ, **environment}
    server = subprocess.Popen(
        [sys.executable, "-m", "dispatcher.cli", "serve", "--port", str(port), "--probe-interval", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "dispatch serve did not answer within 30 s"
            time.sleep(0.2)
        assert requests.get(f"http://127.0.0.1:{port}/api/v1/whoami", timeout=5).status_code == 401
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, server.stdout.read() if server.stdout else ""
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
