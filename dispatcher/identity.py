"""Who may act: users, their roles and their tokens.

A user is a name on the record and one or more roles; the command line and the HTTP API act as the
user whose token they carry. The token is shown once, when the user is added (or given a new one), and
only its hash is kept. A token is ``dsp_<id>_<secret>``: the id finds the row, the secret (32 random
bytes) is compared with the stored SHA-256 in constant time. The secret is random, not a password a
person chose, so a fast hash is enough: no dictionary guesses it.

What each role may do is one table, :data:`PERMISSIONS`. Reading (status, previews, the channels) is
open to every user; roles guard what changes state and what exports the ledger. ``admin`` manages the
users (adds, disables and enables them, changes their roles, gives them new tokens) and nothing else:
an admin who also approves is given both roles, on the record.

The four-eyes rule compares users by name (:mod:`dispatcher.approval`); names are unique by what a reader
sees (:func:`dispatcher.people.person_key`), so no user can be added under a look-alike of another's.

The first admin is made by :func:`bootstrap`, which works only while the ledger has no user at all.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatcher import people
from dispatcher.errors import AuthenticationError, ForbiddenError, NotFoundError, RefusedError
from dispatcher.ledger import Ledger, UserRow, record


class Role(enum.StrEnum):
    author = "author"
    approver = "approver"
    operator = "operator"
    auditor = "auditor"
    admin = "admin"


#: What changes state or reads the ledger whole, and the roles that may do it. Anything not named here
#: is reading, open to every user.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "submit": frozenset({Role.author}),
    "update": frozenset({Role.author}),
    "approve": frozenset({Role.approver}),
    "reject": frozenset({Role.approver}),
    "retract": frozenset({Role.approver}),
    "redrive": frozenset({Role.operator}),
    "subscribers": frozenset({Role.operator}),
    "rota.submit": frozenset({Role.author}),
    "rota.review": frozenset({Role.approver}),
    "rota.run": frozenset({Role.operator, Role.approver}),  # pause, resume, retire
    "ledger": frozenset({Role.auditor}),  # export, report, verify
    "users": frozenset({Role.admin}),
}
#: What each action is, as a refusal says it.
DOING = {
    "submit": "submit items",
    "update": "submit corrections",
    "approve": "approve",
    "reject": "reject",
    "retract": "withdraw items",
    "redrive": "re-drive deliveries",
    "subscribers": "import or list subscribers",
    "rota.submit": "submit rotas",
    "rota.review": "review rotas",
    "rota.run": "pause, resume or retire rotas",
    "ledger": "export, verify or report on the ledger",
    "users": "manage users",
}
TOKEN = re.compile(r"dsp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class User:
    id: int
    name: str
    roles: frozenset[Role]

    def may(self, action: str) -> bool:
        allowed = PERMISSIONS.get(action)
        return allowed is None or bool(self.roles & allowed)

    def require(self, action: str) -> User:
        """This user, if they may ``action``; a ForbiddenError naming the roles that may otherwise."""
        if not self.may(action):
            needed = " or ".join(sorted(PERMISSIONS[action]))
            raise ForbiddenError(f"{self.name} may not {DOING[action]}: that needs the role {needed}")
        return self


@dataclass(frozen=True)
class Issued:
    """A user just added or given a new token: the token is in no other place; show it once."""

    user: User
    token: str = field(repr=False)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _new_token() -> tuple[str, str, str]:
    """(token, its id, the hash of its secret)."""
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return f"dsp_{token_id}_{secret}", token_id, _digest(secret)


def _user(row: UserRow) -> User:
    return User(row.id, row.name, frozenset(Role(r) for r in row.roles.split()))


def roles_of(names: list[str] | tuple[str, ...]) -> frozenset[Role]:
    """Role names checked: an unknown one is refused, naming the ones there are."""
    roles = set()
    for name in names:
        try:
            roles.add(Role(name.strip().lower()))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise RefusedError(f"no role {name!r}; the roles are {known}") from None
    if not roles:
        raise RefusedError("a user needs at least one role")
    return frozenset(roles)


def _add(session: Session, name: str, roles: frozenset[Role], by: str) -> Issued:
    try:
        name = people.checked_name(name)
    except ValueError as exc:
        raise RefusedError(f"the name {name[:100]!r} {exc}") from None
    if len(name) > 100:
        raise RefusedError("a user's name has at most 100 characters")
    key = people.person_key(name)
    taken = session.scalar(select(UserRow).where(UserRow.key == key))
    if taken is not None:
        raise RefusedError(f"a user named {taken.name!r} exists, and {name!r} reads the same")
    by = by or name
    token, token_id, hashed = _new_token()
    row = UserRow(
        name=name,
        key=key,
        roles=" ".join(sorted(roles)),
        token_id=token_id,
        token_hash=hashed,
        created_by=by,
    )
    session.add(row)
    session.flush()
    record(session, "user.added", actor=by, user=name, roles=sorted(roles))
    return Issued(_user(row), token)


#: On PostgreSQL, the changes whose rule reads other users (the first admin, the last admin) take turns:
#: two at once would each read a table the other is changing. SQLite has one writer at a time already.
USERS_LOCK = 0x7E11_05E5


def _take_turns(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": USERS_LOCK})


def bootstrap(ledger: Ledger, name: str) -> Issued:
    """The first admin, while the ledger has no user; refused once it has one."""
    try:
        with ledger.session() as session:
            _take_turns(session)
            if session.scalar(select(func.count()).select_from(UserRow)):
                raise RefusedError(
                    "the ledger has users already; an admin adds more (dispatch users add NAME --role …)"
                )
            return _add(session, name, frozenset({Role.admin}), by="")  # the first admin adds themself
    except IntegrityError:  # another bootstrap won the race
        raise RefusedError("the ledger has users already") from None


def add(ledger: Ledger, by: User, name: str, roles: frozenset[Role]) -> Issued:
    """A new user with ``roles``, added by an admin."""
    by.require("users")
    try:
        with ledger.session() as session:
            return _add(session, name, roles, by.name)
    except IntegrityError:
        raise RefusedError(f"a user named {name!r} exists") from None


def _row(session: Session, name: str) -> UserRow:
    row = session.scalar(select(UserRow).where(UserRow.key == people.person_key(name)))
    if row is None:
        raise NotFoundError(f"no user {name!r}")
    return row


def _admins_left(session: Session, without: UserRow) -> int:
    rows = session.scalars(select(UserRow).where(UserRow.disabled_at.is_(None), UserRow.id != without.id))
    return sum(1 for r in rows if Role.admin.value in r.roles.split())


def disable(ledger: Ledger, by: User, name: str, now: datetime | None = None) -> User:
    """Turn a user away from now on (their token stops working); their name stays on the record."""
    by.require("users")
    with ledger.session() as session:
        _take_turns(session)
        row = _row(session, name)
        if row.disabled_at is not None:
            raise RefusedError(f"user {row.name!r} is already disabled")
        if Role.admin.value in row.roles.split() and not _admins_left(session, row):
            raise RefusedError(f"{row.name!r} is the last admin; add another admin first")
        row.disabled_at = now or ledger.now()
        record(session, "user.disabled", actor=by.name, user=row.name)
        return _user(row)


def enable(ledger: Ledger, by: User, name: str) -> Issued:
    """Let a disabled user back in, with a new token: the one they had stays dead (it may be why they
    were turned away)."""
    by.require("users")
    with ledger.session() as session:
        row = _row(session, name)
        if row.disabled_at is None:
            raise RefusedError(f"user {row.name!r} is not disabled")
        row.disabled_at = None
        token, row.token_id, row.token_hash = _new_token()
        record(session, "user.enabled", actor=by.name, user=row.name)
        return Issued(_user(row), token)


def set_roles(ledger: Ledger, by: User, name: str, roles: frozenset[Role]) -> User:
    """Give ``name`` exactly ``roles`` (admin only), on the record; the last admin keeps that role."""
    by.require("users")
    if not roles:
        raise RefusedError("a user needs at least one role")
    with ledger.session() as session:
        _take_turns(session)
        row = _row(session, name)
        before = row.roles.split()
        if Role.admin.value in before and Role.admin not in roles and not _admins_left(session, row):
            raise RefusedError(f"{row.name!r} is the last admin; add another admin first")
        row.roles = " ".join(sorted(roles))
        after = sorted(roles)
        record(session, "user.roles_changed", actor=by.name, user=row.name, before=before, after=after)
        return _user(row)


def new_token(ledger: Ledger, by: User, name: str) -> Issued:
    """A new token for ``name`` (the old one stops working): by an admin, or by the user themselves."""
    if people.person_key(name) != people.person_key(by.name):
        by.require("users")
    with ledger.session() as session:
        row = _row(session, name)
        if row.disabled_at is not None:
            raise RefusedError(f"user {row.name!r} is disabled")
        token, row.token_id, row.token_hash = _new_token()
        record(session, "user.token_replaced", actor=by.name, user=row.name)
        return Issued(_user(row), token)


def authenticate(ledger: Ledger, token: str) -> User:
    """The user ``token`` belongs to; an AuthenticationError, saying no more than that, otherwise."""
    match = TOKEN.fullmatch(token.strip())
    if match is None:
        raise AuthenticationError("not a dispatcher token (dsp_…)")
    with ledger.session() as session:
        row = session.scalar(select(UserRow).where(UserRow.token_id == match[1]))
        if row is None or not hmac.compare_digest(row.token_hash, _digest(match[2])):
            raise AuthenticationError("the token is not valid (wrong, or replaced by a newer one)")
        if row.disabled_at is not None:
            raise AuthenticationError(f"user {row.name!r} is disabled")
        return _user(row)


def listing(ledger: Ledger) -> list[dict[str, object]]:
    """Every user, as the record shows them (never a token)."""
    with ledger.session() as session:
        return [
            {
                "name": row.name,
                "roles": row.roles.split(),
                "created_by": row.created_by,
                "created_at": row.created_at.isoformat(),
                "disabled_at": row.disabled_at.isoformat() if row.disabled_at else None,
            }
            for row in session.scalars(select(UserRow).order_by(UserRow.id))
        ]
