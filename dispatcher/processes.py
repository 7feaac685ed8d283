"""Starting and stopping a worker process (``dispatch worker``) for the demo and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def start_worker(
    env: dict[str, str],
    log_path: Path,
    *,
    beat: bool = True,
    concurrency: int = 2,
    queues: str | None = None,
) -> subprocess.Popen[bytes]:
    """A worker in its own process group, logging to ``log_path``; on ``queues`` (comma-separated)
    or, by default, every queue."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "dispatcher.cli", "worker", "-c", str(concurrency)]
    if queues:
        argv += ["-Q", queues]
    if beat:
        argv.append("--beat")
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_worker(process: subprocess.Popen[bytes], grace: float = 20.0) -> int:
    """SIGTERM to the main process (Celery's warm shutdown: finish what is running, then stop the
    pool and beat), then SIGKILL whatever of the group is left."""
    if process.poll() is None:
        # Only the parent: a group-wide SIGTERM also hits the pool's children and beat directly,
        # and the parent then waits for workers that are already gone.
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    try:  # prefork children left behind by a killed parent
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return process.returncode
