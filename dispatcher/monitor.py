"""Channel health: checked, kept in the ledger, told to operators once per change, and shown on the page.

**The rule.** Every channel as a whole (target ``*``) and every target of it is ``healthy``, ``degraded``
or ``down`` (``unknown`` until first decided):

- a *channel* is ``down`` once ``DISPATCH_MONITOR__DOWN_AFTER`` probes in a row failed (its adapter's
  ``probe()``, or the adapter could not even be built); a channel that is down is up again only after
  ``DISPATCH_MONITOR__UP_AFTER`` good probes in a row; a failed probe short of the count leaves the state
  as it was. A channel whose probe is good is ``degraded`` when one of its targets is down, or when its
  recent sends went badly (below), and ``healthy`` otherwise;
- a *target* is ``down`` while its circuit (``dispatcher/circuits.py``) is open or half open, or while
  its channel's probe names it among those it could not use (a sign that does not answer or is in
  local control, a microblog account whose token is refused) while others answered, else ``degraded``
  when its recent sends went badly, else ``healthy``. A probe that failed for some of the outlets it
  checked but not all is not a failed probe of the channel: the channel is ``degraded`` (those targets
  are down). When none answered, the channel is down, and that one change stands for them all;
- *recent sends went badly*: in the last ``DISPATCH_MONITOR__DEGRADED_WINDOW`` seconds at least
  ``DISPATCH_MONITOR__DEGRADED_MIN`` send outcomes were recorded (events ``delivery.sent``, and the failing
  ones ``delivery.retrying``, ``delivery.failed``, ``delivery.dead``, ``delivery.unknown``) and the failing
  ones are at least ``DISPATCH_MONITOR__DEGRADED_RATIO`` of them.

The targets of a channel that reaches subscribers are batches of phones, made per item, not outlets:
such a channel is watched as a whole only, its batches' outcomes counted for it.

**Changes.** :func:`check` writes a change only when a state really changes (a first sighting that is
healthy is not one), with compare-and-set on the row (``UPDATE … WHERE state = old``): when two
processes check at once (the beat and the page), exactly one records the change. The change, its event
(``channel.down``, ``channel.degraded``, ``channel.up``) and its operator alerts (``ops_alerts``) are
written in one transaction. Every change goes to the webhook; a change into or out of ``down`` also
texts the on-call phones (a degraded channel is not worth waking anyone for).

**Alerts.** :func:`send_alerts` sends what is due in ``ops_alerts``: the webhook gets the JSON body,
signed with HMAC-SHA256 under ``DISPATCH_ALERTS__WEBHOOK_SECRET`` (header ``X-Dispatch-Signature:
sha256=<hex>``) and carrying ``Idempotency-Key``; the on-call phones get the text through the SMS
channel's adapter, one request for all of them, under a key stable for the alert. An alert is claimed by
compare-and-set before it is sent, so two senders never send it twice; a temporary failure is tried
again later (backoff from ``DISPATCH_ALERTS__RETRY_SECONDS``, up to ``DISPATCH_ALERTS__ATTEMPTS``
tries); a text whose outcome is unknown is never sent again (Kannel cannot be asked whether it took it).
Only a process that dies in the middle of a send leaves its claim to run out (:data:`CLAIM`) and the
alert to be sent again.

:func:`snapshot` is what the status page shows.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from channels import REGISTRY
from channels.base import TEMPORARY_STATUS, Channel
from dispatcher.disclosure import nearest_rank
from dispatcher.errors import ChannelError, DispatchError, OutcomeUnknownError, TemporaryChannelError
from dispatcher.ledger import (
    SHOWING,
    ApprovalRow,
    ChannelHealthRow,
    CircuitRow,
    DeliveryRow,
    DeliveryState,
    EventRow,
    HealthChangeRow,
    ItemRow,
    Ledger,
    OpsAlertRow,
    RevisionRow,
    record,
)
from dispatcher.words import Health
from settings import Settings

HEALTHY, DEGRADED, DOWN, UNKNOWN = "healthy", "degraded", "down", "unknown"
#: the target name of a channel as a whole
WHOLE = "*"
WEBHOOK = "webhook"
ACTOR = "monitor"
SUCCEEDED = "delivery.sent"
FAILING = ("delivery.retrying", "delivery.failed", "delivery.dead", "delivery.unknown")
#: deliveries still on their way (the page's queue depth): waiting, claimed or waiting to retry
WAITING = (DeliveryState.pending, DeliveryState.sending, DeliveryState.retrying)
#: deliveries not sent yet that may still be: overdue once past their kind's deadline
OPEN = (*WAITING, DeliveryState.unknown)
#: how long a sender's claim on an alert holds: longer than any one send takes
CLAIM = timedelta(minutes=5)
#: the longest wait between two tries of an alert
MAX_RETRY = 600.0
#: the words of the on-call text, per state
SAID = {DOWN: "中断", DEGRADED: "降级", HEALTHY: "恢复"}
#: a text of one UCS-2 message
TEXT_LIMIT = 70


@dataclass(frozen=True)
class Change:
    """One recorded change of health."""

    id: int
    channel: str
    target: str
    from_state: str
    to_state: str
    at: datetime
    reason: str


def phone_channel() -> str | None:
    """The channel that texts phones (the one reaching subscribers): the route of on-call texts."""
    return next((name for name, cls in REGISTRY.items() if cls.reaches_subscribers), None)


def folded(channel: str, target: str) -> tuple[str, str]:
    """The key a target is watched under: a channel reaching subscribers is watched as a whole."""
    cls = REGISTRY.get(channel)
    return (channel, WHOLE) if cls is not None and cls.reaches_subscribers else (channel, target)


def outcomes(session: Session, since: datetime, until: datetime) -> dict[tuple[str, str], Counter[str]]:
    """Send outcomes per (channel, target) between ``since`` and ``until``: ``sent`` and ``failing``."""
    rows = session.execute(
        select(DeliveryRow.channel, DeliveryRow.target, EventRow.name, func.count())
        .join(DeliveryRow, EventRow.delivery_id == DeliveryRow.id)
        .where(EventRow.at >= since, EventRow.at < until, EventRow.name.in_([SUCCEEDED, *FAILING]))
        .group_by(DeliveryRow.channel, DeliveryRow.target, EventRow.name)
    ).all()
    found: dict[tuple[str, str], Counter[str]] = {}
    for channel, target, name, count in rows:
        found.setdefault(folded(channel, target), Counter())["sent" if name == SUCCEEDED else "failing"] += (
            count
        )
    return found


def badly(counts: Counter[str], settings: Settings) -> str | None:
    """Why recent sends say degraded, or None."""
    total = counts["sent"] + counts["failing"]
    if total < settings.monitor.degraded_min or counts["failing"] < total * settings.monitor.degraded_ratio:
        return None
    minutes = round(settings.monitor.degraded_window / 60)
    return f"{counts['failing']} of {total} sends failed or retried in the last {minutes} min"


def check(
    ledger: Ledger, settings: Settings, channel_for: Callable[[str], Channel], now: datetime | None = None
) -> list[Change]:
    """Probe every channel once, decide every channel's and target's health by the module's rule, and
    record the changes (with their events and alerts). Returns the changes this call recorded."""
    now = now or ledger.now()
    probes: dict[str, Health] = {}
    for name in REGISTRY:  # outside any transaction: a probe may take its timeout
        try:
            probes[name] = channel_for(name).probe()
        except DispatchError as exc:
            probes[name] = Health(False, str(exc), 0.0)
    changes: list[Change] = []
    window = timedelta(seconds=settings.monitor.degraded_window)
    with ledger.session() as session:
        recent = outcomes(session, now - window, now)
        circuits = {folded(c.channel, c.target): c for c in session.scalars(select(CircuitRow))}
        known = {
            (channel, target)
            for channel, target in session.execute(
                select(ChannelHealthRow.channel, ChannelHealthRow.target).where(
                    ChannelHealthRow.target != WHOLE
                )
            )
        }
        # Outlets a probe could not use while others answered; when none answered, the channel is down,
        # which says it for all of them (one alert, not one per sign).
        unusable = {
            (name, target)
            for name, probe in probes.items()
            if len(probe.down) < probe.checked
            for target in probe.down
        }
        targets = sorted(
            key
            for key in set(circuits) | set(recent) | known | unusable
            if key[1] != WHOLE and key[0] in REGISTRY
        )
        target_states: dict[str, list[str]] = {}
        for channel, target in targets:
            circuit = circuits.get((channel, target))
            if circuit is not None and circuit.state != "closed":
                wanted, reason = DOWN, f"circuit {circuit.state}: {circuit.last_error or 'failures'}"
            elif (channel, target) in unusable:
                wanted, reason = DOWN, f"the probe could not use it: {probes[channel].detail}"
            else:
                why = badly(recent.get((channel, target), Counter()), settings)
                wanted, reason = (DEGRADED, why) if why else (HEALTHY, "sends go through")
            row = _observed(session, channel, target, now, None, reason if wanted != HEALTHY else None)
            change = _decided(session, settings, row, wanted, reason, now)
            changes += [change] if change else []
            target_states.setdefault(channel, []).append(wanted)
        for channel, probe in probes.items():
            if not probe.ok and 0 < len(probe.down) < probe.checked:
                # Some outlets answered: the channel is reached, those targets are down (above).
                probe = Health(True, probe.detail, probe.latency_ms)
            row = _observed(session, channel, WHOLE, now, probe, None if probe.ok else probe.detail)
            if not probe.ok:
                wanted = DOWN if row.failures >= settings.monitor.down_after else row.state
                reason = f"probe failed {row.failures} time(s): {probe.detail}"
            elif row.state == DOWN and row.successes < settings.monitor.up_after:
                wanted, reason = (
                    DOWN,
                    f"probe good {row.successes} time(s), waiting for {settings.monitor.up_after}",
                )
            else:
                counts = _summed(recent, channel, Counter[str]())
                why = badly(counts, settings)
                down = target_states.get(channel, []).count(DOWN)
                if down:
                    why = f"{down} target(s) down" + (f"; {why}" if why else "")
                wanted, reason = (DEGRADED, why) if why else (HEALTHY, f"probe good: {probe.detail}")
            change = _decided(session, settings, row, wanted, reason, now)
            changes += [change] if change else []
    return changes


def _observed(
    session: Session, channel: str, target: str, now: datetime, probe: Health | None, error: str | None
) -> ChannelHealthRow:
    """The row of (channel, target) with this check's observation counted in (made, if new, as
    ``unknown``): the probe counters move in SQL, so two checks at once both count."""
    if session.get(ChannelHealthRow, (channel, target)) is None:
        try:
            with session.begin_nested():  # another process may make it at the same moment
                session.add(
                    ChannelHealthRow(
                        channel=channel,
                        target=target,
                        state=UNKNOWN,
                        since=now,
                        checked_at=now,
                        failures=0,
                        successes=0,
                    )
                )
        except IntegrityError:
            pass
    values: dict[str, Any] = {"checked_at": now}
    if probe is not None:
        values["latency_ms"] = round(probe.latency_ms, 1)
        values["detail"] = probe.detail[:500]
        if probe.ok:
            values.update(successes=ChannelHealthRow.successes + 1, failures=0)
        else:
            values.update(failures=ChannelHealthRow.failures + 1, successes=0)
    if error is not None:
        values.update(last_error=error[:500], last_error_at=now)
    session.execute(
        update(ChannelHealthRow)
        .where(ChannelHealthRow.channel == channel, ChannelHealthRow.target == target)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    row = session.get(ChannelHealthRow, (channel, target), populate_existing=True)
    assert row is not None
    return row


def _decided(
    session: Session, settings: Settings, row: ChannelHealthRow, wanted: str, reason: str, now: datetime
) -> Change | None:
    """Move ``row`` to ``wanted`` if it is still in the state it was read in, and record the change."""
    old = row.state
    if wanted == old:
        return None
    return transition(session, settings, row.channel, row.target, old, wanted, reason, now)


def transition(
    session: Session,
    settings: Settings,
    channel: str,
    target: str,
    old: str,
    new: str,
    reason: str,
    now: datetime,
) -> Change | None:
    """Compare-and-set: (channel, target) moves from ``old`` to ``new`` only if it is still ``old``, and
    only then is the change recorded with its event and alerts. None when another process was first
    (or on a first sighting that is healthy, which is no change)."""
    moved = session.execute(
        update(ChannelHealthRow)
        .where(
            ChannelHealthRow.channel == channel,
            ChannelHealthRow.target == target,
            ChannelHealthRow.state == old,
        )
        .values(state=new, since=now)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    if moved.rowcount != 1 or (old == UNKNOWN and new == HEALTHY):  # type: ignore[attr-defined]
        return None
    row = HealthChangeRow(
        channel=channel, target=target, from_state=old, to_state=new, at=now, reason=reason[:500]
    )
    session.add(row)
    session.flush()
    change = Change(row.id, channel, target, old, new, now, reason)
    record(
        session,
        f"channel.{'up' if new == HEALTHY else new}",
        actor=ACTOR,
        channel=channel,
        target=target,
        from_state=old,
        to_state=new,
        reason=reason[:300],
        change=row.id,
    )
    label = channel if target == WHOLE else f"{channel}/{target}"
    local = now.astimezone(ZoneInfo(settings.time_zone))
    message = {
        "json": {
            "type": "health_change",
            "change": row.id,
            "channel": channel,
            "target": None if target == WHOLE else target,
            "from": old,
            "to": new,
            "at": now.isoformat(),
            "reason": reason[:500],
        },
        "text": short_text(f"【调度告警】{label} {SAID[new]} {local:%H:%M} {reason}"),
    }
    wake = DOWN in (old, new)  # into or out of down: the phones too
    queue_alerts(session, settings, f"change:{row.id}", message, now, texted=wake, change_id=row.id)
    return change


def short_text(text: str) -> str:
    """``text`` cut to one SMS message."""
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def queue_alerts(
    session: Session,
    settings: Settings,
    source: str,
    message: dict[str, Any],
    now: datetime,
    *,
    texted: bool = True,
    **ids: int,
) -> list[OpsAlertRow]:
    """The alert rows of ``source``, one per configured route (the webhook; the on-call phones when
    ``texted``), in the caller's transaction. The unique (source, route) refuses a second write."""
    routes = [WEBHOOK] if settings.alerts.webhook_url else []
    phones = phone_channel()
    if texted and settings.alerts.oncall and phones:
        routes.append(phones)
    rows = [
        OpsAlertRow(
            source=source,
            route=route,
            state="pending",
            message=message,
            attempts=0,
            next_try_at=now,
            created_at=now,
            **ids,
        )
        for route in routes
    ]
    session.add_all(rows)
    return rows


