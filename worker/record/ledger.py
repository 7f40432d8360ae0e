"""The ledger: which files exist, what state each is in, and who holds it.

The ledger is the truth and the queue only a hint (DESIGN.md invariant 2). A consumer takes a
file by a conditional update (a lease); a lease that expires, or whose holder died, is free to
take again. Final states change only inside the transaction that writes the file's rows.

This module alone changes a file's state (and its error, finish time, lease and disposal mark;
DESIGN.md invariant 9). ``TRANSITIONS`` lists every change there is, each with its audit event;
one function performs each, in the caller's transaction, and refuses a change the table lacks
(``IllegalTransition``). To learn how a file can move, read the table.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from worker.record import audit, counters, db, digest, heartbeat, sql
from worker.record.models import (
    CONTEXT,
    FINAL_STATES,
    INGESTED,
    PROCESSING,
    QUEUED,
    REJECTED,
    DuplicateCopy,
    SourceFile,
    database,
    utcnow,
)
from worker.record.store import Location, has

log = logging.getLogger(__name__)

HOST = socket.gethostname()

# A mark on a final row (its source left the inbox), not a state: the row keeps its state.
DISPOSED = "disposed"

# Every change of a file's state: (state before, state after) -> the audit event committed with
# it (None before: the row is created). A change whose only effect is on the lease has no event:
# the file's history does not change, and a burst of retries must not flood the trail.
TRANSITIONS: dict[tuple[str | None, str], str | None] = {
    (None, QUEUED): "queued",            # register_many: stored and registered
    (None, REJECTED): "rejected",        # register_rejected: over the size limit, never stored
    (QUEUED, PROCESSING): "parsing",     # claim_many
    (PROCESSING, PROCESSING): "parsing",  # claim_many: the lease expired or its holder died
    (PROCESSING, QUEUED): None,          # release (try again later), requeue (task lost)
    (QUEUED, QUEUED): None,              # requeue: its task may be lost, enqueued again
    (PROCESSING, INGESTED): "ingested",  # mark_ingested: its rows, or as .D folder evidence
    (PROCESSING, REJECTED): "rejected",  # reject, mark_rejected
    (PROCESSING, CONTEXT): "context",    # mark_context: part of an instrument folder, unread
    (REJECTED, QUEUED): "retry",         # reopen: an operator's retry
    (INGESTED, DISPOSED): "moved",       # mark_disposed: the source left the inbox
    (REJECTED, DISPOSED): "moved",
    (CONTEXT, DISPOSED): "moved",
}


class IllegalTransition(RuntimeError):
    """A change of state the ledger does not allow: a bug in the caller, never bad input."""


def _event(before: str | None, after: str, row_id: int | None = None) -> str | None:
    """The audit event of ``before`` -> ``after``; refuses a change TRANSITIONS lacks."""
    try:
        return TRANSITIONS[(before, after)]
    except KeyError:
        which = "a new file" if row_id is None else f"file {row_id}"
        raise IllegalTransition(f"{which}: {before or 'nothing'} -> {after} is not an allowed "
                                "ledger transition (ledger.TRANSITIONS)") from None


def _audited(before: str | None, after: str, row_id: int | None = None) -> str:
    """``_event`` of a change that always has its event."""
    event = _event(before, after, row_id)
    assert event is not None, f"{before} -> {after} has no audit event in TRANSITIONS"
    return event


def owner_id(thread: str = "") -> str:
    """Identifies a lease holder: host, process and thread, so a dead holder can be recognised."""
    return f"{HOST}:{os.getpid()}:{thread}"


def holder_is_dead(owner: str | None, stale: set[str] | None = None) -> bool:
    """True when the lease belongs to a process on this host that no longer runs, or to one on
    any host whose heartbeat stopped (``stale``: heartbeat.stale_processes(), read once by a
    caller asking about many owners)."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = int(rest.split(":", 1)[0] or 0)
    if host == HOST and pid != os.getpid() and not pid_alive(pid):
        return True
    if stale is None:
        stale = heartbeat.stale_processes()
    return heartbeat.process_key(owner) in stale


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes
        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # type: ignore[attr-defined]
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)  # type: ignore[attr-defined]
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ledger_path(rel: str) -> tuple[str, bytes | None]:
    """The ledger's text for a path as the OS gives it (relative, '/' separators), and the
    path's bytes when that text cannot hold them.

    A POSIX name is bytes, and one that is not UTF-8 (Latin-1 from older Windows PCs and
    network shares) comes from os.fsdecode with surrogate escapes, which no database or JSON
    text takes: the text shows those bytes as ``\\xf6`` escapes, readable in every report,
    and the bytes are kept so the real file can be found again (``disk_path``).
    """
    if rel.isascii():
        return rel, None
    try:
        rel.encode("utf-8")
        return rel, None
    except UnicodeEncodeError:
        raw = os.fsencode(rel)
        return raw.decode("utf-8", "backslashreplace"), raw


