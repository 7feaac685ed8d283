"""Users and their tokens: ``users bootstrap | add | list | disable | enable | roles | token`` and
``whoami``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from dispatcher.cli.invocation import acting_user, get_settings, open_ledger, print_json
from dispatcher.text import table


def keep_token(token: str, path: Path | None) -> None:
    """Print the token (it is shown this once), or write it to ``path`` readable by its owner alone."""
    if path is None:
        click.echo(token)
        click.echo("keep it: it is shown this once (DISPATCH_TOKEN, or a file of mode 600)", err=True)
        return
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    click.echo(f"token written to {path} (mode 600)", err=True)


@click.group("users")
def users_group() -> None:
    """Users, their roles (author, approver, operator, auditor, admin) and their tokens."""


@users_group.command("bootstrap")
@click.argument("name")
@click.option("--save", is_flag=True, help="Write the token to DISPATCH_TOKEN_FILE instead of printing it.")
def bootstrap(name: str, save: bool) -> None:
    """Make the first admin; works only while the ledger has no user."""
    from dispatcher.identity import bootstrap as make_first

    issued = make_first(open_ledger(), name)
    click.echo(f"admin {issued.user.name} added", err=True)
    keep_token(issued.token, get_settings().token_file if save else None)


@users_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="A role; repeat for several.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the token here (mode 600).")
def add(name: str, roles: tuple[str, ...], output: Path | None) -> None:
    """Add a user (admin only) and print their token, once."""
    from dispatcher.identity import add as add_user
    from dispatcher.identity import roles_of

    issued = add_user(open_ledger(), acting_user("users"), name, roles_of(roles))
    click.echo(f"user {issued.user.name} added: {' '.join(sorted(issued.user.roles))}", err=True)
    keep_token(issued.token, output)


@users_group.command("token")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the token here (mode 600).")
def token(name: str, output: Path | None) -> None:
    """Give NAME a new token; the old one stops working (an admin, or the user themselves)."""
    from dispatcher.identity import new_token

    issued = new_token(open_ledger(), acting_user("status"), name)
    keep_token(issued.token, output)


@users_group.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Turn a user away from now on (admin only); their name stays on the record."""
    from dispatcher.identity import disable as disable_user

    user = disable_user(open_ledger(), acting_user("users"), name)
    click.echo(f"user {user.name} disabled")


@users_group.command("enable")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the token here (mode 600).")
def enable(name: str, output: Path | None) -> None:
    """Let a disabled user back in (admin only), with a new token: the old one stays dead."""
    from dispatcher.identity import enable as enable_user

    issued = enable_user(open_ledger(), acting_user("users"), name)
    click.echo(f"user {issued.user.name} enabled", err=True)
    keep_token(issued.token, output)


@users_group.command("roles")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, help="A role; repeat for several.")
def roles(name: str, roles: tuple[str, ...]) -> None:
    """Give NAME exactly these roles (admin only); their token stays the same."""
    from dispatcher.identity import roles_of, set_roles

    user = set_roles(open_ledger(), acting_user("users"), name, roles_of(roles))
    click.echo(f"user {user.name}: {' '.join(sorted(user.roles))}")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def listing(as_json: bool) -> None:
    """Every user and their roles (admin or auditor)."""
    from dispatcher.identity import listing as users

    user = acting_user("status")
    if not (user.may("users") or user.may("ledger")):
        user.require("users")
    rows = users(open_ledger())
    if as_json:
        print_json(rows)
        return
    click.echo(
        table(
            [
                [r["name"], " ".join(r["roles"]), r["created_by"], "disabled" if r["disabled_at"] else ""]  # type: ignore[arg-type]
                for r in rows
            ],
            ["name", "roles", "added by", ""],
        )
    )


@click.command()
def whoami() -> None:
    """The user this command line acts as, and their roles."""
    user = acting_user("status")
    click.echo(f"{user.name}: {' '.join(sorted(user.roles))}")
