"""Running a WSGI app on a real socket in a background thread (the API, the sandbox emulators)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


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
    """Serve ``app`` on ``host:port`` (0 picks a free port) until ``stop()``."""
    server = make_server(host, port, app, threaded=True, request_handler=QuietHandler)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
    thread.start()
    return Running(server, thread)