def signature(secret: str, body: bytes) -> str:
    """The webhook's ``X-Dispatch-Signature``: HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def alert_key(alert_id: int) -> str:
    """The idempotency key of an alert: the same on every try."""
    return hashlib.sha256(f"ops-alert:{alert_id}".encode()).hexdigest()[:32]


class _GiveUp(Exception):
    """An alert that will not go through however often it is tried."""


def send_alerts(
    ledger: Ledger,
    settings: Settings,
    sms_channel_for: Callable[[str], Channel],
    session: Any = requests,
    now: datetime | None = None,
) -> int:
    """Send every due operator alert once; returns how many went out. ``session`` makes the webhook's
    requests (``requests`` or a ``requests.Session``); ``sms_channel_for`` builds the SMS adapter."""
    now = now or ledger.now()
    with ledger.session() as db:
        due = db.execute(
            select(OpsAlertRow.id, OpsAlertRow.attempts)
            .where(OpsAlertRow.state == "pending", OpsAlertRow.next_try_at <= now)
            .order_by(OpsAlertRow.id)
        ).all()
    sent = 0
    for alert_id, attempts in due:
        with ledger.session() as db:
            earlier = db.scalar(  # texts go in the order of their changes: a phone reads them as a story
                select(func.count())
                .select_from(OpsAlertRow)
                .where(
                    OpsAlertRow.id < alert_id,
                    OpsAlertRow.route != WEBHOOK,
                    OpsAlertRow.route
                    == select(OpsAlertRow.route).where(OpsAlertRow.id == alert_id).scalar_subquery(),
                    OpsAlertRow.state == "pending",
                )
            )
            if earlier:
                continue  # an earlier text waits for its next try: this one waits behind it
            claimed = db.execute(
                update(OpsAlertRow)
                .where(
                    OpsAlertRow.id == alert_id,
                    OpsAlertRow.state == "pending",
                    OpsAlertRow.attempts == attempts,
                )
                .values(attempts=attempts + 1, next_try_at=now + CLAIM)
                .execution_options(synchronize_session=False)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another sender has it
            alert = db.get(OpsAlertRow, alert_id)
            assert alert is not None
            route, message = alert.route, alert.message
        error, final = None, False
        try:
            if route == WEBHOOK:
                _post(settings, session, alert_id, message["json"], now)
            else:
                _text(settings, sms_channel_for(route), alert_id, route, message["text"])
        except _GiveUp as exc:
            error, final = str(exc), True
        except (ChannelError, requests.RequestException, DispatchError) as exc:
            error = str(exc) if isinstance(exc, DispatchError) else f"{type(exc).__name__}"
            final = isinstance(exc, OutcomeUnknownError) or (
                isinstance(exc, ChannelError) and not isinstance(exc, TemporaryChannelError)
            )
        tries = attempts + 1
        with ledger.session() as db:
            alert = db.get(OpsAlertRow, alert_id)
            assert alert is not None
            detail: dict[str, Any] = {
                "alert": alert_id,
                "source": alert.source,
                "route": route,
                "attempts": tries,
            }
            if error is None:
                alert.state, alert.sent_at, alert.last_error = "sent", now, None
                record(db, "alert.sent", actor=ACTOR, **detail)
                sent += 1
            elif final or tries >= settings.alerts.attempts:
                alert.state, alert.last_error = "failed", error[:500]
                record(db, "alert.failed", actor=ACTOR, error=error[:300], **detail)
            else:
                wait = min(settings.alerts.retry_seconds * 2 ** (tries - 1), MAX_RETRY)
                alert.next_try_at, alert.last_error = now + timedelta(seconds=wait), error[:500]
                record(db, "alert.retrying", actor=ACTOR, error=error[:300], wait=wait, **detail)
    return sent


def _post(settings: Settings, http: Any, alert_id: int, body: dict[str, Any], now: datetime) -> None:
    url = settings.alerts.webhook_url.get_secret_value() if settings.alerts.webhook_url else ""
    if not url:
        raise _GiveUp("no webhook_url is set any more")
    # The key and the time of this try are inside the signed body: a receiver drops a repeat by the key
    # and a replay by the time, and neither can be changed without breaking the signature.
    signed = {**body, "key": alert_key(alert_id), "sent_at": now.isoformat()}
    data = json.dumps(signed, ensure_ascii=False, sort_keys=True).encode("utf-8")
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Dispatch-Signature": signature(settings.alerts.webhook_secret.get_secret_value(), data),
        "Idempotency-Key": alert_key(alert_id),
    }
    response = http.post(url, data=data, headers=headers, timeout=settings.alerts.timeout)
    if response.status_code >= 400:
        problem = f"webhook answered HTTP {response.status_code}"
        if response.status_code in TEMPORARY_STATUS:
            raise TemporaryChannelError(problem)
        raise _GiveUp(problem)


def _text(settings: Settings, channel: Channel, alert_id: int, route: str, text: str) -> None:
    phones = settings.alerts.oncall
    if not phones:
        raise _GiveUp("no on-call numbers are set any more")
    channel.send(channel.direct(text, list(phones)), alert_key(alert_id))


# -- what the page shows -------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``share`` of them at or below it,
    counted as the disclosure report counts it."""
    return nearest_rank(sorted(values), share * 100)