def disk_path(text: str, raw: bytes | None) -> str:
    """The path as the OS takes it, from the ledger's text and bytes (``ledger_path``)."""
    return text if raw is None else os.fsdecode(bytes(raw))


def source_path(root: Path, row: SourceFile) -> Path:
    """Where a row's file is under ``root`` (the inbox, processed/ or quarantine/)."""
    return root / disk_path(row.path, row.path_bytes)


def path_details(key: str, path: Path | None) -> dict[str, str | None]:
    """An absolute path for audit details: its text, and its bytes in hex when the text cannot
    hold them (``details_path`` reads them back)."""
    if path is None:
        return {key: None}
    text, raw = ledger_path(os.fspath(path))
    return {key: text} if raw is None else {key: text, f"{key}_bytes": raw.hex()}


def details_path(details: dict[str, str], key: str) -> Path | None:
    """The path ``path_details`` recorded under ``key``."""
    raw = details.get(f"{key}_bytes")
    text = details.get(key)
    if not text:
        return None
    return Path(disk_path(text, bytes.fromhex(raw) if raw else None))


@dataclass(frozen=True)
class Seen:
    """A stable file as the watcher found it."""

    path: str  # relative to the inbox, POSIX separators (the ledger's text: ledger_path)
    size: int
    mtime_ns: int
    sha256: str
    detected_at: float
    stable_at: float
    origin: str = HOST  # the watcher's node name (settings.node); its inbox holds the source
    raw: Location | None = None  # where the raw store put its bytes
    path_bytes: bytes | None = None  # the path's bytes when they are not UTF-8


