"""The tiny read-only HTTP endpoint a monitoring probe polls: /livez, /readyz, /status."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from worker.health import Probe, checks, facts
from worker.models import database

log = logging.getLogger(__name__)


class StatusServer:
    def __init__(self, probe: Probe, host: str, port: int) -> None:
        self.probe = probe
        handler = type("Handler", (_Handler,), {"probe": probe})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="status",
                                        daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    probe: Probe

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/livez":
                self._send(200, {"status": "alive"})
            elif path == "/readyz":
                failed = {k: v for k, v in checks(self.probe).items() if v}
                self._send(503 if failed else 200,
                           {"status": "not ready" if failed else "ready", "failed": failed})
            elif path == "/status":
                self._send(200, facts(self.probe))
            else:
                self._send(404, {"error": f"no such endpoint {path}",
                                 "endpoints": ["/livez", "/readyz", "/status"]})
        except Exception as exc:  # a probe must get an answer, never a dropped connection
            log.exception("status endpoint error")
            self._send(503, {"status": "error", "error": str(exc)})
        finally:
            if not database.is_closed():
                database.close()

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, indent=1).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status %s", format % args)
