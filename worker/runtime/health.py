"""The facts and checks a monitoring probe needs, shared by the HTTP endpoint and the CLI.

Counts come from the ledger at the moment they are asked for, never from counters in memory, so
they agree with the database across restarts and between processes. Canary files (see canary.py)
are counted apart from real ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from peewee import fn

from worker import __version__
from worker.consume import blocked
from worker.consume.queue import Queue
from worker.record import heartbeat, ledger
from worker.record.canaries import is_canary_file, last_success, not_canary_file, to_datetime
from worker.record.db import BUSY_TIMEOUT_S, QueuedSqliteDatabase, is_postgres
from worker.record.models import (
    INGESTED,
    PROCESSING,
    QUEUED,
    REJECTED,
    STATES,
    Lease,
    SourceFile,
    database,
    utcnow,
)
from worker.runtime.canary import Canary
from worker.runtime.scrub import Scrub
from worker.runtime.scrub import facts as scrub_facts
from worker.settings import Settings

STARTED = time.time()
WRITE_PROBE_TIMEOUT_MS = 1000  # a probe must answer quickly, even while a writer holds the lock
RECENT_REJECTIONS = 5


@dataclass
class Probe:
    """What the running process knows beyond the database: its watcher, canary and consumer
    processes, if any (``consumers`` is children.Children.describe)."""

    settings: Settings
    queue: Queue | None = None
    observer_alive: Callable[[], bool] | None = None
    intake: Callable[[], dict[str, Any]] | None = None  # watcher.Watcher.intake
    canary: Canary | None = None
    role: str = "run"
    consumers: Callable[[], dict[str, Any]] | None = None
    scrub: Scrub | None = None
    deliver: Callable[[], dict[str, dict[str, int]]] | None = None  # deliver.runner counts


def counts() -> dict[str, int]:
    """Real files (not canaries) by state, every state present."""
    by_state = {state: 0 for state in STATES}
    query = (SourceFile.select(SourceFile.state, fn.COUNT(SourceFile.id).alias("n"))
             .where(not_canary_file()).group_by(SourceFile.state))
    by_state.update({r.state: r.n for r in query})
    return by_state


def last_ingest() -> datetime | None:
    value = (SourceFile.select(fn.MAX(SourceFile.finished_at))
             .where(SourceFile.state == INGESTED, not_canary_file()).scalar())
    return to_datetime(value)


def oldest_backlog() -> datetime | None:
    """First-seen time of the oldest unfinished file, canaries included (they are stuck too)."""
    value = (SourceFile.select(fn.MIN(SourceFile.first_seen))
             .where(SourceFile.state.in_([QUEUED, PROCESSING])).scalar())
    return to_datetime(value)


def facts(probe: Probe) -> dict[str, Any]:
    """The JSON of ``GET /status`` and ``accu-ingest status``."""
    by_state = counts()
    queue_depth = None
    if probe.queue is not None:
        try:
            queue_depth = probe.queue.depth()
        except Exception:
            queue_depth = None
    rejected = (SourceFile.select(SourceFile.id, SourceFile.path, SourceFile.error,
                                  SourceFile.error_line, SourceFile.finished_at)
                .where(SourceFile.state == REJECTED, not_canary_file())
                .order_by(SourceFile.id.desc()).limit(RECENT_REJECTIONS))
    return {
        "version": __version__,
        "role": probe.role,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - STARTED, 3),
        "files": by_state,
        "backlog": by_state[QUEUED] + by_state[PROCESSING],
        "queue_depth": queue_depth,
        "last_ingest": _iso(last_ingest()),
        "oldest_backlog": _iso(oldest_backlog()),
        "inbox": str(probe.settings.inbox),
        "observer_alive": probe.observer_alive() if probe.observer_alive else None,
        "intake": probe.intake() if probe.intake else None,
        # Folders the watching process cannot dispose of files into (or out of): blocked.py.
        "disposal_blocked": blocked.status() if probe.intake else None,
        "recent_rejections": [{"id": r.id, "path": r.path, "line": r.error_line,
                               "reason": r.error, "at": _iso(to_datetime(r.finished_at))}
                              for r in rejected],
        "canary": canary_facts(probe),
        "consumer_processes": probe.consumers() if probe.consumers else None,
        "scrub": scrub_facts(probe.scrub, probe.settings),
    }


def canary_facts(probe: Probe) -> dict[str, Any]:
    """The canary's last success (from the ledger) and, in the process running it, its state."""
    done = (SourceFile.select(SourceFile.state, fn.COUNT(SourceFile.id).alias("n"))
            .where(is_canary_file()).group_by(SourceFile.state))
    info: dict[str, Any] = {
        "enabled": probe.canary is not None,
        "last_success": _iso(last_success()),
        "files": {r.state: r.n for r in done},
    }
    if probe.canary is not None:
        c = probe.canary
        info.update({
            "interval_s": probe.settings.canary_seconds,
            "last_dropped": _iso_epoch(c.last_dropped),
            "last_checked": _iso_epoch(c.last_checked),
            "in_flight": c.pending.name if c.pending else None,
            "problem": c.problem,
        })
    return info


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def _iso_epoch(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _iso(datetime.fromtimestamp(ts, UTC).replace(tzinfo=None))


def checks(probe: Probe) -> dict[str, str | None]:
    """Each readiness check: None when it passes, else what is wrong."""
    settings = probe.settings
    result: dict[str, str | None] = {"database": database_problem(),
                                     "loops": loops_problem()}
    if probe.queue is not None:
        try:
            probe.queue.check()
            result["queue"] = None
        except Exception as exc:
            result["queue"] = str(exc)
    if probe.observer_alive is not None:
        inbox = settings.inbox
        result["inbox"] = None if inbox.is_dir() and os.access(inbox, os.R_OK | os.X_OK) \
            else f"inbox {inbox} is missing or unreadable"
        result["observer"] = None if probe.observer_alive() else "file observer is not running"
    if probe.intake is not None:  # complete files the watcher cannot take (unreadable …)
        intake = probe.intake()
        result["intake"] = intake.get("problem")
        result.update(intake.get("problems", {}))  # links or pipes in it, inbox replaced
        result["disposal"] = blocked.problem()
    data = settings.data_dir
    try:
        free = shutil.disk_usage(data).free
        result["disk"] = None if free >= settings.min_free_mb * 1048576 else \
            f"only {free / 1048576:.0f} MiB free under {data} (min_free_mb = " \
            f"{settings.min_free_mb:g})"
    except OSError as exc:
        result["disk"] = f"cannot read free space of {data}: {exc}"
    if result["database"] is None:
        result["backlog"] = _backlog_problem(settings)
    if probe.canary is not None:
        result["canary"] = probe.canary.problem
    if probe.consumers is not None:
        result["consumers"] = consumers_problem(probe.consumers())
    return result


def loops_problem() -> str | None:
    """The loops of this process that cannot make progress (heartbeat.py): a fresh connection
    opened by the probe says nothing of the watcher's, the reconciler's or a consumer's."""
    stuck = heartbeat.problems()
    return "; ".join(f"{name}: {why}" for name, why in sorted(stuck.items())) or None


def consumers_problem(c: dict[str, Any]) -> str | None:
    """The consumer processes of ``run`` (children.Children.describe) that are not running,
    not ready, or whose loops cannot make progress."""
    words = []
    if c["ready"] != c["processes"]:
        words.append(f"{c['ready']} of {c['processes']} consumer processes running and ready")
    words += [f"{name}: {why}" for name, why in sorted(c.get("problems", {}).items())]
    return "; ".join(words) or None


def _backlog_problem(settings: Settings) -> str | None:
    oldest = oldest_backlog()
    if oldest is None:
        return None
    age_min = (utcnow() - oldest).total_seconds() / 60
    if age_min <= settings.backlog_max_minutes:
        return None
    return (f"oldest unfinished file was first seen {age_min:.1f} min ago "
            f"(backlog_max_minutes = {settings.backlog_max_minutes:g})")


class _RolledBack(Exception):
    pass


def database_problem() -> str | None:
    """None if the database answers AND accepts a write; the write is rolled back.

    SELECT 1 alone passes on a read-only file, a full disk or a lock held by a stuck writer;
    a row written inside a transaction that is then rolled back takes the write lock for real.
    """
    db = database.obj
    try:
        db.execute_sql("SELECT 1")
    except Exception as exc:
        return f"database does not answer: {exc}"
    sqlite = not is_postgres(db)
    name = f"readyz-probe:{ledger.owner_id(threading.current_thread().name)}"
    # Another process's writer holds the file lock before SQLite's own (db.py): the probe waits
    # for it no longer than for SQLite's lock.
    wait = db.writer_wait(WRITE_PROBE_TIMEOUT_MS / 1000) if isinstance(db, QueuedSqliteDatabase) \
        else contextlib.nullcontext()
    try:
        if sqlite:
            db.execute_sql(f"PRAGMA busy_timeout = {WRITE_PROBE_TIMEOUT_MS}")
        try:
            with wait, db.atomic():
                if not sqlite:
                    db.execute_sql(f"SET LOCAL statement_timeout = {WRITE_PROBE_TIMEOUT_MS}")
                Lease.insert(name=name, owner=name, until=0).execute()
                raise _RolledBack
        except _RolledBack:
            pass
        finally:
            if sqlite:
                db.execute_sql(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
    except Exception as exc:
        return f"database is not writable: {exc}"
    return None