def register_many(seen: list[Seen], owner: str,
                  lease_seconds: float) -> list[tuple[SourceFile, bool]]:
    """Record stored files in one transaction; (row, is_new) for each, in order.

    A batch reads what the ledger already has of its contents and paths with one query each,
    and inserts its new rows with one statement: a burst registers hundreds at a time. What
    does not depend on the ledger (each file's row values and its first events' details) is
    made before the transaction, so the database's one write lock is held for less.
    """
    if not seen:
        return []
    queued = _audited(None, QUEUED)
    # A burst's files are all new: their first events, ready before the lock.
    names = [one.path.rpartition("/")[2] for one in seen]  # as PurePosixPath(path).name
    first = [(("detected", {"path": one.path, "at": _iso(one.detected_at)}),
              ("stable", {"size": one.size, "mtime_ns": one.mtime_ns,
                          "at": _iso(one.stable_at)}))
             for one in seen]
    duplicates: list[tuple[Seen, SourceFile]] = []
    with database.atomic():
        until, now = time.time() + lease_seconds, utcnow()  # the lease starts once registered
        existing = _rows_by_sha(list(dict.fromkeys(one.sha256 for one in seen)))
        previous = _latest_by_path(seen)
        fresh: list[int] = []  # indexes into seen of the first sighting of each new content
        for i, one in enumerate(seen):
            if one.sha256 not in existing:
                existing[one.sha256] = None  # new: first of the batch
                fresh.append(i)
        ids = sql.insert(SourceFile, _NEW_COLUMNS, [
            (one.sha256, one.path, names[i], one.origin, one.size, one.mtime_ns, now, QUEUED, 0,
             until, owner, previous.get((one.origin, one.path)), False,
             one.raw and one.raw.pack, one.raw and one.raw.offset, one.path_bytes)
            for i in fresh for one in (seen[i],)],
            returning=True)
        made = dict(zip(fresh, ids, strict=True))
        events: list[audit.Event] = []
        for i, row_id in made.items():
            one = seen[i]
            (detected, found), (stable, still) = first[i]
            events += [
                (detected, one.sha256, row_id, found),
                (stable, one.sha256, row_id, still),
                ("stored", one.sha256, row_id, {
                    "size": one.size, "revision_of": previous.get((one.origin, one.path)),
                    **({"pack": one.raw.pack, "offset": one.raw.offset} if one.raw else {})}),
                (queued, one.sha256, row_id, {})]
        fresh_of = {seen[i].sha256: i for i in fresh}
        again = [one for i, one in enumerate(seen) if i not in made]
        waiting = _copies_waiting(again) if again else set()
        counts: Counter[tuple[str, str]] = Counter()
        out: list[tuple[SourceFile, bool] | None] = []
        for i, one in enumerate(seen):
            if i in made:
                out.append(None)  # its row object is made after the commit (below)
                continue
            row = existing[one.sha256]
            if row is None:  # a copy of a file new in this batch: its row, made now
                j = fresh_of[one.sha256]
                row = existing[one.sha256] = _new_row(seen[j], names[j], made[j], now, until,
                                                      owner, previous)
            if row.raw_pack is None and one.raw is not None:  # its bytes, stored at last
                if counters.counted(one.path):
                    counts[(counters.STORED_BYTES, "")] += one.size
                sql.execute(_STORED_SQL, (one.raw.pack, one.raw.offset, row.id))
                row.raw_pack, row.raw_offset = one.raw.pack, one.raw.offset
                events.append(("stored", one.sha256, row.id, {
                    "size": one.size, "pack": one.raw.pack, "offset": one.raw.offset,
                    "path": one.path}))
            if (is_another_copy(row, one.path, one.size, one.mtime_ns)
                    and (one.origin, one.path, one.size, one.mtime_ns) not in waiting):
                events.append(("duplicate", one.sha256, row.id, {
                    "path": one.path, "first_path": row.path, "state": row.state}))
                if counters.counted(one.path):
                    counts[(counters.DUPLICATE, "")] += 1
                duplicates.append((one, row))
                waiting.add((one.origin, one.path, one.size, one.mtime_ns))
            out.append((row, False))
        if duplicates:
            DuplicateCopy.insert_many([{
                "original": row.id, "origin": one.origin, "path": one.path,
                "path_bytes": one.path_bytes, "size": one.size, "mtime_ns": one.mtime_ns,
                "seen_at": now} for one, row in duplicates]).execute()
        counts[(counters.STORED_BYTES, "")] += sum(
            seen[i].size for i in fresh if seen[i].raw is not None
            and counters.counted(seen[i].path))
        audit.record_many(events)  # takes the chain's lock: before the counters' rows, as in ingest
        counters.add(counts)
    # The new rows as objects once the write lock is given up: a batch has hundreds.
    registered: list[tuple[SourceFile, bool]] = []
    for i, (one, taken) in enumerate(zip(seen, out, strict=True)):
        if taken is None:
            taken = (existing[one.sha256] or _new_row(one, names[i], made[i], now, until, owner,
                                                      previous), True)
        registered.append(taken)
    for one, row in duplicates:  # committed: now it happened
        log.info("duplicate %s: same content as file %d (%s)", one.path, row.id, row.path,
                 extra={"outcome": "duplicate", "file_id": row.id, "path": one.path,
                        "sha256": one.sha256, "first_path": row.path})
    return registered


def _rows_by_sha(shas: list[str]) -> dict[str, SourceFile | None]:
    """The ledger's rows of these contents. Asked by id first, in plain SQL: in a burst none
    is there, and building the ORM's query of a whole batch's digests cost more than running
    it."""
    found: list[int] = []
    for chunk in sql.chunks(shas):
        found += [r[0] for r in sql.rows(f"SELECT id FROM {sql.table(SourceFile)} "
                                         f"WHERE sha256 IN ({sql.marks(len(chunk))})", chunk)]
    if not found:
        return {}
    return {r.sha256: r for r in SourceFile.select().where(SourceFile.id.in_(found))}


def _new_row(one: Seen, name: str, row_id: int, now: datetime, until: float, owner: str,
             previous: dict[tuple[str, str], int]) -> SourceFile:
    """The row ``register_many`` inserted for ``one``, as an object, made as a query makes the
    rows it reads (``__no_default__``): Model.__init__ sets each field through its descriptor,
    several times the cost, for each file of a burst."""
    row = SourceFile(__no_default__=1)
    row.__data__.update(
        id=row_id, sha256=one.sha256, path=one.path, name=name, origin=one.origin,
        size=one.size, mtime_ns=one.mtime_ns, first_seen=now, state=QUEUED, attempts=0,
        lease_until=until, lease_owner=owner, previous=previous.get((one.origin, one.path)),
        disposed=False, raw_pack=one.raw and one.raw.pack,
        raw_offset=one.raw and one.raw.offset, path_bytes=one.path_bytes)
    return row


