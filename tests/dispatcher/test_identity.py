"""Users, roles and tokens: who may act, and that only a token's hash is kept."""

from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import func, select

from dispatcher import identity
from dispatcher.errors import AuthenticationError, ForbiddenError, NotFoundError, RefusedError
from dispatcher.identity import PERMISSIONS, Role
from dispatcher.ledger import EventRow, Ledger, UserRow
from tests.dispatcher.test_migrations import postgres, postgres_url  # noqa: F401  (fixtures)


@pytest.fixture
def admin(ledger: Ledger) -> identity.User:
    return identity.authenticate(ledger, identity.bootstrap(ledger, "管理员").token)


def test_bootstrap_makes_the_first_admin_once(ledger: Ledger) -> None:
    first = identity.bootstrap(ledger, "管理员")
    assert first.user.roles == {Role.admin}
    assert identity.authenticate(ledger, first.token) == first.user
    with pytest.raises(RefusedError, match="has users already"):
        identity.bootstrap(ledger, "另一个")


def test_only_the_hash_of_a_token_is_kept(ledger: Ledger, admin: identity.User) -> None:
    issued = identity.add(ledger, admin, "陈刚", frozenset({Role.approver}))
    secret = issued.token.split("_", 2)[2]  # the secret may hold "_" itself
    with ledger.session() as session:
        row = session.scalars(select(UserRow).where(UserRow.name == "陈刚")).one()
        stored = [str(value) for value in (row.token_id, row.token_hash, row.roles, row.key)]
        details = [str(e.detail) for e in session.scalars(select(EventRow))]
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert not any(secret in value for value in stored + details)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not a token",
        "dsp_000000000000_" + "A" * 43,  # no such id
        "dsp_" + "0" * 12 + "_" + "A" * 42,  # the wrong shape
    ],
)
def test_a_token_that_is_no_users_is_refused(ledger: Ledger, admin: identity.User, token: str) -> None:
    with pytest.raises(AuthenticationError):
        identity.authenticate(ledger, token)


def test_a_right_id_with_a_wrong_secret_is_refused(ledger: Ledger, admin: identity.User) -> None:
    token = identity.add(ledger, admin, "陈刚", frozenset({Role.approver})).token
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(AuthenticationError, match="not valid"):
        identity.authenticate(ledger, forged)


def test_a_new_token_replaces_the_old_and_a_disabled_user_is_turned_away(
    ledger: Ledger, admin: identity.User
) -> None:
    old = identity.add(ledger, admin, "陈刚", frozenset({Role.approver})).token
    user = identity.authenticate(ledger, old)
    new = identity.new_token(ledger, user, "陈刚").token  # a user may replace their own
    with pytest.raises(AuthenticationError):
        identity.authenticate(ledger, old)
    assert identity.authenticate(ledger, new).name == "陈刚"
    with pytest.raises(ForbiddenError):
        identity.new_token(ledger, user, "管理员")  # but not another's
    identity.disable(ledger, admin, "陈刚")
    with pytest.raises(AuthenticationError, match="disabled"):
        identity.authenticate(ledger, new)
    with ledger.session() as session:
        events = session.scalars(select(EventRow).order_by(EventRow.id))
        names = [e.name for e in events if e.name.startswith("user.")]
    assert names == ["user.added", "user.added", "user.token_replaced", "user.disabled"]


def test_a_name_that_reads_like_another_users_is_refused(ledger: Ledger, admin: identity.User) -> None:
    identity.add(ledger, admin, "张敏", frozenset({Role.author}))
    for look_alike in ("張敏", "张 敏", "张\u200b敏"):
        with pytest.raises(RefusedError, match="reads the same"):
            identity.add(ledger, admin, look_alike, frozenset({Role.approver}))


def test_the_last_admin_cannot_be_disabled(ledger: Ledger, admin: identity.User) -> None:
    with pytest.raises(RefusedError, match="last admin"):
        identity.disable(ledger, admin, "管理员")
    identity.add(ledger, admin, "gone", frozenset({Role.admin}))
    identity.disable(ledger, admin, "gone")
    with pytest.raises(RefusedError, match="last admin"):  # a disabled admin is no admin
        identity.disable(ledger, admin, "管理员")
    identity.add(ledger, admin, "second", frozenset({Role.admin}))
    assert identity.disable(ledger, admin, "管理员").name == "管理员"


