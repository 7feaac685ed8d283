"""Deliveries an operator sends again: ``redrive``."""

from __future__ import annotations

import click

from dispatcher.cli.invocation import acting_user, broker, get_settings, open_ledger


@click.command()
@click.option("--channel", default=None, help="Only this channel's dead deliveries.")
@click.option("--item", "item_id", type=int, default=None, help="Only this item's dead deliveries.")
@click.option("--failed", is_flag=True, help="Failed deliveries too (overrides a refusal; needs --reason).")
@click.option("--reason", default="", help="Why (kept in the ledger); required with --failed.")
def redrive(channel: str | None, item_id: int | None, failed: bool, reason: str) -> None:
    """Give dead (and with --failed, failed) deliveries a fresh retry budget and send them again."""
    from dispatcher.outbox import redrive as redrive_deliveries

    actor = acting_user("redrive").name
    if channel:
        from channels import build_channel

        build_channel(channel, get_settings())  # an unknown name is refused with a suggestion
    redriven = redrive_deliveries(
        open_ledger(), broker(), actor, channel=channel, item_id=item_id, failed=failed, reason=reason
    )
    click.echo(
        f"re-drove {len(redriven)} {'dead or failed' if failed else 'dead'} deliveries"
        + (f": {', '.join(map(str, redriven))}" if redriven else "")
    )