def _copies_waiting(seen: list[Seen]) -> set[tuple[str, str, int, int]]:
    """Duplicate copies already recorded and still in their inbox: seen again (a rescan after
    a restart), they are the same copy, not another one."""
    found: set[tuple[str, str, int, int]] = set()
    for origin in {one.origin for one in seen}:
        paths = list({one.path for one in seen if one.origin == origin})
        for part in sql.chunks(paths):
            found.update(DuplicateCopy.select(DuplicateCopy.origin, DuplicateCopy.path,
                                              DuplicateCopy.size, DuplicateCopy.mtime_ns)
                         .where(DuplicateCopy.origin == origin,
                                DuplicateCopy.path.in_(part),
                                DuplicateCopy.disposed == False)  # noqa: E712
                         .tuples())
    return found


def register_rejected(sha256: str, path: str, path_bytes: bytes | None, origin: str, size: int,
                      mtime_ns: int, reason: str) -> SourceFile:
    """Record a file rejected before its bytes were stored (over the size limit); the row these
    bytes already have, if any, is left as it is."""
    with database.atomic():
        row = SourceFile.get_or_none(SourceFile.sha256 == sha256)
        if row is None:
            event = _audited(None, REJECTED)
            row = SourceFile.create(sha256=sha256, path=path, path_bytes=path_bytes,
                                    name=PurePosixPath(path).name, origin=origin, size=size,
                                    mtime_ns=mtime_ns, state=REJECTED, error=reason,
                                    finished_at=utcnow())
            audit.record("detected", sha256, row.id, path=path)
            audit.record(event, sha256, row.id, reason=reason, path=path)
            counters.rejected(path, reason, None, None)
    return row


def mark_stored(row: SourceFile, place: Location, **details: object) -> None:
    """Where a registered file's bytes were stored at last (a file rejected for its size, now
    retried), with its ``stored`` event, in the caller's transaction. Replaces a location whose
    pack is gone."""
    (SourceFile.update(raw_pack=place.pack, raw_offset=place.offset)
     .where(SourceFile.id == row.id).execute())
    audit.record("stored", row.sha256, row.id, **details)
    row.raw_pack, row.raw_offset = place.pack, place.offset


_STORED_SQL = (f"UPDATE {sql.table(SourceFile)} SET raw_pack = ?, raw_offset = ? "
               "WHERE id = ? AND raw_pack IS NULL")
_NEW_COLUMNS = ("sha256", "path", "name", "origin", "size", "mtime_ns", "first_seen", "state",
                "attempts", "lease_until", "lease_owner", "previous_id", "disposed", "raw_pack",
                "raw_offset", "path_bytes")


def _latest_by_path(seen: list[Seen]) -> dict[tuple[str, str], int]:
    """The newest ledger row of each (origin, path): a new file there is its next revision."""
    latest: dict[tuple[str, str], int] = {}
    for origin in {one.origin for one in seen}:
        paths = list({one.path for one in seen if one.origin == origin})
        for chunk in sql.chunks(paths):
            latest.update(((origin, path), row_id) for path, row_id in sql.rows(
                f"SELECT path, MAX(id) FROM {sql.table(SourceFile)} WHERE origin = ? "
                f"AND path IN ({sql.marks(len(chunk))}) GROUP BY path", [origin, *chunk]))
    return latest


def stored(raw_dir: Path, shas: list[str]) -> set[str]:
    """Which of these contents the ledger has, bytes and all: they need not be stored again.

    A row without a pack has its bytes in a store from before packs, or none at all (a file
    rejected for its size): a copy of the latter is stored, and register_many records where.
    """
    found: set[str] = set()
    for chunk in sql.chunks(shas):
        found.update(sha for sha, pack in sql.rows(
            f"SELECT sha256, raw_pack FROM {sql.table(SourceFile)} "
            f"WHERE sha256 IN ({sql.marks(len(chunk))})", chunk)
            if pack is not None or has(raw_dir, sha))
    return found


