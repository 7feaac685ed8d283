"""``demo``: the whole flow once, on the embedded broker and the sandbox (``dispatcher.demo`` runs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--item",
    "item_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Item file to publish (default: examples/warning.yaml).",
)
@click.option("--timeout", type=float, default=90.0, show_default=True)
def demo(item_file: Path | None, timeout: float) -> None:
    """Sandbox, worker, a sample warning approved and fanned out, and a per-channel table."""
    from dispatcher.demo import run_demo

    sys.exit(run_demo(item_file, timeout))
