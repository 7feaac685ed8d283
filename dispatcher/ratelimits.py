"""Rate limits shared by every worker on every machine: token buckets kept in the ledger.

A limit is ``N/s``, ``N/m`` or ``N/h`` for a channel (``sms``) or one target (``microblog:bj_yingji``),
from ``DISPATCH_RATE_LIMITS`` (checked when the settings are loaded). A worker takes a token inside
the transaction that claims the delivery, so two workers never spend the same token; a delivery that
finds no token waits, without spending an attempt, until the bucket has one again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dispatcher.ledger import RateBucketRow
from settings import parse_rate


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
