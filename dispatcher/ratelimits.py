"""Rate limits shared by every worker on every machine: token buckets kept in the ledger.

A limit is ``N/s``, ``N/m`` or ``N/h`` for a channel (``sms``) or one target (``microblog:bj_yingji``),
from ``DISPATCH_RATE_LIMITS``. A worker takes a token inside the transaction that claims the delivery,
so two workers never spend the same token; a delivery that finds no token waits, without spending an
attempt, until the bucket has one again.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.orm import Session

from dispatcher.errors import ConfigurationError
from dispatcher.ledger import RateBucketRow

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|m|h)\s*$")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_rate(text: str) -> tuple[float, float]:
    """(capacity, tokens per second) of ``N/s``, ``N/m`` or ``N/h``."""
    match = _RATE.match(text)
    if not match:
        raise ConfigurationError(f"rate limit {text!r} is not N/s, N/m or N/h")
    count = float(match.group(1))
    if count <= 0:
        raise ConfigurationError(f"rate limit {text!r} must allow at least one")
    return count, count / _SECONDS[match.group(2)]


def take(session: Session, limits: dict[str, str], channel: str, target: str, now: datetime) -> float:
    """Take a token from every bucket that applies; 0.0 when taken, else seconds to wait (nothing taken)."""
    keys = [key for key in (channel, f"{channel}:{target}") if key in limits]
    buckets = []
    wait = 0.0
    for key in keys:
        capacity, rate = parse_rate(limits[key])
        bucket = session.get(RateBucketRow, key, with_for_update=True)
        if bucket is None:
            bucket = RateBucketRow(key=key, tokens=capacity, updated_at=now)
            session.add(bucket)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated_at).total_seconds() * rate)
        bucket.updated_at = now
        if bucket.tokens < 1:
            wait = max(wait, (1 - bucket.tokens) / rate)
        buckets.append(bucket)
    if wait:
        return wait
    for bucket in buckets:
        bucket.tokens -= 1
    return 0.0
