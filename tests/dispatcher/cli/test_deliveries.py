"""``dispatch redrive``: dead deliveries sent again, on the record."""

from __future__ import annotations

from dispatcher.identity import Role
from dispatcher.ledger import Ledger
from tests.dispatcher.cli import run, token_of


def test_redrive_needs_an_operator_and_a_known_channel(ledger: Ledger) -> None:
    approver_only = run("redrive", env={"DISPATCH_TOKEN": token_of("赵六", frozenset({Role.approver}))})
    assert approver_only.exit_code == 1
    assert "赵六 may not re-drive deliveries: that needs the role operator" in approver_only.stderr
    assert "did you mean 'microblog'" in run("redrive", "--as", "李雷", "--channel", "microblg").stderr
    assert run("redrive", "--as", "李雷").stdout.strip() == "re-drove 0 dead deliveries"