def latest_sightings(origin: str, paths: list[str]) -> dict[str, tuple[int, int, int]]:
    """(id, size, mtime_ns) of the latest row of each of ``paths`` from ``origin``: a one-shot
    rerun skips the files it finds unchanged without reading them."""
    found: dict[str, tuple[int, int, int]] = {}
    for chunk in sql.chunks(paths):
        for row_id, path, size, mtime_ns in sql.rows(
                f"SELECT id, path, size, mtime_ns FROM {sql.table(SourceFile)} WHERE origin = ? "
                f"AND path IN ({sql.marks(len(chunk))}) ORDER BY id", [origin, *chunk]):
            found[path] = (row_id, size, mtime_ns)
    return found


def is_another_copy(row: SourceFile, path: str, size: int, mtime_ns: int) -> bool:
    """Is this sighting of ``row``'s bytes a second copy, not the registered file seen again?

    The registered file itself may be read again after a crash (before it left the inbox); any
    other path, a changed mtime, or the same path after the file already left is a new drop.
    """
    return row.disposed or (row.path, row.size, row.mtime_ns) != (path, size, mtime_ns)


_second: tuple[int, str] = (-1, "")


def _iso(ts: float) -> str:
    """``datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds")``, with the date and
    time up to the second formatted once a second: each file registered needs two."""
    global _second
    fraction, whole = math.modf(ts)
    micros, seconds = round(fraction * 1e6), int(whole)  # half to even, as datetime rounds
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    known = _second  # one read: another thread may replace it meanwhile, with the same text
    if known[0] != seconds:
        known = _second = (seconds, datetime.fromtimestamp(seconds, UTC)
                           .isoformat(timespec="seconds")[:-len("+00:00")])
    return f"{known[1]}.{micros:06d}+00:00"


_CLAIM_SQL = (f"UPDATE {sql.table(SourceFile)} SET state = ?, lease_owner = ?, lease_until = ?, "
              "attempts = attempts + 1 WHERE id = ? AND state = ? AND lease_until = ?")


_CLAIM_QUEUED_SQL = (f"UPDATE {sql.table(SourceFile)} SET state = ?, lease_owner = ?, "
                     "lease_until = ?, attempts = attempts + 1 WHERE id IN ({}) AND state = ? "
                     "RETURNING id, attempts")


def claim_many(file_ids: list[int], owner: str, lease_seconds: float) -> list[SourceFile]:
    """Take the lease on each file that is free to take, in one transaction, and record that its
    parsing begins; returns the rows now held (files held by a live consumer are skipped)."""
    now = time.time()
    until = now + lease_seconds
    taken: list[SourceFile] = []
    events: list[audit.Event] = []
    # Read before the write transaction, so the write lock is not held while a batch's rows
    # become objects: every UPDATE below is conditional on what was read, so a row another
    # consumer claimed or finished meanwhile is not taken.
    rows = _unfinished(file_ids)
    # Unsynced: a lease a power cut takes back leaves the file queued, as a crash before the
    # claim does, and the chunk's synced commit after it syncs it too.
    with db.unsynced():
        audit.lock_chain()  # before any row lock: one lock order for all writers (PostgreSQL)
        # Queued rows, nearly all of them, in one conditional UPDATE (a statement per file was
        # a round trip each when scaled out): a row another consumer claimed meanwhile is no
        # longer queued, so it is not taken twice.
        queued = [row for row in rows if row.state == QUEUED]
        event = _audited(QUEUED, PROCESSING)
        attempts: dict[int, int] = {}
        for part in sql.chunks(queued):
            chunk = [row.id for row in part]
            attempts.update(sql.rows(
                _CLAIM_QUEUED_SQL.format(sql.marks(len(chunk))),
                (PROCESSING, owner, until, *chunk, QUEUED)))
        for row in queued:
            if row.id in attempts:
                row.state, row.lease_owner, row.lease_until = PROCESSING, owner, until
                row.attempts = attempts[row.id]
                events.append((event, row.sha256, row.id, {"attempt": row.attempts}))
                taken.append(row)
        stale: set[str] | None = None
        for row in [r for r in rows if r.state == PROCESSING and r.id not in attempts]:
            if row.lease_until > now:
                if stale is None:
                    stale = heartbeat.stale_processes()
                if not holder_is_dead(row.lease_owner, stale):
                    continue
            event = _audited(row.state, PROCESSING, row.id)
            # Conditional on the state and lease as read: another consumer's claim in between
            # changes them, and then this one takes nothing.
            claimed = sql.execute(_CLAIM_SQL, (PROCESSING, owner, until, row.id, row.state,
                                               row.lease_until)).rowcount
            if claimed != 1:
                continue
            row.state, row.lease_owner, row.lease_until = PROCESSING, owner, until
            row.attempts += 1
            events.append((event, row.sha256, row.id, {"attempt": row.attempts}))
            taken.append(row)
        audit.record_many(events)
    return taken


