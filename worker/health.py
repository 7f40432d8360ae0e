"""The facts and checks a monitoring probe needs, shared by the HTTP endpoint and the CLI."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from peewee import fn

from worker import __version__, ledger
from worker.models import INGESTED, PROCESSING, QUEUED, STATES, SourceFile, database
from worker.queue import Queue
from worker.settings import Settings

MIN_FREE_BYTES = 512 * 1024 * 1024
STARTED = time.time()


@dataclass
class Probe:
    """What the running process knows beyond the database: its watcher, if it has one."""

    settings: Settings
    queue: Queue | None = None
    observer_alive: Callable[[], bool] | None = None
    role: str = "run"


def facts(probe: Probe) -> dict[str, Any]:
    """The JSON of ``GET /status`` and ``accu-ingest status``."""
    by_state = {state: 0 for state in STATES}
    by_state.update(ledger.counts())
    last = (SourceFile.select(fn.MAX(SourceFile.finished_at))
            .where(SourceFile.state == INGESTED).scalar())
    oldest = (SourceFile.select(fn.MIN(SourceFile.first_seen))
              .where(SourceFile.state.in_([QUEUED, PROCESSING])).scalar())
    queue_depth = None
    if probe.queue is not None:
        try:
            queue_depth = probe.queue.depth()
        except Exception:
            queue_depth = None
    return {
        "version": __version__,
        "role": probe.role,
        "pid": os.getpid(),
        "uptime_s": round(time.time() - STARTED, 3),
        "files": by_state,
        "backlog": by_state[QUEUED] + by_state[PROCESSING],
        "queue_depth": queue_depth,
        "last_ingest": _iso(last),
        "oldest_backlog": _iso(oldest),
        "inbox": str(probe.settings.inbox),
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value if value.endswith("Z") else value.replace(" ", "T") + "Z"
    return value.isoformat() + "Z"


def checks(probe: Probe) -> dict[str, str | None]:
    """Each readiness check: None when it passes, else what is wrong."""
    result: dict[str, str | None] = {}
    try:
        database.obj.execute_sql("SELECT 1")
        result["database"] = None
    except Exception as exc:
        result["database"] = f"database does not answer: {exc}"
    if probe.queue is not None:
        try:
            probe.queue.check()
            result["queue"] = None
        except Exception as exc:
            result["queue"] = str(exc)
    if probe.observer_alive is not None:
        inbox = probe.settings.inbox
        result["inbox"] = None if inbox.is_dir() and os.access(inbox, os.R_OK | os.X_OK) \
            else f"inbox {inbox} is missing or unreadable"
        result["observer"] = None if probe.observer_alive() else "file observer is not running"
    data = probe.settings.data_dir
    try:
        free = shutil.disk_usage(data).free
        result["disk"] = None if free >= MIN_FREE_BYTES else \
            f"only {free / 1048576:.0f} MiB free under {data}"
    except OSError as exc:
        result["disk"] = f"cannot read free space of {data}: {exc}"
    return result
