"""The tiny read-only HTTP endpoint a monitoring probe polls: /livez, /readyz, /status, /metrics.

GET only; it changes nothing. It listens on 127.0.0.1 unless ``host`` says otherwise.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from worker import metrics
from worker.health import Probe, checks, facts
from worker.models import database

log = logging.getLogger(__name__)

ENDPOINTS = ["/livez", "/readyz", "/status", "/metrics"]


class StatusServer:
    def __init__(self, probe: Probe, host: str, port: int) -> None:
        self.probe = probe
        handler = type("Handler", (_Handler,), {"probe": probe,
                                                "registry": metrics.registry_for(probe)})
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
    registry: CollectorRegistry

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
            elif path == "/metrics":
                self._send_bytes(200, metrics.render(self.registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, {"error": f"no such endpoint {path}", "endpoints": ENDPOINTS})
        except Exception as exc:  # a probe must get an answer, never a dropped connection
            log.exception("status endpoint error")
            self._send(503, {"status": "error", "error": str(exc)})
        finally:
            if not database.is_closed():
                database.close()

    def _send(self, code: int, body: dict[str, Any]) -> None:
        self._send_bytes(code, json.dumps(body, indent=1).encode("utf-8"), "application/json")

    def _send_bytes(self, code: int, data: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status %s", format % args)
