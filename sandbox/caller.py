"""smsbox's HTTP caller: how Kannel 1.4.5 calls URLs back (delivery reports to ``dlr-url``, inbound texts).

Restated from Kannel's source (the public SVN mirror github.com/pruiz/kannel) and its user guide:

- ``gw/smsbox.c``: one ``obey_request_thread`` takes the messages bearerbox sends (reports and inbound
  texts alike) from ``smsbox_requests``, an unbounded list in smsbox's memory, and starts each URL call
  with ``http_start_request`` after ``semaphore_down(max_pending_requests)``; ``url_result_thread`` takes
  each answer with ``http_receive_result`` and calls ``semaphore_up``. The semaphore is created from the
  ``smsbox`` group's ``max-pending-requests``, default ``HTTP_MAX_PENDING`` 512 (the guide: "Maximum number
  of pending MO or DLR messages that are handled in parallel"). So at most that many calls are in flight;
  the rest wait in memory, in arrival order. The sendsms interface is served by other threads
  (``sendsms_thread``) and never waits for them.
- Retries: an answer other than ``HTTP_OK`` (200) or ``HTTP_ACCEPTED`` (202), or none, is queued again by
  ``url_result_thread`` while ``retries < max_http_retries`` (``http-request-retry``, default 0): a
  ``gw_timer`` fires after ``http-queue-delay`` seconds (default 10) and ``http_queue_thread`` starts the
  call again, at the back of the caller's queue. A call out of retries is dropped.
- ``gwlib/http.c``: requests go out as ``HTTP/1.1`` with ``Connection: keep-alive`` (``build_request``;
  keep-alive is compiled in unless ``--disable-keepalive``), through ``conn_pool``, idle connections kept
  per ``host:port``: ``conn_pool_get`` takes one, drops it if the server has closed it meanwhile, or opens
  a new one; ``handle_transaction`` puts it back after an answer that keeps the connection open
  (HTTP/1.1 without ``Connection: close``, or ``Connection: keep-alive``) and closes it otherwise or on
  any error (status -1). A request uses its connection alone, so up to ``max-pending-requests``
  connections may be open to one host. Redirects (301, 302, 303, 307) are followed up to
  ``HTTP_MAX_FOLLOW`` (5) times. ``http-timeout`` (default 240 s) is the socket timeout.

How this emulation stands in for it: as in ``gwlib/http.c`` (one ``write_request_thread`` starting
requests, one ``fdset`` reading the answers), one thread runs an event loop that takes work from one FIFO
queue while fewer than ``max_pending`` calls are in flight (an ``asyncio.Semaphore`` in the place of
smsbox's) and makes them on non-blocking sockets. It starts with the first work and leaves after a while
with nothing to do. A first version ran a pool of up to ``max_pending`` blocking threads: with 512 of them
busy, the threads answering sendsms waited for Python's interpreter lock and answered 10 times slower;
one loop thread leaves them the interpreter most of the time. Work is queued as batches (every phone of
one sendsms request) and a phone's report URLs are filled only when that phone is taken, so a million
queued reports cost a few bytes each. A phone's reports go out one after the other, in the order bearerbox
made them; different phones' reports go out in parallel, so their order of arrival is not kept (nor is it
by smsbox, whose calls are answered in any order).

Not emulated: smsbox's semaphore is taken once per message but given back once per answer, retries
included, so each retry raises its bound by one (here the bound stays fixed); the answer's body is not
read for a reply SMS; bearerbox's own bound on unacknowledged messages to smsbox (``smsbox-max-pending``,
default 100), which only moves the waiting from smsbox's memory to bearerbox's.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import ssl
import threading
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_PENDING_REQUESTS = 512  # gw/smsbox.c HTTP_MAX_PENDING, the smsbox group's max-pending-requests
HTTP_TIMEOUT = 240.0  # gwlib/http.c http_client_timeout, the group's http-timeout
MAX_FOLLOW = 5  # gwlib/http.c HTTP_MAX_FOLLOW
REDIRECTS = (301, 302, 303, 307)  # gwlib/http.c get_redirection_location
IDLE_EXIT = 10.0  # seconds the loop thread waits for work before it leaves (an emulator's choice)
LOG_ALL = None  # ``log_last`` meaning: keep every call

Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]
Pool = dict[tuple[str, str, int], list[Stream]]  # conn_pool: idle connections per scheme, host, port


def wire_url(url: str) -> str:
    """Kannel writes the URL's bytes as they are; Python's client needs spaces and non-ASCII escaped."""
    return urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")


@dataclass
class Batch:
    """Calls waiting in order: ``urls(item)`` makes each item's URLs when the caller takes it.

    ``kind`` names what the calls are (``report``, ``mo``) in the counts; ``size`` is how many calls the
    whole batch makes; ``done`` hears each call's status and body (from the caller's thread).
    """

    kind: str
    items: Sequence[Any]
    urls: Callable[[Any], list[str]]
    size: int
    attempt: int = 0
    due: float = 0.0
    done: Callable[[int, str], None] | None = None
    taken: int = 0


@dataclass
class Tally:
    """Counts of one kind of call: waiting, in flight, waiting for a retry, and how they ended."""

    queued: int = 0
    in_flight: int = 0
    retrying: int = 0
    sent: int = 0
    failed: int = 0
    attempts: int = 0
    by_status: Counter[int] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "in_flight": self.in_flight,
            "retrying": self.retrying,
            "pending": self.queued + self.in_flight + self.retrying,
            "sent": self.sent,
            "failed": self.failed,
            "attempts": self.attempts,
            "by_status": {str(status): count for status, count in sorted(self.by_status.items())},
        }


@dataclass
class Answer:
    status: int
    body: bytes
    keep_alive: bool
    location: str | None


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    """An HTTP/1.x answer: status line, headers, then the body by length, by chunks or up to EOF."""
    while True:
        line = await reader.readline()
        version, _, rest = line.decode("latin-1").strip().partition(" ")
        if not version.startswith("HTTP/"):
            raise ValueError(f"not an HTTP status line: {line!r}")
        status = int(rest.split(" ", 1)[0])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break  # handle_transaction: a provisional (1xx) answer is followed by the real one
    # client_read_status: HTTP/1.1 is persistent, HTTP/1.0 not; then the Connection header decides
    keep_alive = version.upper() != "HTTP/1.0"
    connection = headers.get("connection", "").lower()
    keep_alive = keep_alive if connection not in ("close", "keep-alive") else connection == "keep-alive"
    if status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        chunks = []
        while size := int((await reader.readline()).split(b";")[0].strip() or b"0", 16):
            chunks.append(await reader.readexactly(size))
            await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailer
        body = b"".join(chunks)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body, keep_alive = await reader.read(), False
    return Answer(status, body, keep_alive, headers.get("location"))


class Caller:
    """smsbox's outbound HTTP: at most ``max_pending`` calls in flight, the rest queued in order.

    ``retries`` and ``delay`` are ``http-request-retry`` and ``http-queue-delay``, ``timeout``
    ``http-timeout``; ``log_last`` keeps only that many of the calls made (``None``: every one) while the
    counts cover them all.
    """

    def __init__(
        self,
        max_pending: int = MAX_PENDING_REQUESTS,
        retries: int = 0,
        delay: float = 10.0,
        timeout: float = HTTP_TIMEOUT,
        log_last: int | None = LOG_ALL,
        user_agent: str = "Kannel/1.4.5",
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.max_pending = max_pending
        self.retries = retries
        self.delay = delay
        self.timeout = timeout
        self.user_agent = user_agent
        self.lock = threading.Lock()
        self.ready: deque[Batch] = deque()
        self.later: list[tuple[float, int, Batch]] = []  # (due, order, batch): a heap
        self.order = itertools.count()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self.in_flight = 0
        self.in_flight_high = 0
        self.opened = 0
        self.tallies: dict[str, Tally] = {}
        self.log: list[dict[str, Any]] | deque[dict[str, Any]] = (
            [] if log_last is LOG_ALL else deque(maxlen=log_last)
        )

    # -- queueing (any thread) -------------------------------------------------------------------------

    def tally(self, kind: str) -> Tally:
        return self.tallies.setdefault(kind, Tally())

    def enqueue(self, batch: Batch) -> None:
        """Queue a batch's calls; never waits for the calls already queued or in flight."""
        if not batch.items:
            return
        with self.lock:
            tally = self.tally(batch.kind)
            if batch.attempt:
                tally.retrying += batch.size
            else:
                tally.queued += batch.size
            if batch.due > time.monotonic():
                heapq.heappush(self.later, (batch.due, next(self.order), batch))
            else:
                self.ready.append(batch)
            if self.loop is None:
                ready = threading.Event()
                threading.Thread(
                    target=self._run_loop, args=(ready,), name="kannel-caller", daemon=True
                ).start()
                ready.wait()
            else:
                assert self.wake is not None
                self.loop.call_soon_threadsafe(self.wake.set)

    def call(self, url: str, kind: str = "mo") -> tuple[int, str]:
        """One call through the queue, waited for: its first attempt's status and body."""
        answered = threading.Event()
        result: list[tuple[int, str]] = []

        def done(status: int, body: str) -> None:
            if not answered.is_set():
                result.append((status, body))
                answered.set()

        self.enqueue(Batch(kind, [url], lambda one: [one], 1, done=done))
        answered.wait()
        return result[0]

    # -- the loop thread -------------------------------------------------------------------------------

    def _run_loop(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self.loop, self.wake = loop, asyncio.Event()
        ready.set()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    def _take(self) -> tuple[Batch, Any] | float:
        """The next item, in order; else how long to wait for one (lock held)."""
        now = time.monotonic()
        while self.later and self.later[0][0] <= now:
            self.ready.append(heapq.heappop(self.later)[2])
        if self.ready:
            batch = self.ready[0]
            item = batch.items[batch.taken]
            batch.taken += 1
            if batch.taken == len(batch.items):
                self.ready.popleft()
            return batch, item
        return self.later[0][0] - now if self.later else IDLE_EXIT

    async def _serve(self) -> None:
        slots = asyncio.Semaphore(self.max_pending)  # smsbox's max_pending_requests
        running: set[asyncio.Task[None]] = set()
        pool: Pool = {}
        assert self.wake is not None
        while True:
            await slots.acquire()
            with self.lock:
                taken = self._take()
                idle = not isinstance(taken, tuple) and not running and taken == IDLE_EXIT
            while not isinstance(taken, tuple):
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=max(taken, 0.001))
                except TimeoutError:
                    if idle:
                        with self.lock:
                            if not self.ready and not self.later:
                                self.loop = None  # the next enqueue starts a new loop
                                for streams in pool.values():
                                    for _reader, writer in streams:
                                        writer.close()
                                return
                with self.lock:
                    taken = self._take()
                    idle = not isinstance(taken, tuple) and not running and taken == IDLE_EXIT
            task = asyncio.create_task(self._calls(*taken, pool))
            running.add(task)
            task.add_done_callback(running.discard)
            task.add_done_callback(lambda _task: slots.release())

    async def _calls(self, batch: Batch, item: Any, pool: Pool) -> None:
        """One item's calls, one after the other, holding one slot."""
        urls = batch.urls(item)
        tally = self.tally(batch.kind)
        for url in urls:
            with self.lock:
                if batch.attempt:
                    tally.retrying -= 1
                else:
                    tally.queued -= 1
                tally.in_flight += 1
                tally.attempts += 1
                self.in_flight += 1
                self.in_flight_high = max(self.in_flight_high, self.in_flight)
            try:
                status, body = await self._fetch(url, pool)
            finally:
                with self.lock:
                    tally.in_flight -= 1
                    self.in_flight -= 1
            # url_result_thread: only HTTP_OK and HTTP_ACCEPTED are success; 204 and 201 are retried too
            success = status in (200, 202)
            again = not success and batch.attempt < self.retries
            with self.lock:
                tally.by_status[status] += 1
                if success:
                    tally.sent += 1
                elif not again:
                    tally.failed += 1
                self.log.append({"url": url, "status": status, "attempt": batch.attempt, "at": time.time()})
            if batch.done is not None:
                batch.done(status, body)
            if again:
                retry = Batch(batch.kind, [url], lambda one: [one], 1, attempt=batch.attempt + 1)
                retry.due = time.monotonic() + self.delay
                self.enqueue(retry)

    async def _fetch(self, url: str, pool: Pool) -> tuple[int, str]:
        """One GET as smsbox's HTTP caller makes it, following redirects; status -1 when nothing answered."""
        for _ in range(MAX_FOLLOW + 1):
            parts = urllib.parse.urlsplit(wire_url(url))
            scheme = parts.scheme.lower()
            try:
                host, port = parts.hostname or "", parts.port or (443 if scheme == "https" else 80)
            except ValueError as error:
                return -1, str(error)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            host_header = host if parts.port is None else f"{host}:{port}"
            request = (
                f"GET {path} HTTP/1.1\r\nConnection: keep-alive\r\nUser-Agent: {self.user_agent}\r\n"
                f"Host: {host_header}\r\n\r\n"
            ).encode("latin-1", errors="replace")
            key = (scheme, host, port)
            stream: Stream | None = None
            try:
                async with asyncio.timeout(self.timeout):
                    stream = await self._connect(key, pool)
                    stream[1].write(request)
                    answer = await read_answer(stream[0])
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
                if stream is not None:
                    stream[1].close()
                return -1, str(error) or type(error).__name__
            if answer.keep_alive:
                pool.setdefault(key, []).append(stream)  # conn_pool_put
            else:
                stream[1].close()
            if answer.status in REDIRECTS and answer.location:
                url = urllib.parse.urljoin(url, answer.location)
                continue
            return answer.status, answer.body.decode("utf-8", errors="replace")
        return -1, "too many redirects"

    async def _connect(self, key: tuple[str, str, int], pool: Pool) -> Stream:
        """``conn_pool_get``: an idle connection the server has not closed meanwhile, or a new one."""
        idle = pool.get(key, [])
        while idle:
            reader, writer = idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        scheme, host, port = key
        with self.lock:
            self.opened += 1
        context = ssl.create_default_context() if scheme == "https" else None
        return await asyncio.open_connection(host, port, ssl=context)

    # -- what the sandbox shows ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                **{kind: tally.as_dict() for kind, tally in sorted(self.tallies.items())},
                "max_pending_requests": self.max_pending,
                "in_flight_high": self.in_flight_high,
                "connections_opened": self.opened,
            }

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)