def timings(values: list[float]) -> dict[str, Any]:
    return {
        "count": len(values),
        "median": percentile(values, 0.5),  # nearest rank, as the disclosure report counts it
        "p95": percentile(values, 0.95),
    }


def rate(counts: Counter[str]) -> float | None:
    """Sends that went through, of all send outcomes; None when there were none."""
    total = counts["sent"] + counts["failing"]
    return counts["sent"] / total if total else None


def approval_to_sent(session: Session, since: datetime) -> dict[tuple[str, str], list[float]]:
    """Seconds from each revision's approval to its deliveries' ``sent_at``, for deliveries that put an
    item on a target and were sent since ``since``."""
    rows = session.execute(
        select(DeliveryRow.channel, DeliveryRow.target, ApprovalRow.at, DeliveryRow.sent_at)
        .join(ApprovalRow, ApprovalRow.revision_id == DeliveryRow.revision_id)
        .where(
            DeliveryRow.sent_at >= since,
            DeliveryRow.state == DeliveryState.sent,
            DeliveryRow.action.in_(list(SHOWING)),
        )
    ).all()
    found: dict[tuple[str, str], list[float]] = {}
    for channel, target, approved, sent in rows:
        if sent is None:  # never, given sent_at >= since; says so to the type checker
            continue
        found.setdefault(folded(channel, target), []).append((sent - approved).total_seconds())
    return found