def test_only_an_admin_adds_users_and_roles_are_checked(ledger: Ledger, admin: identity.User) -> None:
    author = identity.authenticate(
        ledger, identity.add(ledger, admin, "张敏", frozenset({Role.author})).token
    )
    with pytest.raises(ForbiddenError, match="needs the role admin"):
        identity.add(ledger, author, "李娜", frozenset({Role.author}))
    with pytest.raises(RefusedError, match="no role 'boss'"):
        identity.roles_of(["boss"])
    with pytest.raises(NotFoundError):
        identity.disable(ledger, admin, "nobody")


@pytest.mark.parametrize("role", list(Role))
def test_each_role_may_do_what_the_table_says_and_nothing_else(role: Role) -> None:
    user = identity.User(1, "someone", frozenset({role}))
    for action, allowed in PERMISSIONS.items():
        assert user.may(action) is (role in allowed)
    assert user.may("status") and user.may("preview")  # reading is open to every user
    assert set(identity.DOING) == set(PERMISSIONS)  # every refusal can say what was refused
    assert not identity.User(1, "admin", frozenset({Role.admin})).may("approve")  # admins manage users only


@pytest.mark.parametrize("name", ["   ", "\u200b\u200b", "Pаul", "名" * 101])
def test_a_name_that_cannot_be_on_the_record_is_refused_even_for_the_first_admin(
    ledger: Ledger, name: str
) -> None:
    with pytest.raises(RefusedError):
        identity.bootstrap(ledger, name)


def test_on_postgresql_two_first_admins_at_once_make_one(postgres_url: str) -> None:  # noqa: F811
    """The first-admin rule reads the users table: two bootstraps at once take turns, and one wins."""
    ledgers = [Ledger(postgres_url) for _ in range(2)]
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def first_admin(ledger: Ledger, name: str) -> None:
        start.wait()
        try:
            identity.bootstrap(ledger, name)
            outcomes.append("made")
        except RefusedError:
            outcomes.append("refused")

    threads = [
        threading.Thread(target=first_admin, args=(ledger, f"admin{i}")) for i, ledger in enumerate(ledgers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    with ledgers[0].session() as session:
        admins = session.scalar(select(func.count()).select_from(UserRow))
    for ledger in ledgers:
        ledger.dispose()
    assert sorted(outcomes) == ["made", "refused"] and admins == 1


def test_a_disabled_user_comes_back_with_a_new_token_and_roles_change_on_the_record(
    ledger: Ledger, admin: identity.User
) -> None:
    old = identity.add(ledger, admin, "李娜", frozenset({Role.author})).token
    identity.disable(ledger, admin, "李娜")
    back = identity.enable(ledger, admin, "李娜")
    with pytest.raises(AuthenticationError):
        identity.authenticate(ledger, old)  # the token she had stays dead
    assert identity.authenticate(ledger, back.token).name == "李娜"
    with pytest.raises(RefusedError, match="not disabled"):
        identity.enable(ledger, admin, "李娜")
    changed = identity.set_roles(ledger, admin, "李娜", frozenset({Role.author, Role.approver}))
    assert changed.roles == {Role.author, Role.approver}
    assert identity.authenticate(ledger, back.token).roles == {Role.author, Role.approver}
    with pytest.raises(RefusedError, match="last admin"):
        identity.set_roles(ledger, admin, "管理员", frozenset({Role.auditor}))
    lina = identity.authenticate(ledger, back.token)
    with pytest.raises(ForbiddenError):
        identity.set_roles(ledger, lina, "李娜", frozenset(Role))  # no one gives themself roles
    with ledger.session() as session:
        changes = [e.detail for e in session.scalars(select(EventRow)) if e.name == "user.roles_changed"]
    assert changes == [{"user": "李娜", "before": ["author"], "after": ["approver", "author"]}]