_FIELDS = SourceFile._meta.sorted_fields
_COLUMNS = ", ".join(f'"{f.column_name}"' for f in _FIELDS)
_UNFINISHED_SQL = (f"SELECT {_COLUMNS} FROM "
                   f"{sql.table(SourceFile)} WHERE id IN ({{}}) AND state NOT IN "
                   f"({sql.marks(len(FINAL_STATES))})")


def _unfinished(file_ids: list[int]) -> list[SourceFile]:
    """These rows not in a final state, as ``SourceFile.select()`` makes them (every value
    through its field's ``python_value``, nothing dirty), without the ORM's cursor wrapper and
    an assignment through a descriptor per field: a task reads hundreds of them."""
    names = [f.name for f in _FIELDS]
    read = [f.python_value for f in _FIELDS]
    found = []
    for part in sql.chunks(file_ids):
        for values in sql.rows(_UNFINISHED_SQL.format(sql.marks(len(part))),
                               (*part, *FINAL_STATES)):
            row = SourceFile.__new__(SourceFile)
            row.__data__ = {name: convert(value)
                            for name, convert, value in zip(names, read, values, strict=True)}
            row._dirty, row.__rel__ = set(), {}
            found.append(row)
    # By id, as SQLite hands over the rows of one ``id IN (…)``, the ORM's single statement.
    found.sort(key=lambda row: row.__data__["id"])
    return found


def owned(file_ids: list[int], owner: str) -> set[int]:
    """Inside the writing transaction: which of these leases are still ours (exactly-once)."""
    found: set[int] = set()
    for part in sql.chunks(file_ids):
        found.update(r[0] for r in sql.rows(_OWNED_SQL.format(sql.marks(len(part))),
                                            (*part, PROCESSING, owner)))
    return found


_OWNED_SQL = (f"SELECT id FROM {sql.table(SourceFile)} WHERE id IN ({{}}) AND state = ? "
              "AND lease_owner = ?")


def release(row: SourceFile, owner: str, retry_in: float) -> None:
    """Give a file back after a transient failure; the reconciler retries it after ``retry_in``.
    Nothing happens when the lease is no longer ours."""
    _event(row.state, QUEUED, row.id)
    (SourceFile.update(state=QUEUED, lease_owner=None, lease_until=time.time() + retry_in)
     .where(SourceFile.id == row.id, SourceFile.state == PROCESSING,
            SourceFile.lease_owner == owner).execute())


def reject(row: SourceFile, owner: str, reason: str, line: int | None,
           fmt: str | None = None) -> bool:
    """Final rejection with its reason, committed with its audit event. False if lease lost."""
    with database.atomic():
        if row.id not in owned([row.id], owner):
            return False
        mark_rejected(row, reason, line, fmt)
    return True


_INGESTED_SQL = (f"UPDATE {sql.table(SourceFile)} SET state = ?, format = ?, parser_version = ?, "
                 "job_id = ?, error = NULL, error_line = NULL, finished_at = {finished}, "
                 "lease_owner = NULL, lease_until = 0 WHERE id IN ({ids}) AND state = ?")
_REJECTED_SQL = (f"UPDATE {sql.table(SourceFile)} SET state = ?, format = ?, error = ?, "
                 "error_line = ?, finished_at = {finished}, lease_owner = NULL, lease_until = 0 "
                 "WHERE id IN ({ids}) AND state = ?")
# state after, statement, values, row, finished_at, and the details of its ``ingested`` event
# while they wait for its rows' digest (``finishing``), else None
Finish = tuple[str, str, tuple[object, ...], SourceFile, datetime, "dict[str, object] | None"]
_finishing = threading.local()


