"""What the notifier looks at: new rejections in the ledger, and the conditions the readiness
checks report, read the way /readyz reads them but without its write probe (a notifier must
not contend for the write lock every few seconds).

Each condition is a function of the process's Probe giving None (fine) or what is wrong.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from worker.deliver.messages import Rejection
from worker.record import audit, counters
from worker.record.canaries import not_canary_file
from worker.record.models import REJECTED, SourceFile, utcnow
from worker.runtime import health, scrub
from worker.runtime.health import Probe
from worker.settings import Settings

LOOKBACK = timedelta(minutes=2)  # a rejection committed late still carries its earlier time
RESTART_WINDOW = 600.0  # seconds: consumer restarts counted over this window
RESTARTS_TOO_MANY = 3


def seen_key(file_id: int, at: datetime) -> str:
    """A rejection told: the file and when it was rejected (a retry rejected again is news)."""
    return f"{file_id}@{at.isoformat()}"


def rejections_since(cursor: datetime, seen: set[str]) -> list[tuple[Rejection, datetime]]:
    """Rejected real files finished from ``cursor - LOOKBACK`` on, minus those already told
    (``seen``, by ``seen_key``), oldest first."""
    query = (SourceFile.select(SourceFile.id, SourceFile.path, SourceFile.error,
                               SourceFile.error_line, SourceFile.finished_at)
             .where(SourceFile.finished_at >= cursor - LOOKBACK,
                    SourceFile.state == REJECTED, not_canary_file())
             .order_by(SourceFile.finished_at, SourceFile.id))
    return [(Rejection(r.id, r.path, r.error or "rejected", r.error_line), r.finished_at)
            for r in query if seen_key(r.id, r.finished_at) not in seen]


def inbox_problem(probe: Probe) -> str | None:
    if probe.observer_alive is None:
        return None  # not a watching process: it has no inbox
    inbox = probe.settings.inbox
    if not (inbox.is_dir() and os.access(inbox, os.R_OK | os.X_OK)):
        return f"inbox {inbox} is missing or unreadable"
    if probe.intake is not None:
        intake = probe.intake()
        if intake.get("problem"):
            paths = intake.get("unreadable_paths") or [
                f["path"] for f in intake.get("unregistered_files") or []]
            return f"{intake['problem']}" + (f" ({', '.join(paths[:5])})" if paths else "")
    return None


def disk_problem(probe: Probe) -> str | None:
    data, floor = probe.settings.data_dir, probe.settings.min_free_mb
    try:
        free = shutil.disk_usage(data).free
    except OSError as exc:
        return f"cannot read free space of {data}: {exc}"
    if free >= floor * 1048576:
        return None
    return f"only {free / 1048576:.0f} MiB free under {data} (min_free_mb = {floor:g})"


def backlog_problem(probe: Probe) -> str | None:
    oldest = health.oldest_backlog()
    if oldest is None:
        return None
    minutes = (utcnow() - oldest).total_seconds() / 60
    limit = probe.settings.backlog_max_minutes
    if minutes <= limit:
        return None
    backlog = health.counts()
    waiting = backlog["queued"] + backlog["processing"]
    return (f"{waiting} file(s) unfinished, the oldest first seen {minutes:.1f} min ago "
            f"(backlog_max_minutes = {limit:g})")


def canary_problem(probe: Probe) -> str | None:
    return probe.canary.problem if probe.canary is not None else None


class Restarts:
    """Consumer processes started again ``RESTARTS_TOO_MANY`` times within ``RESTART_WINDOW``:
    one restart is a blip the supervisor handles; a crash loop needs a person."""

    def __init__(self) -> None:
        self.last_total: int | None = None
        self.times: list[float] = []

    def __call__(self, probe: Probe) -> str | None:
        if probe.consumers is None:
            return None
        total = int(probe.consumers()["restarts"])
        now = time.monotonic()
        if self.last_total is not None and total > self.last_total:
            self.times += [now] * (total - self.last_total)
        self.last_total = total
        self.times = [t for t in self.times if now - t <= RESTART_WINDOW]
        if len(self.times) < RESTARTS_TOO_MANY:
            return None
        return (f"consumer processes restarted {len(self.times)} times in the last "
                f"{RESTART_WINDOW / 60:.0f} min; their exit codes are in the log")


SHARED = ("backlog",)  # the installation's, not this machine's: told by the scheduler alone


def conditions() -> dict[str, Callable[[Probe], str | None]]:
    """The checks a process reports on: its own inbox, disk, canary and consumers, and the
    shared backlog (only where it holds the scheduler lease: one message, not one per node)."""
    return {"inbox": inbox_problem, "disk": disk_problem, "canary": canary_problem,
            "consumers": Restarts(), "backlog": backlog_problem}


def audit_problem(settings: Settings) -> str | None:
    """``accu-ingest audit verify``'s verdict: the chain, its key and the anchor's checkpoints;
    then the last scrub's verdict on the raw bytes."""
    anchor = audit.read_anchor(settings.audit_anchor_path,
                               audit.load_key(settings, create=False))
    report = audit.verify({cp.seq for cp in anchor.checkpoints})
    if not report.ok:
        return f"audit trail broken at event {report.first_bad}: {report.problem}"
    broken = audit.compare(report, anchor)
    if broken:
        return f"audit anchor {settings.audit_anchor_path} mismatch: {broken}"
    damaged = int(counters.read().get(scrub.PROBLEMS, {}).get("", 0))
    if damaged:  # the scrub's last pass re-hashed the raw store (runtime/scrub.py)
        return (f"the last scrub found {damaged} raw file(s) missing or not matching their "
                "SHA-256: accu-ingest audit verify --raw names them")
    return None
