"""The operators' endpoint: /healthz, /readyz and /metrics (Prometheus text).

- /healthz is 200 while the process runs its flow (liveness: restart it if not);
- /readyz is 200 once reference data is loaded and the flow runs, and 503
  during a broker outage or a shutdown (readiness: do not count on it now).
Loopback by default: metrics name rules and topics, nothing else. At most
MAX_CLIENTS connections are served at once (more are closed at once), a client
that sends nothing for CLIENT_TIMEOUT seconds is dropped, and a client that
resets its connection is a rate-limited log line, not a traceback.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.metrics import log_limited

MAX_CLIENTS = 16
CLIENT_TIMEOUT = 5.0


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler) -> None:
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: a scraper retries
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        log_limited("http_client_error", "http", type(sys.exc_info()[1]).__name__)


class Status:
    """What the endpoint reports; the daemon flips these as it starts and stops."""

    def __init__(self) -> None:
        self.running = False
        self.ready = False
        self.stopping = False
        self.broker_up: Callable[[], bool] = lambda: True


def serve(host: str, port: int, status: Status) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        timeout = CLIENT_TIMEOUT

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                ok = status.running
                self._send(200 if ok else 503, b"ok\n" if ok else b"not running\n")
            elif path == "/readyz":
                why = ("stopping" if status.stopping else "starting" if not status.ready
                       else "broker unavailable" if not status.broker_up() else "")
                self._send(503 if why else 200, f"{why or 'ready'}\n".encode())
            else:
                self._send(404, b"not found\n")

        def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:  # scrapes are not news
            pass

    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="fundwatch-http", daemon=True).start()
    return server