def overdue(session: Session, settings: Settings, now: datetime, limit: int = 500) -> list[dict[str, Any]]:
    """Deliveries not sent yet past their kind's deadline (``DISPATCH_MONITOR__OVERDUE_AFTER``), counted
    from the revision's approval or its ``publish_at``, whichever is later: warnings first, then oldest
    first. A delivery that waits on purpose without having been tried (an item scheduled for later, a
    routine text held by quiet hours or by the daily cap until the morning) is not overdue: its
    ``next_attempt_at`` is still to come and it has spent no attempt."""
    deadlines = settings.monitor.overdue_after
    if not deadlines:
        return []
    rows = session.execute(
        select(DeliveryRow, ItemRow.kind, ItemRow.title, ApprovalRow.at, RevisionRow.document)
        .join(ItemRow, ItemRow.id == DeliveryRow.item_id)
        .join(RevisionRow, RevisionRow.id == DeliveryRow.revision_id)
        .join(ApprovalRow, ApprovalRow.revision_id == DeliveryRow.revision_id)
        .where(
            DeliveryRow.state.in_(list(OPEN)),
            DeliveryRow.action.in_(list(SHOWING)),
            ItemRow.kind.in_(list(deadlines)),
            ApprovalRow.at < now - timedelta(seconds=min(deadlines.values())),
            or_(  # not waiting on purpose (written so that a NULL time counts as due)
                DeliveryRow.attempts > 0,
                DeliveryRow.next_attempt_at.is_(None),
                DeliveryRow.next_attempt_at <= now,
            ),
        )
        .order_by(case((ItemRow.kind == "warning", 0), else_=1), ApprovalRow.at)
        .limit(limit)
    ).all()
    found = []
    for delivery, kind, title, approved, document in rows:
        start = approved
        publish_at = (document or {}).get("publish_at")
        if publish_at:
            start = max(start, datetime.fromisoformat(publish_at))
        due = start + timedelta(seconds=deadlines[kind])
        if due <= now:
            found.append(
                {
                    "delivery": delivery.id,
                    "item": delivery.item_id,
                    "kind": kind,
                    "title": title,
                    "channel": delivery.channel,
                    "target": delivery.target,
                    "state": delivery.state.value,
                    "last_error": delivery.last_error,
                    "due_at": due.isoformat(),
                    "late_seconds": round((now - due).total_seconds(), 1),
                }
            )
    return found


