"""The ``dispatch`` command line, invoked in-process against a real ledger, broker and sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner, Result

from dispatcher.cli import cli
from dispatcher.ledger import Ledger
from tests.conftest import item_doc


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def write(tmp_path: Path, name: str = "item.yaml", **changes: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(item_doc(**changes), allow_unicode=True), encoding="utf-8")
    return path


def count(ledger: Ledger, model: type) -> int:
    with ledger.session() as session:
        return session.query(model).count()
