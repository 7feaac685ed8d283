"""Delivery reports kept on disk while the ledger cannot take them, applied once it answers.

A Kannel smsbox calls ``dlr-url`` once and does not call again unless ``http-request-retry`` is set
(seen on 1.4.5): a report refused while the ledger is locked or its disk full is a report lost, and
the per-phone truth with it. So the API keeps each report it cannot apply in an append-only file
(one JSON line each, flushed to disk before it answers 202) and applies the file in one transaction
when the ledger answers again — at the next report, and at every sweep. Applying twice is harmless:
a final report is never overwritten.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def keep(self, entry: dict[str, Any]) -> None:
        """Append one entry durably; raises OSError when even that is impossible (a full disk)."""
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._locked():
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(descriptor, line)
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def drain(self, apply: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand every kept entry to ``apply`` (one call, one transaction); they are forgotten only once
        it returns. Returns how many were applied."""
        if not self.pending():
            return 0
        with self._locked():
            try:
                lines = self.path.read_bytes().splitlines()
            except FileNotFoundError:
                return 0
            entries = []
            for line in lines:
                try:
                    entries.append(json.loads(line))
                except ValueError:  # a line cut by a crash mid-write: nothing of it was answered 202
                    log.warning("spool %s: skipped an incomplete line", self.path.name)
            if entries:
                apply(entries)
            os.truncate(self.path, 0)
        return len(entries)
