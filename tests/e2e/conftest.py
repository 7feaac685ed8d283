"""Real processes for end-to-end tests: a Redis server and a worker, started and stopped here."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dispatcher.processes import start_worker, stop_worker
from sandbox.server import Sandbox
from tests.support import free_port


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (`make test` installs Debian's redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        pytest.fail("redis-server did not answer PING within 10 s")
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def worker_env(sandbox: Sandbox, environment: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **environment, **sandbox.environment()}


@pytest.fixture
def run_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "worker.log"

    def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = start_worker(env, log, beat=True, concurrency=2)
        started.append(process)
        return process

    yield start
    for process in started:
        stop_worker(process)
    if log.exists():
        print(log.read_text(errors="replace")[-4000:])  # shown by pytest when a test failed