@contextlib.contextmanager
def finishing() -> Iterator[list[Finish]]:
    """Hold back the final-state UPDATEs of the files finished inside, then make them on the
    way out (in the caller's transaction), one statement for all the files that share their
    values (a chunk's files share their job and format): one per file was a round trip each
    to a database server. Their events are recorded as they are marked (audit.held holds
    those). The list is the caller's to trim, as ``audit.held``'s; on an exception nothing is
    written (the transaction is rolling back).

    The ``rows`` digest of each file ingested inside is made on the way out too, for them all
    in a few queries, and put into its held ``ingested`` event: a chunk writes its files' rows
    together at its end (ingest's ``Known.flush``), after they were marked, so the caller must
    have written them all by then."""
    pending: list[Finish] | None = getattr(_finishing, "pending", None)
    if pending is not None:  # already held further out: that one writes them
        yield pending
        return
    pending = _finishing.pending = []
    written: dict[int, str] = {}
    _finishing.written = written
    try:
        yield pending
    finally:
        _finishing.pending = _finishing.written = None
    waiting = {row.id: details for *_, row, _, details in pending if details is not None}
    for file_id in [f for f in waiting if f in written]:
        waiting.pop(file_id)["rows"] = written[file_id]
    for file_id, rows_digest in digest.files_rows(list(waiting)).items():
        waiting[file_id]["rows"] = rows_digest
    groups: dict[tuple[str, str, tuple[object, ...]], list[tuple[SourceFile, datetime]]] = {}
    for after, statement, values, row, at, _ in pending:
        groups.setdefault((after, statement, values), []).append((row, at))
    for (after, statement, values), rows in groups.items():
        for part in sql.chunks(rows):
            _update_final(part, after, statement, values)


def rows_written(file_id: int, rows_digest: str) -> None:
    """Inside ``finishing``: the digest of every injection, peak and chromatogram row of file
    ``file_id``, made by their writer from the values it inserted (``digest.file_written``),
    so they are not read back. Its writer writes them all at once, and no other writes any;
    a file with none given is read back."""
    written: dict[int, str] | None = getattr(_finishing, "written", None)
    if written is not None:
        written[file_id] = rows_digest


def _update_final(rows: list[tuple[SourceFile, datetime]], after: str, statement: str,
                  values: tuple[object, ...]) -> None:
    """One UPDATE for ``rows``, each with its own finished_at (the moment it was marked)."""
    if len(rows) == 1:
        finished, times = "?", [rows[0][1]]
    else:
        finished = f"CASE id {' '.join(['WHEN ? THEN ?'] * len(rows))} END"
        times = [v for row, at in rows for v in (row.id, at)]
    text = statement.format(ids=sql.marks(len(rows)), finished=finished)
    changed = sql.execute(text, (after, *values, *times, *[r.id for r, _ in rows], PROCESSING))
    if changed.rowcount != len(rows):
        which = ", ".join(f"{r.id} ({r.path})" for r, _ in rows[:5])
        raise IllegalTransition(f"file(s) {which}{' …' if len(rows) > 5 else ''}: "
                                f"{len(rows) - changed.rowcount} no longer {PROCESSING}, so "
                                f"they cannot become {after}")


def _finish(row: SourceFile, after: str, statement: str, values: tuple[object, ...],
            at: datetime, digested: dict[str, object] | None = None) -> str:
    """``row`` from processing to its final state, finished ``at``, in the caller's transaction
    (which checked the lease with ``owned``), or held (``finishing``); returns the audit event
    to record with it. ``digested``: details that get the digest of the file's rows, made
    now, or when held, on the way out of ``finishing``."""
    event = _audited(row.state, after, row.id)
    pending: list[Finish] | None = getattr(_finishing, "pending", None)
    if pending is not None:
        pending.append((after, statement, values, row, at, digested))
    else:
        if digested is not None:
            digested["rows"] = digest.file_rows(row.id)
        _update_final([(row, at)], after, statement, values)
    return event


def mark_rejected(row: SourceFile, reason: str, line: int | None, fmt: str | None = None) -> None:
    """The rejection itself, inside the caller's transaction (which checked the lease)."""
    event = _finish(row, REJECTED, _REJECTED_SQL, (fmt, reason, line), utcnow())
    audit.record(event, row.sha256, row.id, reason=reason, line=line, path=row.path)
    counters.rejected(row.path, reason, line, fmt)


def mark_ingested(row: SourceFile, fmt: str, parser_version: str, job_id: int | None,
                  **details: object) -> None:
    """Ingested: its rows written, or it is evidence of a ``.D`` sibling's injection. Inside
    the caller's transaction (which checked the lease), with its ``ingested`` event."""
    now = utcnow()  # its finished_at, and what its latency is counted to
    body: dict[str, object] = {"format": fmt, "parser_version": parser_version, **details}
    # Its event carries its rows' digest (``rows``), added before the event is appended.
    event = _finish(row, INGESTED, _INGESTED_SQL, (fmt, parser_version, job_id), now, body)
    audit.record_many([(event, row.sha256, row.id, body)])
    counters.ingested(row.path, fmt, row.first_seen, now)


