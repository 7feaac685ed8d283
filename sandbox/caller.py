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

How this emulation stands in for it: a pool of caller threads, never more than ``max_pending`` (started as
work arrives, each leaving after a while idle), takes work from one FIFO queue; each thread has at most
one request in flight, so the bound holds as the semaphore's does. Work is queued as batches (every phone
of one sendsms request) and a phone's report URLs are filled only when a thread takes that phone, so a
million queued reports cost a few bytes each. A phone's reports go out one after the other, in the order
bearerbox made them; different phones' reports go out in parallel, so their order of arrival is not kept
(nor is it by smsbox, whose calls are answered in any order).

Not emulated: smsbox's semaphore is taken once per message but given back once per answer, retries
included, so each retry raises its bound by one (here the bound stays fixed); the answer's body is not
read for a reply SMS; bearerbox's own bound on unacknowledged messages to smsbox (``smsbox-max-pending``,
default 100), which only moves the waiting from smsbox's memory to bearerbox's.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import select
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
IDLE_EXIT = 10.0  # seconds a caller thread waits for work before it leaves (an emulator's choice)
LOG_ALL = None  # ``log_last`` meaning: keep every call


def wire_url(url: str) -> str:
    """Kannel writes the URL's bytes as they are; Python's client needs spaces and non-ASCII escaped."""
    return urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")


@dataclass
class Batch:
    """Calls waiting in order: ``urls(item)`` makes each item's URLs when a caller thread takes it.

    ``kind`` names what the calls are (``report``, ``mo``) in the counts; ``size`` is how many calls the
    whole batch makes; ``done`` hears each call's status and body.
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


class ConnectionPool:
    """``conn_pool``: idle keep-alive connections per scheme, host and port."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}
        self.lock = threading.Lock()
        self.opened = 0

    def get(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        key = (scheme, host, port)
        while True:
            with self.lock:
                conn = self.idle.get(key, []).pop() if self.idle.get(key) else None
                if conn is None:
                    self.opened += 1
                    kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
                    return kind(host, port, timeout=self.timeout)
            # conn_pool_get: a connection the server closed while it sat in the pool is readable (EOF)
            if conn.sock is not None and not select.select([conn.sock], [], [], 0)[0]:
                return conn
            conn.close()

    def put(self, scheme: str, host: str, port: int, conn: http.client.HTTPConnection) -> None:
        with self.lock:
            self.idle.setdefault((scheme, host, port), []).append(conn)

    def close(self) -> None:
        with self.lock:
            for conns in self.idle.values():
                for conn in conns:
                    conn.close()
            self.idle.clear()


class Caller:
    """smsbox's outbound HTTP: at most ``max_pending`` calls in flight, the rest queued in order.

    ``retries`` and ``delay`` are ``http-request-retry`` and ``http-queue-delay``; ``log_last`` keeps only
    that many of the calls made (``None``: every one) while the counts cover them all.
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
        self.user_agent = user_agent
        self.pool = ConnectionPool(timeout)
        self.lock = threading.Condition()
        self.ready: deque[Batch] = deque()
        self.later: list[tuple[float, int, Batch]] = []  # (due, order, batch): a heap
        self.order = itertools.count()
        self.threads = 0
        self.idle = 0
        self.busy_high = 0
        self.tallies: dict[str, Tally] = {}
        self.log: list[dict[str, Any]] | deque[dict[str, Any]] = (
            [] if log_last is LOG_ALL else deque(maxlen=log_last)
        )

    # -- queueing --------------------------------------------------------------------------------------

    def tally(self, kind: str) -> Tally:
        return self.tallies.setdefault(kind, Tally())

    def enqueue(self, batch: Batch) -> None:
        """Queue a batch's calls; never blocks on the calls already queued or in flight."""
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
            self._staff()

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

    def _staff(self) -> None:
        """Wake an idle caller thread, or start one while fewer than the bound run (lock held)."""
        if self.idle:
            self.lock.notify()
        elif self.threads < self.max_pending:
            self.threads += 1
            threading.Thread(target=self._work, name="kannel-caller", daemon=True).start()

    def _take(self) -> tuple[Batch, Any] | None:
        """The next item to call for, in order; None when nothing came for ``IDLE_EXIT`` seconds."""
        with self.lock:
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                while self.later and self.later[0][0] <= now:
                    self.ready.append(heapq.heappop(self.later)[2])
                if self.ready:
                    batch = self.ready[0]
                    item = batch.items[batch.taken]
                    batch.taken += 1
                    if batch.taken == len(batch.items):
                        self.ready.popleft()
                    if self.ready:
                        self._staff()
                    return batch, item
                if not self.later and now - idle_since >= IDLE_EXIT:
                    self.threads -= 1
                    return None
                wait = self.later[0][0] - now if self.later else IDLE_EXIT - (now - idle_since)
                self.idle += 1
                self.lock.wait(max(wait, 0.001))
                self.idle -= 1

    def _work(self) -> None:
        while (taken := self._take()) is not None:
            batch, item = taken
            urls = batch.urls(item)
            with self.lock:
                tally = self.tally(batch.kind)
                if batch.attempt:
                    tally.retrying -= len(urls)
                else:
                    tally.queued -= len(urls)
            for url in urls:
                self._attempt(batch, url)

    def _attempt(self, batch: Batch, url: str) -> None:
        with self.lock:
            tally = self.tally(batch.kind)
            tally.in_flight += 1
            tally.attempts += 1
            busy = sum(t.in_flight for t in self.tallies.values())
            self.busy_high = max(self.busy_high, busy)
        try:
            status, body = self.fetch(url)
        finally:
            with self.lock:
                tally.in_flight -= 1
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
            self.enqueue(
                Batch(
                    batch.kind,
                    [url],
                    lambda one: [one],
                    1,
                    attempt=batch.attempt + 1,
                    due=time.monotonic() + self.delay,
                )
            )

    # -- one request -----------------------------------------------------------------------------------

    def fetch(self, url: str) -> tuple[int, str]:
        """One GET as smsbox's HTTP caller makes it, following redirects; status -1 when nothing answered."""
        for _ in range(MAX_FOLLOW + 1):
            parts = urllib.parse.urlsplit(wire_url(url))
            scheme = parts.scheme.lower()
            try:
                host, port = parts.hostname or "", parts.port or (443 if scheme == "https" else 80)
            except ValueError as error:
                return -1, str(error)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            conn = self.pool.get(scheme, host, port)
            try:
                conn.putrequest("GET", path, skip_accept_encoding=True)
                conn.putheader("Connection", "keep-alive")
                conn.putheader("User-Agent", self.user_agent)
                conn.endheaders()
                response = conn.getresponse()
                body = response.read().decode("utf-8", errors="replace")
            except (OSError, http.client.HTTPException, ValueError) as error:
                conn.close()
                return -1, str(error)
            location = response.getheader("Location")
            if response.will_close:
                conn.close()
            else:
                self.pool.put(scheme, host, port, conn)
            if response.status in REDIRECTS and location:
                url = urllib.parse.urljoin(url, location)
                continue
            return response.status, body
        return -1, "too many redirects"

    # -- what the sandbox shows ------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                **{kind: tally.as_dict() for kind, tally in sorted(self.tallies.items())},
                "max_pending_requests": self.max_pending,
                "in_flight_high": self.busy_high,
                "caller_threads": self.threads,
                "connections_opened": self.pool.opened,
            }

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.log)
