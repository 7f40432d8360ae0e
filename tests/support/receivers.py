"""Real local receivers for what the worker sends: an HTTP server (apprise's json:// target and
the job-report webhook) and an SMTP server (aiosmtpd), each recording what arrived."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: Any


class HttpReceiver:
    """Records every POST (JSON bodies decoded); answers ``status`` (200 unless told)."""

    def __init__(self, port: int = 0) -> None:
        self.posted: list[Posted] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                receiver.posted.append(Posted(self.path, dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[Posted]:
        return [p for p in self.posted if p.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Mail:
    sender: str
    to: list[str]
    subject: str
    body: str


@dataclass
class SmtpReceiver:
    port: int
    mails: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        mails = self.mails

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                msg = message_from_bytes(envelope.content, policy=policy.default)
                part = msg.get_body(preferencelist=("plain", "html"))
                mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                  str(msg["subject"]), part.get_content() if part else ""))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
