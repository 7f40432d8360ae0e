"""The notifier: each pass of the deliver loop (runner.py) it reads the ledger and the checks and
hands messages to each target's sender (send.py).

Rejections are grouped: the first starts a group, which is sent once no new rejection came for
``notify_group_seconds`` (or 10 × that after its first), so a burst of 500 is one message with
the count and the first reasons. A condition (backlog, canary, inbox, consumers, disk, audit) is
told once when it starts and once when it is resolved, never again while it lasts; what was told
is kept across restarts (state.py), so a restart neither repeats a problem nor forgets to say it
was resolved. Reading only: the notifier never writes the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from worker.deliver import watch
from worker.deliver.messages import Message, Rejection, Words
from worker.deliver.send import Sender
from worker.deliver.state import State
from worker.record.models import utcnow
from worker.runtime.health import Probe

log = logging.getLogger(__name__)

HOLD_FACTOR = 10  # a group still growing is sent this many group windows after its first


class Notifier:
    def __init__(self, probe: Probe, state: State, is_scheduler: Callable[[], bool]) -> None:
        settings = probe.settings
        self.probe = probe
        self.settings = settings
        self.state = state
        self.is_scheduler = is_scheduler
        self.words = Words(settings)
        self.senders = [Sender(t, state, settings.notify_group_seconds) for t in settings.notify]
        self.checks = watch.conditions()
        self.group: list[Rejection] = []
        self.group_first = self.group_last = 0.0
        self.audit_next = 0.0
        if state.get("rejected_cursor") is None:  # first start: what was before is not news
            state.set("rejected_cursor", utcnow().isoformat())

    def start(self) -> None:
        for sender in self.senders:
            sender.start()

    def stop(self) -> None:
        self._flush_group()
        for sender in self.senders:
            sender.stop()

    def send(self, message: Message) -> None:
        """To every target that wants this event (each sender filters)."""
        for sender in self.senders:
            sender.put(message)

    def poll(self) -> None:
        scheduler = self.is_scheduler()
        if scheduler:
            self._rejections()
        self._conditions(scheduler)
        if scheduler and self.settings.audit_verify_minutes > 0 \
                and time.monotonic() >= self.audit_next:
            self.audit_next = time.monotonic() + self.settings.audit_verify_minutes * 60
            self._condition("audit", watch.audit_problem(self.settings))
        now = time.monotonic()
        window = self.settings.notify_group_seconds
        if self.group and (now - self.group_last >= window
                           or now - self.group_first >= window * HOLD_FACTOR):
            self._flush_group()

    def _rejections(self) -> None:
        cursor = datetime.fromisoformat(self.state.get("rejected_cursor"))
        seen = set(self.state.get("rejected_seen", {}))
        found = watch.rejections_since(cursor, seen)
        if not found:
            return
        now = time.monotonic()
        if not self.group:
            self.group_first = now
        self.group_last = now
        self.group += [r for r, _ in found]
        newest = max(at for _, at in found)
        keep_from = newest - watch.LOOKBACK
        kept = {k: v for k, v in self.state.get("rejected_seen", {}).items()
                if datetime.fromisoformat(v) >= keep_from - watch.LOOKBACK}
        kept.update({watch.seen_key(r.id, at): at.isoformat() for r, at in found})
        self.state.update({"rejected_seen": kept,
                           "rejected_cursor": max(cursor, newest).isoformat()})

    def _flush_group(self) -> None:
        if self.group:
            group, self.group = self.group, []
            self.send(self.words.rejected(group))

    def _conditions(self, scheduler: bool) -> None:
        for name, check in self.checks.items():
            if name in watch.SHARED and not scheduler:
                continue
            self._condition(name, check(self.probe))

    def _condition(self, name: str, problem: str | None) -> None:
        told: dict[str, dict[str, object]] = self.state.get("problems", {})
        before = told.get(name)
        if problem and before is None:
            told[name] = {"problem": problem, "since": time.time()}
            self.send(self.words.problem(name, problem))
        elif problem is None and before is not None:
            del told[name]
            minutes = (time.time() - float(before["since"])) / 60  # type: ignore[arg-type]
            self.send(self.words.resolved(name, str(before["problem"]), minutes))
        else:
            return
        self.state.set("problems", told)
