"""``dispatch redrive``: dead deliveries sent again, on the record."""

from __future__ import annotations

from dispatcher.ledger import Ledger
from tests.dispatcher.cli import run


def test_redrive_needs_an_operator_and_a_known_channel(ledger: Ledger) -> None:
    assert run("redrive").exit_code == 2  # --as is required
    assert "did you mean 'microblog'" in run("redrive", "--as", "李雷", "--channel", "microblg").stderr
    assert run("redrive", "--as", "李雷").stdout.strip() == "re-drove 0 dead deliveries"
