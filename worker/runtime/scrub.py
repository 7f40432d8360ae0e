"""The background scrub: the raw store re-hashed slowly, then retention applied.

Runs in the process holding the scheduler lease (one per installation), once every
``scrub_seconds`` counted from the last pass that finished (kept in the database, so a daily
restart does not skip it), reading no faster than ``scrub_mb_per_second``.

It makes way for ingest: before its first read and then between files, at most once a second,
it asks the database whether ingest has a backlog (``backlog``), and while it has, the pass
pauses, re-asking each second. The pauses of one pass add up to at most
``scrub_backlog_wait_seconds``; after that the pass reads on at its rate, so an installation that
is never idle is still scrubbed, each pass finishing at most that much later. Its outcome goes to
the log (an error line per damaged or missing file), to ``/status`` (``scrub``) and to
``/metrics`` (``accu_ingest_scrub_*``), the last two from counters in the database so every
process of an installation reports the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from worker.record import rawcheck, retention, sql
from worker.record.canaries import CANARY_PREFIX
from worker.record.counters import SET_SQL, read
from worker.record.models import PROCESSING, QUEUED, SourceFile, database
from worker.settings import Settings

log = logging.getLogger(__name__)

LAST_PASS = "scrub_last_pass"  # epoch seconds a pass finished
PROBLEMS = "scrub_problems"  # missing or damaged raw contents found by that pass
CHECKED_FILES = "scrub_checked_files"
CHECKED_BYTES = "scrub_checked_bytes"
PRUNED = "scrub_pruned"  # label: processed | orphan_packs | canary (this pass)
FIRST_DELAY = 30.0  # after start-up, when a pass is already due

# Any one file being or waiting to be ingested, on any node (the database is the shared truth):
# a search of the state index that reads only unfinished rows and stops at the first, so it
# costs the same whatever the size of the ledger (not a COUNT: a burst's backlog is thousands).
# Not counted: the health canary's own files, and files given back to be tried again later
# (release: no owner, a retry time ahead), which nobody is working on and which may wait long.
_BACKLOG_SQL = (f"SELECT 1 FROM {sql.table(SourceFile)} WHERE state IN (?, ?) "
                "AND (state = ? OR lease_owner IS NOT NULL OR lease_until <= ?) "
                f"AND SUBSTR(path, 1, {len(CANARY_PREFIX)}) <> ? LIMIT 1")


def backlog() -> bool:
    """Whether ingest has files to get through, on any node."""
    return bool(sql.rows(_BACKLOG_SQL, (QUEUED, PROCESSING, PROCESSING, time.time(),
                                        CANARY_PREFIX)))


class Scrub:
    def __init__(self, settings: Settings, leading: Callable[[], bool]) -> None:
        self.settings = settings
        self.leading = leading
        self.running_since: float | None = None
        self.pace: rawcheck.Pace | None = None  # the running pass's
        self.problems: list[str] = []  # the last pass's, in this process
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scrub", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        wait = min(FIRST_DELAY, self.settings.scrub_seconds)
        while not self._stop.wait(wait):
            wait = min(60.0, self.settings.scrub_seconds)
            try:
                if self.leading() and self.due():
                    self.run_pass()
            except Exception:  # the database is away: the next round tries again
                log.warning("scrub pass failed; trying again later", exc_info=True)

    def due(self) -> bool:
        last = read().get(LAST_PASS, {}).get("", 0.0)
        return time.time() - last >= self.settings.scrub_seconds

    def run_pass(self) -> rawcheck.RawReport:
        self.running_since = time.time()
        try:
            pace = self.pace = rawcheck.Pace(
                self.settings.scrub_mb_per_second * 1024 * 1024, self._stop.is_set, backlog,
                self.settings.scrub_backlog_wait_seconds)
            report = rawcheck.check_all(self.settings, pace)
            if self._stop.is_set():
                return report  # cut short: not a pass
            for problem in report.problems:
                log.error("scrub: raw store problem: %s", problem)
            pruned = retention.prune(self.settings)
            for kept in pruned.kept:
                log.warning("retention: %s", kept)
            self.problems = report.problems
            self._record(report, pruned)
            log.log(logging.ERROR if report.problems else logging.INFO,
                    "scrub: %d raw files (%d bytes) re-hashed, %d missing or damaged; pruned "
                    "%d processed/ files (%d bytes), %d orphan raw packs, %d canary files; "
                    "paused %.0f s for ingest's backlog",
                    report.checked, report.bytes, len(report.problems),
                    pruned.processed_files, pruned.processed_bytes, pruned.orphan_packs,
                    pruned.canary_files, pace.paused,
                    extra={"scrub_checked": report.checked, "scrub_problems":
                           len(report.problems), "scrub_paused_s": round(pace.paused, 1)})
            return report
        finally:
            self.running_since = None
            self.pace = None

    def _record(self, report: rawcheck.RawReport, pruned: retention.Pruned) -> None:
        with database.atomic():
            for name, label, value in (
                    (LAST_PASS, "", time.time()), (PROBLEMS, "", len(report.problems)),
                    (CHECKED_FILES, "", report.checked), (CHECKED_BYTES, "", report.bytes),
                    (PRUNED, "processed", pruned.processed_files),
                    (PRUNED, "orphan_packs", pruned.orphan_packs),
                    (PRUNED, "canary", pruned.canary_files)):
                sql.execute(SET_SQL, (name, label, float(value)))


def facts(scrub: Scrub | None, settings: Settings) -> dict[str, Any]:
    """``/status``'s ``scrub``: the last pass (from the database), and this process's view."""
    counted = read()
    last = counted.get(LAST_PASS, {}).get("")
    info: dict[str, Any] = {
        "interval_s": settings.scrub_seconds,
        "last_pass": (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)) if last
                      else None),
        "checked_files": int(counted.get(CHECKED_FILES, {}).get("", 0)),
        "problems": int(counted.get(PROBLEMS, {}).get("", 0)),
        "pruned": {k: int(v) for k, v in counted.get(PRUNED, {}).items()},
    }
    if scrub is not None:
        info["running"] = scrub.running_since is not None
        pace = scrub.pace
        info["waiting_for_ingest"] = pace is not None and pace.pausing
        info["problem_details"] = scrub.problems[:20]
    return info
