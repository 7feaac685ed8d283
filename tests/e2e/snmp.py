"""A real SNMP agent for the tests: Debian's snmpd, handing the NTCIP 1203 subtree to the sign emulator.

snmpd listens on a free UDP port of 127.0.0.1 and runs ``sandbox.ntcip_agent`` through its
``pass_persist`` directive; both are stopped by ``stop()``.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SNMPD = "/usr/sbin/snmpd"


def installed() -> bool:
    return Path(SNMPD).exists()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SnmpAgent:
    workdir: Path
    lines: int = 2
    chars_per_line: int = 12
    max_pages: int = 4
    validate_seconds: float = 1.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        """The controller's switches, read by the agent on every request (control mode, clock)."""
        return self.workdir / "sign-state.json"

    def switch(self, **state: object) -> None:
        """Flip the sign's switches: ``control="local"|"central"``, ``clock_offset=seconds``."""
        current = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        self.state_file.write_text(json.dumps({**current, **state}), encoding="utf-8")

    def start(self) -> SnmpAgent:
        self.port = free_udp_port()
        handler = self.workdir / "ntcip-agent.sh"
        handler.write_text(
            "#!/bin/sh\n"
            f"exec {sys.executable} -m sandbox.ntcip_agent --lines {self.lines} "
            f"--chars-per-line {self.chars_per_line} --max-pages {self.max_pages} "
            f"--validate-seconds {self.validate_seconds} --state-file {self.state_file}\n",
            encoding="utf-8",
        )
        handler.chmod(0o755)
        conf = self.workdir / "snmpd.conf"
        conf.write_text(
            f"agentAddress udp:127.0.0.1:{self.port}\n"
            "rocommunity public 127.0.0.1\n"
            "rwcommunity private 127.0.0.1\n"
            f"pass_persist .1.3.6.1.4.1.1206.4.2.3 {handler}\n",
            encoding="utf-8",
        )
        self.process = subprocess.Popen(
            [
                SNMPD,
                "-f",
                "-C",
                "-c",
                str(conf),
                "-Lf",
                str(self.workdir / "snmpd.log"),
                "-p",
                str(self.workdir / "snmpd.pid"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15) -> None:
        probe = shutil.which("snmpget")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if probe is None:
                time.sleep(1)
                return
            answer = subprocess.run(
                [
                    probe,
                    "-v2c",
                    "-c",
                    "public",
                    "-t",
                    "0.5",
                    "-r",
                    "0",
                    self.address,
                    ".1.3.6.1.4.1.1206.4.2.3.6.17.0",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if "INTEGER" in answer.stdout:
                return
            time.sleep(0.1)
        raise TimeoutError(f"snmpd on {self.address} did not answer in {timeout}s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
