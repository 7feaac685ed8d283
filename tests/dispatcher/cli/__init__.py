"""The ``dispatch`` command line, invoked in-process against a real ledger, broker and sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

from dispatcher import identity
from dispatcher.cli import cli
from dispatcher.identity import Role
from dispatcher.ledger import Ledger
from settings import SettingsError, load_settings
from tests.conftest import item_doc

#: Who a command acts as when a test names nobody: the author of the test item.
AUTHOR = "张敏"
#: A test's users are made on first use, with every role but admin's (the roles' own tests make users
#: with one role each); their tokens, by ledger and name.
EVERY_ROLE = frozenset({Role.author, Role.approver, Role.operator, Role.auditor})
_tokens: dict[tuple[str, str], str] = {}


def token_of(name: str, roles: frozenset[Role] = EVERY_ROLE) -> str:
    """The token of user ``name`` in the ledger the environment names, made if need be."""
    url = load_settings().ledger_url
    database = make_url(url).database
    if database:  # a relative SQLite path is another file in each test's directory
        url = str(Path(database).resolve())
    if (url, name) not in _tokens:
        ledger = Ledger(load_settings().ledger_url)
        try:
            if (url, "") not in _tokens:
                _tokens[(url, "")] = identity.bootstrap(ledger, "管理员").token
            admin = identity.authenticate(ledger, _tokens[(url, "")])
            _tokens[(url, name)] = identity.add(ledger, admin, name, roles).token
        finally:
            ledger.dispose()
    return _tokens[(url, name)]


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    """``dispatch ARGS`` acting as the user ``--as NAME`` among them names (default: the author), or with
    the DISPATCH_TOKEN ``env`` gives."""
    args_list = list(args)
    name = AUTHOR
    if "--as" in args_list:
        at = args_list.index("--as")
        name = args_list[at + 1]
        del args_list[at : at + 2]
    if env is None:
        try:
            env = {"DISPATCH_TOKEN": token_of(name)}
        except SettingsError:  # the test's point is a bad setting: the command says so before any token
            env = {}
    return CliRunner().invoke(cli, args_list, env=env, catch_exceptions=False)


def write(tmp_path: Path, name: str = "item.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(item_doc(**changes), allow_unicode=True), encoding="utf-8")
    return path


def count(ledger: Ledger, model: type) -> int:
    with ledger.session() as session:
        return session.query(model).count()
