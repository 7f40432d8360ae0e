"""The read-only HTTP endpoint: /livez, /readyz, /status, /metrics for probes, and the lab's
pages and JSON API (worker/web) at ``/`` and ``/api/``.

GET and HEAD only (any other method is 405); it changes nothing. It listens on 127.0.0.1
unless ``host`` says otherwise, and then answers only a client with ``web_token``
(web/access.py).
A client cannot tie it up: a request must arrive whole within REQUEST_SECONDS, at most
MAX_HANDLERS are answered at once (the next gets 503 at once), and headers past
MAX_HEADER_BYTES or MAX_HEADERS get 431.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from worker.record.models import database
from worker.runtime import metrics
from worker.runtime.health import Probe, checks, facts
from worker.web import access
from worker.web.app import App, Response

log = logging.getLogger(__name__)

ENDPOINTS = ["/livez", "/readyz", "/status", "/metrics", "/", "/api"]
REQUEST_SECONDS = 10.0  # to send a whole request (line and headers), however slowly
MAX_HANDLERS = 16  # requests answered at once; each is a thread
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 64
_BUSY = json.dumps({"status": "busy", "error": f"more than {MAX_HANDLERS} requests at once"})
BUSY_RESPONSE = (f"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(_BUSY)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
                 f"{_BUSY}").encode()


class _BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer starts a thread per connection without limit: here at most
    MAX_HANDLERS, and a connection past them is answered 503 without a thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_HANDLERS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _BoundedReader:
    """The request's input, read line by line by http.server: the header lines after the
    request line are limited in bytes and count (http.server answers the LineTooLong with
    431)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.lines = 0
        self.header_bytes = 0

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self.raw.readline(limit)
        self.lines += 1
        if self.lines > 1:  # the request line has http.server's own limit (414)
            self.header_bytes += len(line)
            if self.header_bytes > MAX_HEADER_BYTES:
                raise http.client.LineTooLong(f"headers longer than {MAX_HEADER_BYTES} bytes")
            if self.lines > MAX_HEADERS + 2:  # request line, headers, blank line
                raise http.client.LineTooLong(f"more than {MAX_HEADERS} headers")
        return line

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class StatusServer:
    def __init__(self, probe: Probe, host: str, port: int) -> None:
        self.probe = probe
        handler = type("Handler", (_Handler,), {"probe": probe, "app": App(probe),
                                                "registry": metrics.registry_for(probe)})
        self.httpd = _BoundedServer((host, port), handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="status",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, which may not have run
            self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    probe: Probe
    app: App
    registry: CollectorRegistry
    timeout = REQUEST_SECONDS  # each read and write on the socket

    def setup(self) -> None:
        super().setup()
        self.rfile = _BoundedReader(self.rfile)  # type: ignore[assignment]
        # The socket timeout bounds each read; a client sending a byte at a time renews it for
        # ever, so the whole request has a deadline of its own.
        self._deadline = threading.Timer(REQUEST_SECONDS, self._cut)
        self._deadline.daemon = True
        self._deadline.start()

    def _cut(self) -> None:
        self.close_connection = True
        self._too_slow = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self._deadline.cancel()  # the request is in: answering it may take its time
        return parsed and not getattr(self, "_too_slow", False)  # cut short: nobody to answer

    def finish(self) -> None:
        self._deadline.cancel()
        super().finish()

    def do_HEAD(self) -> None:
        """The GET answer's status and headers without its body (load balancers and uptime
        checks probe with HEAD)."""
        self._head = True
        self.do_GET()

    def __getattr__(self, name: str) -> Any:
        """Every method but GET and HEAD (POST, PUT, DELETE, or any other word) is 405: the
        endpoint only reads."""
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self.close_connection = True  # its body, if any, is not read
        self._send(405, {"error": f"{self.command} is not allowed: this endpoint only reads "
                                  "(GET and HEAD)"}, {"Allow": "GET, HEAD"})

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not access.allowed(self.probe.settings, path, self.headers.get("Authorization")):
            self._send(401, {"error": "this endpoint needs the access token (web_token): "
                                      "Authorization: Bearer TOKEN, or HTTP basic with it as "
                                      "the password"},
                       {"WWW-Authenticate": 'Basic realm="accu-ingest", charset="UTF-8"'})
            return
        answer: Response | None = None
        try:
            if path == "/livez":
                self._send(200, {"status": "alive"})
            elif path == "/readyz":
                failed = {k: v for k, v in checks(self.probe).items() if v}
                self._send(503 if failed else 200,
                           {"status": "not ready" if failed else "ready", "failed": failed})
            elif path == "/status":
                self._send(200, facts(self.probe))
            elif path == "/metrics":
                self._send_bytes(200, metrics.render(self.registry), CONTENT_TYPE_LATEST)
            elif self.app.handles(path):
                answer = self.app(self.path)  # read whole, so the database is let go first
            else:
                self._send(404, {"error": f"no such endpoint {path}", "endpoints": ENDPOINTS})
        except Exception as exc:  # a probe must get an answer, never a dropped connection
            log.exception("status endpoint error")
            self._send(503, {"status": "error", "error": str(exc)})
        finally:
            if not database.is_closed():
                database.close()
        if answer is not None:
            self._send_bytes(answer.status, answer.body, answer.content_type, answer.headers)

    def _send(self, code: int, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        self._send_bytes(code, json.dumps(body, indent=1).encode("utf-8"), "application/json",
                         headers)

    def _send_bytes(self, code: int, data: bytes, content_type: str,
                    headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        headers = {"Cache-Control": "no-store", **(headers or {})}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not getattr(self, "_head", False):
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status %s", format % args)
