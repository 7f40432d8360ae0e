"""POSTs the job reports in ``data/reports/outbox/`` to ``job_report_url``, oldest first, until
the receiver takes each one.

The outbox is a folder, so a report owed survives a restart. Each POST carries the report's
``Idempotency-Key``: a receiver that answered but whose answer was lost gets the same key again
and can ignore the repeat. 2xx (and 409, "already have it") deletes the file; a refusal that a
retry cannot change (another 4xx) moves it to ``data/reports/failed/`` and says so; anything
else (no connection, a timeout, 5xx, 408, 429) is tried again after a growing pause.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from pathlib import Path

from worker.deliver.state import State
from worker.settings import Settings

log = logging.getLogger(__name__)

FIRST_RETRY = 5.0
MAX_RETRY = 600.0
TIMEOUT = 15.0
RETRYABLE = (408, 425, 429)


def post(url: str, body: bytes, key: str) -> int:
    """The receiver's status code; raises OSError when it cannot be reached."""
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": key,
        "User-Agent": "accu-ingest job report"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class Webhook:
    def __init__(self, settings: Settings, state: State) -> None:
        assert settings.job_report_url is not None
        self.url = settings.job_report_url.get_secret_value()
        self.outbox = settings.reports_dir / "outbox"
        self.failed = settings.reports_dir / "failed"
        self.state = state
        self.pause = FIRST_RETRY
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-report-webhook", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=TIMEOUT + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 1.0 if self.deliver_all() else self.pause
            self.wake.wait(wait)
            self.wake.clear()

    def deliver_all(self) -> bool:
        """Post what the outbox holds; False when one could not be delivered (try later)."""
        for path in sorted(self.outbox.glob("*.json")) if self.outbox.is_dir() else []:
            if self._stop.is_set() or not self._deliver(path):
                self.pause = min(self.pause * 2, MAX_RETRY)
                return False
        self.pause = FIRST_RETRY
        return True

    def _deliver(self, path: Path) -> bool:
        body = path.read_bytes()
        key = json.loads(body)["idempotency_key"]
        try:
            status = post(self.url, body, key)
        except OSError as exc:
            return self._failed(path, f"cannot reach it ({exc})")
        if 200 <= status < 300 or status == 409:
            path.unlink()
            self.state.count("job_reports", "posted")
            log.info("job report %s posted (HTTP %d)", path.name, status)
            return True
        if 400 <= status < 500 and status not in RETRYABLE:
            self.failed.mkdir(parents=True, exist_ok=True)
            path.replace(self.failed / path.name)
            self.state.count("job_reports", "refused")
            log.error("job report %s refused by the receiver (HTTP %d); kept in %s: fix the "
                      "receiver, then move it back to %s", path.name, status, self.failed,
                      self.outbox)
            return True
        return self._failed(path, f"HTTP {status}")

    def _failed(self, path: Path, why: str) -> bool:
        self.state.count("job_reports", "post_failures")
        log.warning("posting job report %s failed: %s; trying again in %.0f s", path.name, why,
                    self.pause)
        return False
