"""Circuit breakers, one per target, kept in the ledger so every worker sees the same state.

After ``DISPATCH_CIRCUIT_FAILURES`` temporary failures in a row a target's circuit opens: its
deliveries wait instead of hammering it. After ``DISPATCH_CIRCUIT_COOLDOWN`` seconds one delivery is
let through as a trial (half open); if it succeeds the circuit closes and the others follow, if it
fails the circuit opens again. ``dispatch channels`` lists the circuits that are not closed.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatcher.ledger import CircuitRow, record
from settings import Settings


def admit(session: Session, settings: Settings, channel: str, target: str, now: datetime) -> datetime | None:
    """None if a send to the target may go ahead now; else when to try again."""
    circuit = session.get(CircuitRow, (channel, target), with_for_update=True)
    if circuit is None or circuit.state == "closed":
        return None
    if circuit.open_until and circuit.open_until > now:
        return circuit.open_until
    # The rest is over: this delivery is the trial; the others wait for its outcome.
    circuit.state = "half_open"
    circuit.open_until = now + timedelta(seconds=settings.lease_seconds)
    return None


def succeeded(session: Session, channel: str, target: str, actor: str) -> None:
    circuit = session.get(CircuitRow, (channel, target), with_for_update=True)
    if circuit is None or (circuit.state == "closed" and circuit.failures == 0):
        return
    if circuit.state != "closed":
        record(session, "circuit.closed", actor=actor, channel=channel, target=target)
    circuit.state, circuit.failures, circuit.open_until, circuit.last_error = "closed", 0, None, None


def failed(
    session: Session, settings: Settings, channel: str, target: str, error: str, actor: str, now: datetime
) -> None:
    circuit = session.get(CircuitRow, (channel, target), with_for_update=True)
    if circuit is None:
        circuit = CircuitRow(channel=channel, target=target, state="closed", failures=0)
        session.add(circuit)
    circuit.failures += 1
    circuit.last_error = error[:500]
    if circuit.state == "half_open" or circuit.failures >= settings.circuit_failures:
        if circuit.state != "open":
            record(
                session,
                "circuit.opened",
                actor=actor,
                channel=channel,
                target=target,
                failures=circuit.failures,
                error=error[:300],
            )
        circuit.state = "open"
        circuit.open_until = now + timedelta(seconds=settings.circuit_cooldown)


def not_closed(session: Session) -> list[CircuitRow]:
    return list(session.scalars(select(CircuitRow).where(CircuitRow.state != "closed")))
