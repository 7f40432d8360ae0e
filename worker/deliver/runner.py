"""The deliver loop of a running worker: one thread that, every ``notify_poll_seconds``, lets
the notifier look for news and (in the process holding the scheduler lease) writes the reports
of jobs that settled; plus the senders' and the webhook's own threads.

Started by roles.py in ``run``, ``watch`` and ``consume`` alike; what is the installation's
(rejections, backlog, audit, job reports) is done only where the scheduler lease is held, what
is the machine's (its inbox, disk, canary, consumer processes) by each process that has it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from worker.deliver.jobreport import JobReports
from worker.deliver.notify import Notifier
from worker.deliver.state import State
from worker.deliver.webhook import Webhook
from worker.runtime.health import Probe

log = logging.getLogger(__name__)


class Deliver:
    def __init__(self, probe: Probe, is_scheduler: Callable[[], bool]) -> None:
        settings = probe.settings
        self.settings = settings
        self.is_scheduler = is_scheduler
        self.state = State(settings.reports_dir / "state.json")
        self.notifier = Notifier(probe, self.state, is_scheduler) if settings.notify else None
        self.reports = JobReports(settings, self.state,
                                  self.notifier.send if self.notifier else None)
        self.webhook = Webhook(settings, self.state) if settings.job_report_url else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deliver", daemon=True)

    def start(self) -> None:
        if self.notifier is not None:
            self.notifier.start()
        if self.webhook is not None:
            self.webhook.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.notifier is not None:
            self.notifier.stop()
        if self.webhook is not None:
            self.webhook.stop()

    def counts(self) -> dict[str, dict[str, int]]:
        """For /metrics: sent, failed and dropped per target; job reports by outcome."""
        return self.state.counts()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.notify_poll_seconds):
            try:
                if self.notifier is not None:
                    self.notifier.poll()
                if self.is_scheduler() and self.reports.poll() and self.webhook is not None:
                    self.webhook.wake.set()  # a new report: post it now, not after a pause
            except Exception as exc:  # e.g. the database away a while: the next pass
                log.warning("deliver pass failed: %s", exc)
