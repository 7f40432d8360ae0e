"""One sender per notification target: its own thread and queue, so a receiver that is down or
slow holds up nothing but its own messages, which wait and are tried again.

Messages that pile up while a target waits (its minimum interval, or a retry) go out as one
digest; a failure is logged, counted (``accu_ingest_notify_failures_total``) and retried with a
growing pause, up to ``MAX_KEPT`` messages (the oldest are dropped beyond that, and counted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from worker.deliver.messages import Message, digest
from worker.deliver.state import State
from worker.settings import NotifyTarget

log = logging.getLogger(__name__)

FIRST_RETRY = 5.0
MAX_RETRY = 300.0
MAX_KEPT = 200
TIMEOUT = 10  # seconds apprise waits to connect and to read, per attempt


def deliver(target: NotifyTarget, message: Message) -> bool:
    """Send one message now through apprise; True when the service took it."""
    import apprise

    url = target.url.get_secret_value()
    if "cto=" not in url:  # apprise's own defaults are not bounded for every service
        url += ("&" if "?" in url else "?") + f"cto={TIMEOUT}&rto={TIMEOUT}"
    sender = apprise.Apprise()
    if not sender.add(url):
        return False
    kind = apprise.NotifyType.SUCCESS if message.resolved else apprise.NotifyType.WARNING
    return bool(sender.notify(title=message.title, body=message.body, notify_type=kind))


class Sender:
    def __init__(self, target: NotifyTarget, state: State, min_interval: float) -> None:
        self.target = target
        self.state = state
        self.min_interval = min_interval
        self.pending: deque[Message] = deque()
        self.cond = threading.Condition()
        self.stopped = False
        self.last_sent = 0.0
        self.retry_at = 0.0
        self.pause = FIRST_RETRY
        self.thread = threading.Thread(target=self._run, name=f"notify {target.label}",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()

    def put(self, message: Message) -> None:
        if message.event not in self.target.events:
            return
        with self.cond:
            self.pending.append(message)
            dropped = len(self.pending) - MAX_KEPT
            for _ in range(max(dropped, 0)):
                self.pending.popleft()
            if dropped > 0:
                self.state.count("notify_dropped", self.target.label, dropped)
            self.cond.notify()

    def stop(self) -> None:
        """Send what waits once more (unless the target is failing), then end; a target that
        hangs holds the stop up for one attempt at most."""
        with self.cond:
            self.stopped = True
            self.cond.notify()
        self.thread.join(timeout=TIMEOUT + 2)

    def _due(self) -> float:
        return max(self.last_sent + self.min_interval, self.retry_at)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.stopped and (not self.pending or time.monotonic() < self._due()):
                    wait = None if not self.pending else self._due() - time.monotonic()
                    self.cond.wait(wait)
                last = self.stopped
                if last and (not self.pending or time.monotonic() < self.retry_at):
                    return
                batch = list(self.pending)
                self.pending.clear()
            self._send(batch)
            if last:
                return

    def _send(self, batch: list[Message]) -> None:
        message = digest(batch)
        try:
            ok = deliver(self.target, message)
            why = "the service did not take it (see apprise's log line above)"
        except Exception as exc:  # a plugin's own bug must not end the thread
            ok, why = False, f"{type(exc).__name__}: {exc}"
        now = time.monotonic()
        if ok:
            self.last_sent, self.retry_at, self.pause = now, 0.0, FIRST_RETRY
            self.state.count("notify_sent", self.target.label)
            log.info("notified %s: %s", self.target.label, message.title)
            return
        self.state.count("notify_failures", self.target.label)
        log.warning("notifying %s failed: %s; %d message(s) kept, trying again in %.0f s",
                    self.target.label, why, len(batch), self.pause)
        self.retry_at = now + self.pause
        self.pause = min(self.pause * 2, MAX_RETRY)
        with self.cond:
            self.pending.extendleft(reversed(batch))
