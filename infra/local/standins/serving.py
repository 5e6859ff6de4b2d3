"""The one way the local stand-ins serve HTTP: a stdlib threading server on 127.0.0.1 in a
daemon thread, started and stopped cleanly, and quiet when a client hangs up mid-request
(boto3 and slack_sdk drop pooled connections whenever they like)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_HANG_UPS = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, TimeoutError)


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog is 5: a burst of clients (200 submits at once, a sweep's
    # notifications) would see connection resets the real services never give.
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], _HANG_UPS):
            return  # the client went away: nothing to report
        super().handle_error(request, client_address)


class LocalServer:
    """Serve ``handler_class`` on 127.0.0.1:``port`` (0: any free port) until :meth:`stop`."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler], *, port: int = 0, name: str = "local-server") -> None:
        self._handler_class = handler_class
        self._port = port
        self._name = name
        self._server: QuietThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> int:
        """Bind and serve; return the bound port."""
        if self._server is None:
            self._server = QuietThreadingHTTPServer(("127.0.0.1", self._port), self._handler_class)
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=self._name, daemon=True
            )
            self._thread.start()
        return self.port

    def stop(self) -> None:
        """Stop serving and close the socket (the port is free again when this returns)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{self._name} is not started")
        return int(self._server.server_address[1])
