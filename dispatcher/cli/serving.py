"""The commands that run until interrupted: ``serve`` (once called ``api``), ``sandbox``, ``worker``."""

from __future__ import annotations

import signal
import sys
import time

import click

from dispatcher.cli.invocation import get_settings, open_ledger


def wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass


def run_server(host: str | None, port: int | None, probe_interval: float | None = None) -> None:
    from dispatcher.serving import serve_forever
    from dispatcher.tasks import broker_for
    from dispatcher.web.app import build

    settings = get_settings()
    host = host or settings.api.host
    port = settings.api.port if port is None else port
    app = build(settings, open_ledger(), broker_for(settings), probe_interval=probe_interval)
    click.echo(f"API on http://{host}:{port} (OpenAPI: /openapi.json); Ctrl-C or SIGTERM stops it")
    serve_forever(app, host, port)


@click.command()
@click.option("--host", default=None, help="Interface to listen on (default: DISPATCH_API__HOST).")
@click.option("--port", type=int, default=None, help="Port (default: DISPATCH_API__PORT).")
@click.option(
    "--probe-interval",
    type=click.FloatRange(min=0),
    default=None,
    help="Probe the channels this often for the status page (default: DISPATCH_MONITOR__PROBE_INTERVAL; "
    "0: leave it to the beat).",
)
def serve(host: str | None, port: int | None, probe_interval: float | None) -> None:
    """Serve the HTTP API (/api/v1), the SMS gateway's callbacks and the status page until interrupted."""
    run_server(host, port, probe_interval)


@click.command(hidden=True)
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def api(host: str | None, port: int | None) -> None:
    """The old name of ``serve``."""
    run_server(host, port)


@click.command()
@click.option(
    "--port-base",
    type=int,
    default=8101,
    show_default=True,
    help="WordPress, Kannel, signs, Weibo and Mastodon listen on this port and the next four.",
)
def sandbox(port_base: int) -> None:
    """Run the channel emulators on 127.0.0.1 until interrupted."""
    from dispatcher.sandboxes import sandbox_for
    from sandbox.server import NAMES

    ports = {name: port_base + i for i, name in enumerate(NAMES)}
    box = sandbox_for(get_settings(), ports).start()
    for name, url in box.urls.items():
        click.echo(f"{name:10} {url}")
    click.echo("sandbox running; Ctrl-C or SIGTERM stops it")
    wait_for_interrupt()
    box.stop()


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--beat", is_flag=True, help="Also run the scheduler (the sweeper); run exactly one.")
@click.option("--queues", "-Q", default=None, help="Comma-separated queues (default: all).")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes.")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
def worker(beat: bool, queues: str | None, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker on the configured broker."""
    from worker import run

    run(get_settings(), beat=beat, only=queues, concurrency=concurrency, loglevel=loglevel)