def mark_context(row: SourceFile, job_id: int | None, **details: object) -> None:
    """Context of an instrument folder's injection: stored, audited, read by no parser. Inside
    the caller's transaction (which checked the lease), with its ``context`` event."""
    event = _finish(row, CONTEXT, _INGESTED_SQL, (None, None, job_id), utcnow())
    audit.record(event, row.sha256, row.id, **details)
    counters.context(row.path)


def reopen(row: SourceFile, owner: str, lease_seconds: float, **why: object) -> bool:
    """Rejected -> queued, leased to ``owner``, the old reason kept in the audit event with
    ``why`` (who asked and their reason: who.operator). False when someone else changed the
    row meanwhile."""
    event = _audited(row.state, QUEUED, row.id)
    with database.atomic():
        updated = (SourceFile.update(state=QUEUED, error=None, error_line=None, finished_at=None,
                                     attempts=0, lease_owner=owner,
                                     lease_until=time.time() + lease_seconds)
                   .where(SourceFile.id == row.id, SourceFile.state == REJECTED).execute())
        if updated != 1:
            return False
        audit.record(event, row.sha256, row.id, path=row.path,
                     previous_error=row.error, previous_line=row.error_line, process=owner,
                     **why)
        counters.add(Counter({(counters.RETRIED, ""): int(counters.counted(row.path))}))
    return True


def mark_disposed(moves: list[tuple[SourceFile, dict[str, object]]]) -> None:
    """Final rows whose sources left the inbox, each with its ``moved`` event (``details``), in
    the caller's transaction."""
    events: list[audit.Event] = [(_audited(row.state, DISPOSED, row.id), row.sha256, row.id,
                                  details) for row, details in moves]
    ids = [row.id for row, _ in moves]
    for part in sql.chunks(ids):
        sql.execute(_DISPOSED_SQL.format(sql.marks(len(part))), (True, *part))
    audit.record_many(events)


_DISPOSED_SQL = f"UPDATE {sql.table(SourceFile)} SET disposed = ? WHERE id IN ({{}})"


def unfinished() -> int:
    """Files registered and not final yet, on every node: the consumers' backlog."""
    return (SourceFile.select(SourceFile.id)
            .where(SourceFile.state.in_((QUEUED, PROCESSING))).count())


def recoverable(now: float | None = None, limit: int = 1000) -> list[SourceFile]:
    """Unfinished rows whose lease expired or whose holder died: their task may be lost."""
    now = time.time() if now is None else now
    rows = (SourceFile.select(SourceFile.id, SourceFile.lease_until, SourceFile.lease_owner,
                              SourceFile.state)
            .where(SourceFile.state.in_((QUEUED, PROCESSING)))  # by the state index, not a scan
            .order_by(SourceFile.id))
    found = []
    stale = heartbeat.stale_processes()
    for r in rows.iterator():
        # A row handed back (release) has no holder and waits for its retry time; only a
        # holder that died frees a lease before it runs out.
        if r.lease_until <= now or (r.lease_owner and holder_is_dead(r.lease_owner, stale)):
            found.append(r)
            if len(found) >= limit:
                break
    return found


def expire(file_ids: list[int]) -> None:
    """End the leases of queued rows now, so the reconciler enqueues them on its next pass."""
    (SourceFile.update(lease_until=0)
     .where(SourceFile.id.in_(file_ids), SourceFile.state == QUEUED).execute())


def expire_queued() -> int:
    """End the lease of every queued row: their tasks were lost with the queue (a restart)."""
    return int(SourceFile.update(lease_until=0).where(SourceFile.state == QUEUED).execute())


def requeue(rows: list[SourceFile], owner: str, lease_seconds: float) -> list[int]:
    """Hand recoverable rows back to the queue; only rows unchanged since read are taken."""
    until = time.time() + lease_seconds
    taken = []
    for r in rows:
        _event(r.state, QUEUED, r.id)
        updated = (SourceFile.update(state=QUEUED, lease_owner=owner, lease_until=until)
                   .where(SourceFile.id == r.id, SourceFile.state == r.state,
                          SourceFile.lease_until == r.lease_until)
                   .execute())
        if updated:
            taken.append(r.id)
    return taken
