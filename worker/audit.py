"""The append-only, hash-chained audit trail.

Each event's hash covers its own fields and the previous event's hash, so editing, inserting or
deleting any event breaks the chain at that point, and ``verify`` names the first broken event.
Events are appended inside the caller's transaction: a step and its audit commit together.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker import __version__, sql
from worker.models import AuditEvent, database

GENESIS = "0" * 64
HOST = socket.gethostname()
# Serialises appends on PostgreSQL, where concurrent consumers would otherwise fork the chain.
PG_LOCK_KEY = 0x61636375  # "accu"


# Built once: json.dumps builds a new encoder on every call given any option, and every event
# is encoded twice (its details, then the body its hash covers).
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              default=str)


def canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


def _digest(prev_hash: str, seq: int, at: str, host: str, pid: int, version: str, event: str,
            sha256: str | None, source_file_id: int | None, details: str) -> str:
    body = canonical([prev_hash, seq, at, host, pid, version, event, sha256, source_file_id,
                      details])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def lock_chain() -> None:
    """Hold the chain's lock until the current transaction ends (PostgreSQL; a no-op elsewhere).

    Concurrent consumers would otherwise read the same head and fork the chain. A transaction
    that locks rows (a job, a sample) and only then waits here can deadlock with one that holds
    this lock and waits for those rows, so a writer that will lock rows and append events calls
    this first: every writer then takes the locks in the same order. SQLite needs nothing: its
    write transactions begin IMMEDIATE and so are serial already.
    """
    db = database.obj
    if db.in_transaction() and type(db).__name__.startswith("Postgres"):
        db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK_KEY,))


def record(event: str, sha256: str | None = None, source_file_id: int | None = None,
           **details: Any) -> None:
    """Append one event. Call inside a write transaction so it commits with the step it
    records."""
    record_many([(event, sha256, source_file_id, details)])


Event = tuple[str, "str | None", "int | None", dict[str, Any]]  # event, sha256, file id, details
_held = threading.local()


@contextlib.contextmanager
def held() -> Iterator[list[Event]]:
    """Hold back the events recorded inside, then append them together, in order, on the way
    out (inside the caller's transaction, so they still commit with their steps).

    An ingest chunk records a few events per file; appended one by one, each costs a read of
    the chain's head and an INSERT while the database's write lock is held. The list is the
    caller's to trim: a savepoint that rolls back a file's rows drops that file's events with
    them. On an exception nothing is appended (the transaction is rolling back).
    """
    events: list[Event] | None = getattr(_held, "events", None)
    if events is not None:  # already held further out: that one appends them
        yield events
        return
    events = _held.events = []
    try:
        yield events
    finally:
        _held.events = None
    _append(events)


def record_many(events: list[Event]) -> None:
    """Append events in order, each linked to the one before (or hold them: see ``held``)."""
    waiting: list[Event] | None = getattr(_held, "events", None)
    if waiting is not None:
        waiting.extend(events)
    else:
        _append(events)


def _append(events: list[Event]) -> None:
    """One read of the chain's head and one multi-row INSERT, in plain SQL: this runs for every
    step of every file, and building the same queries through the ORM each time (or two
    statements per event) cost more than everything else about the events.
    """
    if not events:
        return
    lock_chain()
    head = sql.rows(_HEAD_SQL)
    seq, prev = head[0] if head else (0, GENESIS)
    pid = os.getpid()
    rows: list[tuple[Any, ...]] = []
    for event, sha256, source_file_id, details in events:
        seq += 1
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        text = canonical(details)
        digest = _digest(prev, seq, at, HOST, pid, __version__, event, sha256, source_file_id,
                         text)
        rows.append((seq, at, HOST, pid, __version__, event, sha256, source_file_id, text, prev,
                     digest))
        prev = digest
    sql.insert(AuditEvent, _COLUMNS, rows)


_HEAD_SQL = f"SELECT seq, hash FROM {sql.table(AuditEvent)} ORDER BY seq DESC LIMIT 1"
_COLUMNS = ("seq", "at", "host", "pid", "version", "event", "sha256", "source_file_id",
            "details", "prev_hash", "hash")


@dataclass
class VerifyReport:
    events: int
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_bad is None


def _events(batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        rows = list(AuditEvent.select().where(AuditEvent.seq > last)
                    .order_by(AuditEvent.seq).limit(batch))
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify() -> VerifyReport:
    """Walk the whole chain; the first event whose link or content does not check is named."""
    prev, expected_seq, count = GENESIS, 1, 0
    for ev in _events():
        count += 1
        if ev.seq != expected_seq:
            what = "missing" if ev.seq > expected_seq else "repeated"
            return VerifyReport(count, ev.seq, f"event {expected_seq} is {what} (found {ev.seq})")
        if ev.prev_hash != prev:
            return VerifyReport(count, ev.seq, "does not link to the previous event's hash")
        digest = _digest(ev.prev_hash, ev.seq, ev.at, ev.host, ev.pid, ev.version, ev.event,
                         ev.sha256, ev.source_file_id, ev.details)
        if digest != ev.hash:
            return VerifyReport(count, ev.seq, "content was changed after it was written")
        prev, expected_seq = ev.hash, expected_seq + 1
    return VerifyReport(count)