def _waiting(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(DeliveryRow.channel, DeliveryRow.target, func.count())
        .where(DeliveryRow.state.in_(list(WAITING)))
        .group_by(DeliveryRow.channel, DeliveryRow.target)
    ).all()
    found: Counter[tuple[str, str]] = Counter()
    for channel, target, count in rows:
        found[folded(channel, target)] += count
    return dict(found)


def _summed(values: dict[tuple[str, str], Any], channel: str, empty: Any) -> Any:
    parts = [v for (name, _), v in values.items() if name == channel]
    return sum(parts, empty)


def snapshot(ledger: Ledger, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """What the status page shows, JSON-ready: per channel and target its health, circuit, waiting
    deliveries, success rate and approval-to-sent median and p95 over the last hour and day; the 20
    latest items with their deliveries' states per channel; overdue and dead deliveries."""
    now = now or ledger.now()
    hour, day = now - timedelta(hours=1), now - timedelta(days=1)
    with ledger.session() as session:
        health = {(r.channel, r.target): r for r in session.scalars(select(ChannelHealthRow))}
        circuits = {(c.channel, c.target): c for c in session.scalars(select(CircuitRow))}
        waiting = _waiting(session)
        rates = {"hour": outcomes(session, hour, now), "day": outcomes(session, day, now)}
        day_times = approval_to_sent(session, day)
        hour_times = approval_to_sent(session, hour)
        late = overdue(session, settings, now)
        dead = session.scalars(
            select(DeliveryRow)
            .where(DeliveryRow.state == DeliveryState.dead)
            .order_by(DeliveryRow.updated_at.desc())
            .limit(100)
        ).all()
        items = _recent_items(session, {entry["item"] for entry in late})

        def view(channel: str, target: str) -> dict[str, Any]:
            row = health.get((channel, target))
            if target == WHOLE:  # a channel as a whole: everything counted under it
                counted = {period: _summed(found, channel, Counter[str]()) for period, found in rates.items()}
                queued = _summed(waiting, channel, 0)
                times = {"hour": _summed(hour_times, channel, []), "day": _summed(day_times, channel, [])}
            else:
                counted = {period: found.get((channel, target), Counter()) for period, found in rates.items()}
                queued = waiting.get((channel, target), 0)
                times = {
                    "hour": hour_times.get((channel, target), []),
                    "day": day_times.get((channel, target), []),
                }
            circuit = circuits.get((channel, target))
            return {
                "channel": channel,
                "target": None if target == WHOLE else target,
                "state": row.state if row else UNKNOWN,
                "since": row.since.isoformat() if row else None,
                "checked_at": row.checked_at.isoformat() if row else None,
                "detail": row.detail if row else None,
                "latency_ms": row.latency_ms if row else None,
                "last_error": row.last_error if row else None,
                "last_error_at": row.last_error_at.isoformat() if row and row.last_error_at else None,
                "circuit": circuit.state if circuit else (None if target == WHOLE else "closed"),
                "waiting": queued,
                "success_rate": {period: rate(c) for period, c in counted.items()},
                "outcomes": {period: dict(c) for period, c in counted.items()},
                "approval_to_sent": {period: timings(values) for period, values in times.items()},
            }

        channels = []
        for channel in REGISTRY:
            entry = view(channel, WHOLE)
            keys = {
                k
                for k in (*health, *circuits, *waiting, *rates["day"], *day_times)
                if k[0] == channel and k[1] != WHOLE and folded(*k) == k
            }
            entry["targets"] = [view(channel, target) for _, target in sorted(keys)]
            entry["circuits_open"] = sum(1 for k in keys if k in circuits and circuits[k].state != "closed")
            channels.append(entry)
        return {
            "at": now.isoformat(),
            "channels": channels,
            "items": items,
            "overdue": late,
            "dead": [
                {
                    "delivery": d.id,
                    "item": d.item_id,
                    "channel": d.channel,
                    "target": d.target,
                    "attempts": d.attempts,
                    "last_error": d.last_error,
                    "at": d.updated_at.isoformat(),
                }
                for d in dead
            ],
        }


def _recent_items(session: Session, late: set[int], limit: int = 20) -> list[dict[str, Any]]:
    """The latest items with their deliveries' states counted per channel; ``overdue`` marks items with
    a delivery past its deadline."""
    items = session.scalars(select(ItemRow).order_by(ItemRow.id.desc()).limit(limit)).all()
    per: dict[int, dict[str, dict[str, int]]] = {}
    for item_id, channel, state, count in session.execute(
        select(DeliveryRow.item_id, DeliveryRow.channel, DeliveryRow.state, func.count())
        .where(DeliveryRow.item_id.in_([i.id for i in items]))
        .group_by(DeliveryRow.item_id, DeliveryRow.channel, DeliveryRow.state)
    ).all():
        per.setdefault(item_id, {}).setdefault(channel, {})[state.value] = count
    return [
        {
            "id": i.id,
            "kind": i.kind,
            "title": i.title,
            "state": i.state.value,
            "created_at": i.created_at.isoformat(),
            "channels": per.get(i.id, {}),
            "overdue": i.id in late,
        }
        for i in items
    ]
