"""CAP alerts on the command line: ``dispatch submit alert.xml``, ``dispatch export ID --cap``."""

from __future__ import annotations

import re
from pathlib import Path

from dispatcher.identity import Role
from dispatcher.ledger import Ledger
from settings import Settings
from tests.dispatcher.cli import run, token_of
from tests.dispatcher.test_alerts import FIXTURES, fixture, valid_cap


def test_cap_is_taken_in_and_invalid_cap_refused_with_its_line(
    tmp_path: Path, settings: Settings, ledger: Ledger
) -> None:
    alert = tmp_path / "alert.xml"
    alert.write_bytes(fixture("warning-alert.xml"))
    without_token = run("submit", str(alert), env={})
    assert without_token.exit_code == 1 and "no token" in without_token.stderr
    taken = run("submit", str(alert), "--as", "张敏")
    assert taken.exit_code == 0, taken.stderr
    assert taken.stdout.strip() == "1"
    broken = tmp_path / "broken.xml"
    broken.write_bytes(
        fixture("warning-alert.xml").replace(b"<severity>Severe</severity>", b"<severity>Huge</severity>")
    )
    refused = run("submit", str(broken), "--as", "张敏")
    assert refused.exit_code == 2
    assert re.search(r"line \d+: alert/info/severity", refused.stderr), refused.stderr
    unclosed = tmp_path / "unclosed.xml"
    unclosed.write_bytes(
        (FIXTURES / "geometry-only.xml").read_bytes().replace(b" 39.95,116.15</polygon>", b"</polygon>")
    )
    geometry = run("submit", str(unclosed), "--as", "张敏")
    assert geometry.exit_code == 2 and "polygon" in geometry.stderr and "closed" in geometry.stderr
    first = run("approve", "1", "--as", "陈刚")
    assert first.exit_code == 0 and "nothing is sent yet" in first.stdout  # a Severe warning needs two
    again = run("approve", "1", "--as", "陈刚")
    assert again.exit_code == 1 and "another person" in again.stderr
    approve = run("approve", "1", "--as", "王强")
    assert approve.exit_code == 0, approve.stderr
    assert "approved by 陈刚, 王强" in approve.stdout
    exported = run("export", "1", "--cap")
    assert exported.exit_code == 0 and exported.stdout.startswith("<?xml")
    valid_cap(exported.stdout.encode("utf-8"))


def test_cap_needs_an_author_and_a_cancel_an_approver_too(tmp_path: Path, ledger: Ledger) -> None:
    for name in ("warning-alert.xml", "warning-cancel.xml"):
        (tmp_path / name).write_bytes(fixture(name))
    approver = {"DISPATCH_TOKEN": token_of("审批人", frozenset({Role.approver}))}
    refused = run("submit", str(tmp_path / "warning-alert.xml"), env=approver)
    assert refused.exit_code == 1 and "审批人 may not submit items" in refused.stderr
    assert run("submit", str(tmp_path / "warning-alert.xml"), "--as", "张敏").exit_code == 0
    author = {"DISPATCH_TOKEN": token_of("作者", frozenset({Role.author}))}
    cancel = run("submit", str(tmp_path / "warning-cancel.xml"), env=author)
    assert cancel.exit_code == 1
    assert "作者 may not withdraw items: that needs the role approver" in cancel.stderr
    both = {"DISPATCH_TOKEN": token_of("两者", frozenset({Role.author, Role.approver}))}
    past_the_roles = run("submit", str(tmp_path / "warning-cancel.xml"), env=both)
    assert "never approved" in past_the_roles.stderr  # the flow's own rule, not the roles, answers
