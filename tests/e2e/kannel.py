"""A real Kannel for the tests: bearerbox, smsbox and the fake SMSC from Debian's kannel packages.

Every port is free and on 127.0.0.1; every process is started here and stopped by ``stop()``.
``fakesmsc`` plays the SMS centre: it logs each message bearerbox hands it ("Got message N: <from
to type [udh] data>") and can send one inbound message. Bearerbox's fake SMSC takes one fakesmsc at a
time, so sending an inbound message first stops the sink.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import free_port

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
_GOT = re.compile(r"Got message \d+: <([^>]*)>")


def installed() -> bool:
    return all(Path(p).exists() for p in (BEARERBOX, SMSBOX, FAKESMSC))


def wait_for_port(port: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@dataclass
class Message:
    """One message the SMS centre received; a part of a concatenated one carries its UDH."""

    sender: str
    receiver: str
    kind: str
    udh: bytes
    data: bytes

    @property
    def ucs2(self) -> str:
        return self.data.decode("utf-16-be")

    @property
    def part(self) -> tuple[int, int, int] | None:
        """(reference, total, sequence) of a concatenated message's part, from its 8-bit UDH."""
        if len(self.udh) >= 6 and self.udh[1] == 0x00:
            return self.udh[3], self.udh[4], self.udh[5]
        return None


@dataclass
class Kannel:
    workdir: Path
    mo_url: str
    username: str = "dispatch"
    password: str = "kannel-test-pw"
    #: the sendsms-user's max-messages; None leaves Kannel's default (1: a long text is cut)
    max_messages: int | None = 10
    #: smsbox's mo-recode; without it a Chinese inbound text arrives as UCS-2 bytes
    mo_recode: bool = True
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sendsms']}/cgi-bin/sendsms"

    def config(self) -> str:
        log = self.workdir
        return f"""\
group = core
admin-port = {self.ports["admin"]}
admin-interface = 127.0.0.1
admin-password = {self.password}-admin
smsbox-port = {self.ports["smsbox"]}
box-allow-ip = 127.0.0.1
log-file = "{log}/bearerbox.log"
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {self.ports["smsc"]}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.ports["smsbox"]}
sendsms-port = {self.ports["sendsms"]}
sendsms-interface = 127.0.0.1
{"mo-recode = true" if self.mo_recode else "# mo-recode left out (a blank line would end the group)"}
log-file = "{log}/smsbox.log"
log-level = 1

group = sendsms-user
username = {self.username}
password = {self.password}
{f"max-messages = {self.max_messages}" if self.max_messages is not None else "# max-messages: default"}
concatenation = true

group = sms-service
keyword = default
catch-all = true
get-url = "{self.mo_url}"
max-messages = 0
"""

    def start(self) -> Kannel:
        self.ports = {name: free_port() for name in ("admin", "smsbox", "smsc", "sendsms")}
        conf = self.workdir / "kannel.conf"
        conf.write_text(self.config(), encoding="utf-8")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": self.workdir}
        self.processes["bearerbox"] = subprocess.Popen([BEARERBOX, str(conf)], **quiet)  # type: ignore[call-overload]
        wait_for_port(self.ports["smsbox"])
        self.processes["smsbox"] = subprocess.Popen([SMSBOX, str(conf)], **quiet)  # type: ignore[call-overload]
        wait_for_port(self.ports["sendsms"])
        self.start_sink()
        return self

    def _fakesmsc(self, name: str, count: int, message: str) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.processes[name] = subprocess.Popen(
            [
                FAKESMSC,
                "-H",
                "127.0.0.1",
                "-r",
                str(self.ports["smsc"]),
                "-i",
                "0.05",
                "-m",
                str(count),
                message,
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=self.workdir,
        )
        log.close()

    def start_sink(self) -> None:
        self._fakesmsc("sink", 0, "0 0 text unused")
        time.sleep(0.5)  # let it connect before anything is sent

    def received(self) -> list[Message]:
        log = self.workdir / "sink.log"
        messages = []
        for match in _GOT.finditer(log.read_text(errors="replace") if log.exists() else ""):
            # "from to ucs-2 DATA", or for a part of a long text "from to udh UDH data DATA"
            sender, receiver, kind, *rest = match.group(1).split(" ")
            udh = rest[0] if kind == "udh" else ""
            data = rest[-1] if rest else ""
            messages.append(
                Message(
                    sender,
                    receiver,
                    kind,
                    urllib.parse.unquote_to_bytes(udh),
                    urllib.parse.unquote_to_bytes(data),
                )
            )
        return messages

    def send_mo(self, sender: str, text: str) -> None:
        """A phone texts the gateway: stop the sink, let a fakesmsc deliver one inbound UCS-2 message."""
        stop_process(self.processes.pop("sink", None))
        data = urllib.parse.quote_from_bytes(text.encode("utf-16-be"))
        self._fakesmsc("mo", 1, f"{sender} 12379 ucs2 {data}")

    def stop_mo(self) -> None:
        stop_process(self.processes.pop("mo", None))

    def stop(self) -> None:
        for name in ("mo", "sink", "smsbox", "bearerbox"):
            stop_process(self.processes.pop(name, None))
