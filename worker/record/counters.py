"""Counters of what happened to files, kept in ``event_count`` by the ledger's transitions.

Each is bumped inside the transaction that records its event (ledger.py), so it counts events,
not states: a counter never goes down (a retried rejection stays counted), survives restarts,
agrees between the processes of a scaled-out installation, and a scrape reads a few rows
instead of scanning the ledger. Canary files are not counted (they have their own series).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

from worker.record import sql
from worker.record.canaries import CANARY_PREFIX
from worker.record.models import EventCount, utcnow

# Seconds from first seen to finished; files wait at least the stability window and the gate.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600)

# A rejection reason (free text from the parsers and the watcher) → a small, stable label set.
REASON_CATEGORIES = (
    ("too_large", ("max_file_mb",)),
    ("unrecognised_format", ("unrecognised format", "no parser")),
    ("incomplete", ("cut off", "incomplete", "truncated", "ends without")),
    ("too_many_attempts", ("attempts",)),
)
REASONS = tuple(sorted({c for c, _ in REASON_CATEGORIES} | {"parse_error", "other"}))

# Names in event_count (the label column holds the one label each has, or "").
INGESTED = "ingested"  # label: format
REJECTED = "rejected"  # label: format ("unknown" when no parser took it)
REJECTED_REASON = "rejected_reason"  # label: reason_category
CONTEXT = "context"  # files kept as context of an instrument folder's injection
DUPLICATE = "duplicate"
STORED_BYTES = "stored_bytes"
RETRIED = "retried"
LATENCY_BUCKET = "latency_bucket"  # label: the bucket's upper bound
LATENCY_SUM = "latency_sum"
LAST_INGEST = "last_ingest"  # epoch seconds: values that are set, not added
CANARY_LAST_INGEST = "canary_last_ingest"

_TABLE = sql.table(EventCount)
_ADD_CONFLICT = (f"ON CONFLICT (name, label) DO UPDATE SET value = {_TABLE}.value + "
                 "excluded.value")
SET_SQL = (f"INSERT INTO {_TABLE} (name, label, value) VALUES (?, ?, ?) "
            f"ON CONFLICT (name, label) DO UPDATE SET value = excluded.value")


# Each bucket's counter, its label made once: every file ingested adds to most of them.
_BUCKET_KEYS = tuple((le, (LATENCY_BUCKET, str(float(le)))) for le in LATENCY_BUCKETS)


def reason_category(error: str | None, line: int | None) -> str:
    """``parse_error`` for a reason that names a line, else ``other``, unless a pattern matches."""
    text = (error or "").lower()
    for category, needles in REASON_CATEGORIES:
        if any(n in text for n in needles):
            return category
    return "parse_error" if line is not None else "other"


def counted(path: str) -> bool:
    return not path.startswith(CANARY_PREFIX)


Change = tuple[Counter[tuple[str, str]], dict[str, float]]  # amounts to add, values to set
_held = threading.local()


@contextlib.contextmanager
def held() -> Iterator[list[Change]]:
    """Hold back the changes made inside, then make them together on the way out (inside the
    caller's transaction): one statement for a chunk of files instead of two per file, each a
    round trip to the server when scaled out. The list is the caller's to trim, as
    ``audit.held``'s: a file rolled back to its savepoint drops its changes. On an exception
    nothing is written (the transaction is rolling back)."""
    pending: list[Change] | None = getattr(_held, "pending", None)
    if pending is not None:  # already held further out: that one writes them
        yield pending
        return
    pending = _held.pending = []
    try:
        yield pending
    finally:
        _held.pending = None
    total: Counter[tuple[str, str]] = Counter()
    values: dict[str, float] = {}
    for amounts, settings in pending:
        total.update(amounts)
        values.update(settings)
    _add(total)
    for name, value in sorted(values.items()):
        sql.execute(SET_SQL, (name, "", value))


def add(amounts: Counter[tuple[str, str]], values: dict[str, float] | None = None) -> None:
    """Add to the counters (and set ``values``), inside the caller's transaction: one statement
    for them all (an ingested file touches a dozen histogram buckets), or held (``held``)."""
    pending: list[Change] | None = getattr(_held, "pending", None)
    if pending is not None:
        pending.append((amounts, values or {}))
        return
    _add(amounts)
    for name, value in sorted((values or {}).items()):
        sql.execute(SET_SQL, (name, "", value))


def _add(amounts: Counter[tuple[str, str]]) -> None:
    rows = [(name, label, value) for (name, label), value in sorted(amounts.items())
            if value]  # sorted: one lock order for all writers
    if not rows:
        return
    sql.execute(f"INSERT INTO {_TABLE} (name, label, value) VALUES "
                f"{', '.join(['(?, ?, ?)'] * len(rows))} {_ADD_CONFLICT}",
                [v for row in rows for v in row])


def rejected(path: str, reason: str, line: int | None, fmt: str | None) -> None:
    if counted(path):
        add(Counter({(REJECTED, fmt or "unknown"): 1,
                     (REJECTED_REASON, reason_category(reason, line)): 1}))


def context(path: str) -> None:
    if counted(path):
        add(Counter({(CONTEXT, ""): 1}))


def ingested(path: str, fmt: str, first_seen: datetime | None,
             now: datetime | None = None) -> None:
    """One file ingested at ``now`` (its finished_at)."""
    now = utcnow() if now is None else now
    stamp = now.replace(tzinfo=UTC).timestamp()
    if not counted(path):
        add(Counter(), {CANARY_LAST_INGEST: stamp})
        return
    amounts: Counter[tuple[str, str]] = Counter({(INGESTED, fmt): 1})
    if first_seen is not None:
        seconds = max((now - first_seen).total_seconds(), 0.0)
        amounts[(LATENCY_SUM, "")] = seconds  # type: ignore[assignment]
        for le, key in _BUCKET_KEYS:
            if seconds <= le:
                amounts[key] = 1
    add(amounts, {LAST_INGEST: stamp})


def read() -> dict[str, dict[str, float]]:
    """Every counter: name → label → value."""
    found: dict[str, dict[str, float]] = {}
    for name, label, value in sql.rows(f"SELECT name, label, value FROM {_TABLE}"):
        found.setdefault(name, {})[label] = float(value)
    return found
