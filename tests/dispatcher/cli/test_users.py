"""Users on the command line: the first admin, tokens shown once, token files, roles and the author."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dispatcher.identity import Role
from dispatcher.ledger import ItemRow, Ledger
from tests.dispatcher.cli import count, run, token_of, write


def test_the_first_admin_is_bootstrapped_once_and_adds_users(tmp_path: Path, ledger: Ledger) -> None:
    token_file = tmp_path / "config" / "token"
    first = run("users", "bootstrap", "管理员", "--save", env={"DISPATCH_TOKEN_FILE": str(token_file)})
    assert first.exit_code == 0, first.stderr
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert first.stdout == ""  # written to the file, not shown
    admin = {"DISPATCH_TOKEN_FILE": str(token_file)}
    assert run("whoami", env=admin).stdout.strip() == "管理员: admin"
    again = run("users", "bootstrap", "别人", env={})
    assert again.exit_code == 1 and "has users already" in again.stderr

    added = run("users", "add", "陈刚", "--role", "approver", "--role", "operator", env=admin)
    assert added.exit_code == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("dsp_") and "shown this once" in added.stderr
    assert run("whoami", env={"DISPATCH_TOKEN": token}).stdout.strip() == "陈刚: approver operator"
    listed = json.loads(run("users", "list", "--json", env=admin).stdout)
    assert [(u["name"], u["roles"]) for u in listed] == [
        ("管理员", ["admin"]),
        ("陈刚", ["approver", "operator"]),
    ]
    assert token not in json.dumps(listed)
    refused = run("users", "add", "李娜", "--role", "author", env={"DISPATCH_TOKEN": token})
    assert refused.exit_code == 1 and "陈刚 may not manage users: that needs the role admin" in refused.stderr
    assert run("users", "disable", "陈刚", env=admin).exit_code == 0
    turned_away = run("whoami", env={"DISPATCH_TOKEN": token})
    assert turned_away.exit_code == 1 and "disabled" in turned_away.stderr


def test_a_token_file_others_can_read_is_refused(tmp_path: Path, ledger: Ledger) -> None:
    path = tmp_path / "token"
    path.write_text(token_of("张敏") + "\n")
    os.chmod(path, 0o644)
    result = run("whoami", env={"DISPATCH_TOKEN_FILE": str(path)})
    assert result.exit_code == 1 and "can be read by others (mode 644)" in result.stderr
    os.chmod(path, 0o600)
    assert run("whoami", env={"DISPATCH_TOKEN_FILE": str(path)}).stdout.startswith("张敏:")


def test_nothing_changes_without_a_token(tmp_path: Path, ledger: Ledger) -> None:
    missing = {"DISPATCH_TOKEN_FILE": str(tmp_path / "none")}
    result = run("submit", str(write(tmp_path)), env=missing)
    assert result.exit_code == 1 and "no token" in result.stderr
    forged = run("submit", str(write(tmp_path)), env={"DISPATCH_TOKEN": "dsp_000000000000_" + "x" * 43})
    assert forged.exit_code == 1 and "not valid" in forged.stderr
    assert count(ledger, ItemRow) == 0


def test_the_author_on_the_record_is_the_user_who_submits(tmp_path: Path, ledger: Ledger) -> None:
    someone_else = run("submit", str(write(tmp_path, author="李娜")))  # acting as 张敏
    assert someone_else.exit_code == 2
    assert "author: names '李娜', but 张敏 submits it" in someone_else.stderr
    unnamed = run("submit", str(write(tmp_path, author=None)), "--as", "李娜")
    assert unnamed.exit_code == 0, unnamed.stderr
    status = json.loads(run("status", "1", "--json").stdout)
    assert status["author"] == "李娜"
    own = run("approve", "1", "--as", "李娜")
    assert own.exit_code == 1 and "written by 李娜; another person must approve it" in own.stderr


@pytest.mark.parametrize(
    ("role", "args"),
    [
        (Role.approver, ("submit", "item.yaml")),
        (Role.author, ("approve", "1")),
        (Role.author, ("reject", "1", "--reason", "no")),
        (Role.author, ("retract", "1", "--reason", "no")),
        (Role.approver, ("redrive",)),
        (Role.operator, ("ledger", "export", "--from", "2026-01-01", "--to", "2026-12-31")),
        (Role.auditor, ("rota", "approve", "tips")),
        (Role.author, ("report", "--quarter", "2026Q4")),
        (Role.approver, ("update", "1", "item.yaml")),
        (Role.author, ("subscribers", "list")),
        (Role.author, ("subscribers", "import", "subscribers.csv")),
        (Role.approver, ("rota", "submit", "rota.yaml")),
        (Role.author, ("rota", "pause", "tips")),
        (Role.author, ("ledger", "verify")),
        (Role.approver, ("users", "disable", "someone")),
    ],
)
def test_a_command_refuses_a_user_without_its_role(
    tmp_path: Path, ledger: Ledger, role: Role, args: tuple[str, ...]
) -> None:
    write(tmp_path)
    result = run(*args, env={"DISPATCH_TOKEN": token_of(f"only-{role.value}", frozenset({role}))})
    assert result.exit_code == 1, result.stdout
    assert f"only-{role.value} may not" in result.stderr and "needs the role" in result.stderr


def test_an_admin_changes_roles_and_lets_a_disabled_user_back_in(tmp_path: Path, ledger: Ledger) -> None:
    admin = {"DISPATCH_TOKEN": token_of("管理员二", frozenset({Role.admin}))}
    added = run("users", "add", "李娜", "--role", "author", env=admin)
    assert added.exit_code == 0, added.stderr
    roles = run("users", "roles", "李娜", "--role", "author", "--role", "approver", env=admin)
    assert roles.stdout.strip() == "user 李娜: approver author"
    assert run("users", "disable", "李娜", env=admin).exit_code == 0
    back = run("users", "enable", "李娜", "-o", str(tmp_path / "lina.token"), env=admin)
    assert back.exit_code == 0, back.stderr
    again = run("whoami", env={"DISPATCH_TOKEN_FILE": str(tmp_path / "lina.token")})
    assert again.stdout.strip() == "李娜: approver author"
    assert run("whoami", env={"DISPATCH_TOKEN": added.stdout.strip()}).exit_code == 1  # the old token
