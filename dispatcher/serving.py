"""Running an app on a real socket in a background thread: the dispatcher's ASGI app on uvicorn
(:func:`serve_app_in_thread`: tests, the demo, the chaos run) and WSGI apps on werkzeug
(:func:`serve_in_thread`: the sandbox emulators)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

#: Requests a sync endpoint may hold at once (AnyIO's default is 40): the gateway keeps hundreds of
#: delivery reports in flight, each waiting for its lot's transaction (callbacks.ReportApplier).
THREADS = 256


class QuietHandler(WSGIRequestHandler):
    """No access log: request lines carry credentials (Kannel's password, callback tokens)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


@dataclass
class Running:
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_in_thread(app: object, host: str, port: int, name: str) -> Running:
    """Serve the WSGI ``app`` on ``host:port`` (0 picks a free port) until ``stop()``."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    return Running(server, thread)


def server_config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for the dispatcher's app: no access log (a callback's query carries its
    token), and room for many waiting requests."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        limit_concurrency=None,
        timeout_graceful_shutdown=5,
        **options,
    )


async def _widened(server: uvicorn.Server, sockets: list[socket.socket] | None) -> None:
    """Serve, with the thread pool of sync endpoints widened to ``THREADS``."""
    import anyio.to_thread

    anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
    await server.serve(sockets=sockets)


class StoppingServer(uvicorn.Server):
    """Stops on SIGINT or SIGTERM and returns: uvicorn would raise the signal again once it has shut
    down, and the process would end with 130 or 143 ("Aborted!") after a clean stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve the ASGI ``app`` in this thread until SIGINT or SIGTERM (``dispatch serve``)."""
    import asyncio

    asyncio.run(_widened(StoppingServer(server_config(app, host, port)), None))


@dataclass
class Listening:
    """An ASGI app served by uvicorn in a background thread."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_app_in_thread(app: Any, host: str, port: int, name: str) -> Listening:
    """Serve the ASGI ``app`` on ``host:port`` (0 picks a free port) until ``stop()``; the socket is
    bound before this returns, so a request right after it is answered."""
    import asyncio

    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    server = uvicorn.Server(server_config(app, host, listener.getsockname()[1]))
    thread = threading.Thread(
        target=lambda: asyncio.run(_widened(server, [listener])), name=name, daemon=True
    )
    thread.start()
    return Listening(server, thread, listener.getsockname()[1])
