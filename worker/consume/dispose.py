"""Where a source file goes once the ledger has its final state.

Only after its raw bytes are stored and its row is final does a file leave the inbox
(invariant 3): ingested files go to ``processed/`` (or are kept or deleted, as configured),
rejected ones to ``quarantine/`` with a ``<name>.reason.txt`` beside them. A file whose size or
mtime changed since it was registered is never moved as that row: it is a new revision the watcher
takes, which supersedes it. A rejected file, and any file where writers' closes are not seen,
leaves only once unchanged for ``dispose_settle_seconds``: its writer may be appending still.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from peewee import InterfaceError, OperationalError

from worker.consume import blocked
from worker.record import audit, db, ledger, sql, store
from worker.record.filelock import FileLock
from worker.record.models import (
    FINAL_STATES,
    REJECTED,
    Disposal,
    DuplicateCopy,
    SourceFile,
    database,
    utcnow,
)
from worker.settings import Settings

log = logging.getLogger(__name__)
NAME_MAX = 255  # bytes in one file name on the usual file systems
REASON_SUFFIX = ".reason.txt"


@functools.cache
def _lock(data_dir: Path) -> FileLock:
    data_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(data_dir / "dispose.lock")


def dispose_row(settings: Settings, row: SourceFile) -> str | None:
    """Move/keep/delete the source of a final row; returns where it went (None: nothing done)."""
    return dispose_rows(settings, [row]).get(row.id)


def dispose_rows(settings: Settings, rows: list[SourceFile]) -> dict[int, str]:
    """Move/keep/delete the sources of final rows; returns what was done, by row id.

    Only the watcher that registered a file can reach its inbox, so rows of another origin
    (``settings.node``) are left to their own watcher. The consumers and the watcher's
    disposal poll (other threads, or other processes of ``run``) may reach the same row
    together: a lock beside the data and the fresh read of ``disposed`` make one of them do it.

    Where each file goes is recorded (``Disposal``) before it is moved, and the mark and its
    ``moved`` event replace that record after: a crash, outage or full disk in between leaves
    a record the next call finishes (the file is in the inbox: moved again; at its target:
    recorded as moved there). Nothing moves when the record cannot be written. The moves of a
    batch share one fsync per folder and one transaction for their records and marks.
    """
    ids = [r.id for r in rows
           if not r.disposed and r.state in FINAL_STATES and r.origin == settings.node]
    if not ids:
        return {}
    places = _Places.of(settings)
    with _lock(settings.data_dir):
        # Read afresh under the lock: another process may have disposed of a row meanwhile,
        # or an operator's retry reopened a rejected one (queued again: not to be moved).
        fresh, recorded = _fresh(rows, ids)
        intents = _intents(recorded)
        reserved = {t for t in map(_target_of, intents.values()) if t is not None}
        plans = [plan for plan in (_plan(places, row, intents.get(row.id), reserved)
                                   for row in fresh) if plan is not None]
        todo = [p for p in plans if p.action in MOVES and not p.recovered]
        new = [p for p in todo if p.row.id not in intents]
        if new:
            try:
                now = utcnow()
                with database.atomic():
                    sql.insert(Disposal, _DISPOSAL_COLUMNS, [
                        (p.row.id, p.action, *_target_columns(p.target), now) for p in new])
            except (OperationalError, InterfaceError) as exc:
                log.warning("cannot record where %d file(s) go, so none is moved yet: %s",
                            len(new), exc)
                return {}
        folders: set[Path] = set()
        pending: set[int] = set()  # recorded, not carried out: the next call finishes them
        for plan in todo:
            try:
                if not _carry_out(plan, folders):
                    plan.action = None  # written to at the last moment: a new revision
            except OSError as exc:
                # Said once per folder (blocked.py), not once per file per poll.
                log.debug("%s %s: not done yet: %s", plan.action, plan.row.path, exc)
                blocked.failed(blocked.culprit(exc, plan.target, plan.source), exc, plan.row.id)
                pending.add(plan.row.id)
        blocked.passed(set(ids) - pending)
        for folder in folders:
            store.fsync_dir(folder)
        done = [p for p in plans if p.action and p.row.id not in pending]
        ended = (set(intents) | {p.row.id for p in new}) - pending
        if not done and not ended:
            return {}
        # The events' details made before the write lock is taken, not while it is held.
        moves: list[tuple[SourceFile, dict[str, object]]] = [(p.row, {
            "action": p.action, "path": p.row.path, **ledger.path_details("to", p.target),
            **p.extra}) for p in done]
        try:
            # Unsynced: the intents, synced before the moves, make a lost mark good again.
            with db.unsynced():
                audit.lock_chain()  # before the rows' locks, as every writer (PostgreSQL)
                if moves:
                    ledger.mark_disposed(moves)
                if ended:
                    _forget_intents(list(ended))
        except (OperationalError, InterfaceError) as exc:
            log.warning("moved %d file(s) but cannot record it yet (recorded on the next "
                        "disposal poll): %s", len(done), exc)
            return {}
    return {p.row.id: p.action for p in done}  # type: ignore[misc]


MOVES = ("moved", "quarantined", "quarantined (copy)", "deleted")
# A row's state, and whether a disposal of it is recorded, in one query.
_FRESH_SQL = (f"SELECT s.id, s.state, d.source_file_id FROM {sql.table(SourceFile)} s "
              f"LEFT JOIN {sql.table(Disposal)} d ON d.source_file_id = s.id "
              f"WHERE s.id IN ({{}}) AND s.disposed = ? "
              f"AND s.state IN ({sql.marks(len(FINAL_STATES))})")
_FORGET_SQL = f"DELETE FROM {sql.table(Disposal)} WHERE source_file_id IN ({{}})"


def _fresh(rows: list[SourceFile], ids: list[int]) -> tuple[list[SourceFile], list[int]]:
    """Those of ``rows`` (``ids``) still final and not disposed of, as the database has them
    now, and the ids of those whose disposal is recorded already (``_intents``). Only their
    states are read (a batch's rows built as objects again cost more than moving the files):
    the rest of a row never changes once registered, except a rejection's reason and time, so
    a rejected row is read whole (its reason file says them)."""
    states: dict[int, str] = {}
    recorded: list[int] = []
    for part in sql.chunks(ids):
        for row_id, state, intent in sql.rows(_FRESH_SQL.format(sql.marks(len(part))),
                                              (*part, False, *FINAL_STATES)):
            states[row_id] = state
            if intent is not None:
                recorded.append(row_id)
    rejected = [i for i, state in states.items() if state == REJECTED]
    again = {r.id: r for r in SourceFile.select().where(SourceFile.id.in_(rejected))} \
        if rejected else {}
    fresh: list[SourceFile] = []
    for row in rows:
        state = states.pop(row.id, None)  # popped: a row passed twice is planned once
        if state is None:
            continue
        if row.id in again:
            row = again[row.id]
        row.state = state
        fresh.append(row)
    return fresh, recorded


def _intents(ids: list[int]) -> dict[int, Disposal]:
    """The recorded disposals of these rows (left by a crash or an outage: seldom any)."""
    if not ids:
        return {}
    return {d.source_file_id: d for part in sql.chunks(ids)
            for d in Disposal.select().where(Disposal.source_file.in_(part))}


def _forget_intents(ids: list[int]) -> None:
    for part in sql.chunks(ids):
        sql.execute(_FORGET_SQL.format(sql.marks(len(part))), part)


@dataclass
class _Plan:
    """What becomes of one row's source."""

    row: SourceFile
    action: str | None
    target: Path | None
    source: Path
    recovered: bool = False  # carried out before a crash or outage; recorded only now
    extra: dict[str, object] = field(default_factory=dict)


def closes_seen(settings: Settings) -> bool:
    """Does the watcher see writers close files (inotify)? Polling, and other platforms'
    observers, report changes only."""
    return not settings.polling and sys.platform.startswith("linux")


@dataclass(frozen=True)
class _Places:
    """What the plans of one call need of the settings, worked out once for all its rows
    rather than once per file (each folder is a new path every time it is asked for)."""

    inbox: Path
    processed: Path
    quarantine: Path
    after_ingest: str
    settle_seconds: float
    closes_seen: bool

    @classmethod
    def of(cls, settings: Settings) -> _Places:
        return cls(settings.inbox, settings.processed_dir, settings.quarantine_dir,
                   settings.after_ingest, settings.dispose_settle_seconds,
                   closes_seen(settings))


def _plan(places: _Places, row: SourceFile, intent: Disposal | None,
          reserved: set[Path]) -> _Plan | None:
    """Where a final row's source goes now; None: not yet (still changing, or not settled)."""
    source = ledger.source_path(places.inbox, row)
    was = (row.size, row.mtime_ns)
    now = _stat_of(source)
    if intent is not None:
        target = _target_of(intent)
        if now == was:  # not carried out (or only half): again, to the recorded target
            return _Plan(row, intent.action, target, source)
        if (target is None and now is None) or (target is not None and _holds(target, row)):
            return _Plan(row, intent.action, target, source, recovered=True,
                         extra={"recovered": True})
        if target is not None and now is not None:
            # A copy cut short (and its reason), and the source rewritten since: the source
            # is the file now. With the source gone, whatever is at the target stays.
            target.unlink(missing_ok=True)
            target.with_name(target.name + REASON_SUFFIX).unlink(missing_ok=True)
    if now != was:
        # Written to since it was read: the watcher takes it again as a new revision of this
        # path, and this row's file is that one now (wherever the revision went since).
        later = (SourceFile.select(SourceFile.id)
                 .where(SourceFile.path == row.path, SourceFile.origin == row.origin,
                        SourceFile.id > row.id).order_by(SourceFile.id).first())
        if later is not None:
            return _Plan(row, "superseded", None, source, extra={"revision": later.id})
        if now is not None:
            return None
        # Neither in the inbox nor where it was headed: the trail names where that was.
        headed = {} if intent is None or intent.target is None else \
            ledger.path_details("headed_to", _target_of(intent))
        return _Plan(row, "gone", None, source, extra=headed)
    rejected = row.state == REJECTED
    if (rejected or not places.closes_seen) and not _settled(places.settle_seconds, row):
        return None
    mode = places.after_ingest
    target: Path | None
    if rejected:
        target = _free_name(_leave_room_for_reason(
            ledger.source_path(places.quarantine, row)),
                            reserved)
        action = "quarantined (copy)" if mode == "keep" else "quarantined"
    elif mode == "move":
        target = _free_name(ledger.source_path(places.processed, row), reserved)
        action = "moved"
    elif mode == "delete":
        target, action = None, "deleted"
    else:
        target, action = None, "kept"
    if target is not None:
        reserved.add(target)
    return _Plan(row, action, target, source)


def _settled(settle_seconds: float, row: SourceFile) -> bool:
    """Unchanged for dispose_settle_seconds: it is as it was read, and was read that long ago.

    A rejected file may be the first part of one its writer appends to after closing it, and
    where closes are not seen any file may be; moved away, the rest of it would start a new
    file in the inbox, and the writer of an open one would finish it in the folder it went to.
    """
    age = (utcnow() - row.first_seen).total_seconds()
    return age >= settle_seconds


_DISPOSAL_COLUMNS = ("source_file_id", "action", "target", "target_bytes", "recorded_at")


def _target_columns(target: Path | None) -> tuple[str | None, bytes | None]:
    """A recorded target as the Disposal row keeps it: text, and bytes when not UTF-8."""
    if target is None:
        return None, None
    return ledger.ledger_path(os.fspath(target))


def _target_of(intent: Disposal) -> Path | None:
    if not intent.target:
        return None
    return Path(ledger.disk_path(intent.target, intent.target_bytes))


def _holds(target: Path, row: SourceFile) -> bool:
    """Is this row's file at ``target``? By its bytes: a copy to another volume may keep the
    mtime coarser than the inbox's (FAT, SMB), and a matching size alone proves nothing."""
    try:
        if target.stat().st_size != row.size:
            return False
        digest = hashlib.sha256()
        with open(target, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == row.sha256


def _stat_of(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def _carry_out(plan: _Plan, folders: set[Path]) -> bool:
    """Move, copy or delete as planned; False when the source changed before it could."""
    row, source, target = plan.row, plan.source, plan.target
    was = (row.size, row.mtime_ns)
    # Asked before moving, not only after (``expect``): a file moved back to the inbox may
    # meet its writer making a new one there.
    if _stat_of(source) != was:  # its writer resumed since the plan
        return False
    if plan.action == "deleted":
        source.unlink()
        return True
    assert target is not None
    quarantined = plan.action in ("quarantined", "quarantined (copy)")
    if quarantined:
        write_reason(target, row)
    placed = _place(source, target, copy=plan.action == "quarantined (copy)", folders=folders,
                    expect=was)
    if not placed and quarantined:
        target.with_name(target.name + REASON_SUFFIX).unlink(missing_ok=True)
    return placed


def _place(source: Path, target: Path, copy: bool, folders: set[Path] | None = None,
           expect: tuple[int, int] | None = None) -> bool:
    """Move (or copy) durably; with ``folders`` the caller fsyncs the target folders once.

    With ``expect`` (the size and mtime as read), a source written to while it moved stays in
    (or goes back to) the inbox, and False is returned: it is a new revision, not this file;
    so is one that changed or went before it could move.
    """
    folder = target.parent
    if folders is None or folder not in folders:  # made already by this batch's moves
        folder.mkdir(parents=True, exist_ok=True)
    if copy:
        _copy(source, target, durable=False)
    else:
        try:
            os.replace(source, target)
        except OSError as exc:
            if expect is not None and _stat_of(source) != expect:
                return False
            if exc.errno != errno.EXDEV:
                raise  # a folder not writable, a full disk: a copy would fail too, or worse
            # Another volume: copy durably, then remove the source.
            _copy(source, target, durable=True)
            if expect is not None and _stat_of(source) != expect:
                target.unlink()
                return False
            source.unlink()
        else:
            if expect is not None and _stat_of(target) != expect and _put_back(target, source):
                return False
    with contextlib.suppress(OSError):  # a rename keeps the inbox's mode (e.g. 0644)
        os.chmod(target, 0o600)
    if folders is None:
        store.fsync_dir(folder)
    else:
        folders.add(folder)
    return True


def _put_back(moved: Path, source: Path) -> bool:
    """Return a file written to as it moved to its writer's path, unless the writer has made
    a new file there since (False: the moved one stays where it went, as when the new file was
    there before the move). A hard link, not a rename: a rename would replace that new file if
    it came between a look and the rename. A crash between the link and the unlink leaves the
    file at both paths; the next pass removes the one at the target (``_plan``)."""
    try:
        os.link(moved, source)
    except FileExistsError:
        return False
    except OSError:  # no hard links here (FAT, some network shares): the look, then a rename
        if _stat_of(source) is not None:
            return False
        os.replace(moved, source)
        return True
    moved.unlink()
    return True


def _copy(source: Path, target: Path, durable: bool) -> None:
    """A copy, or none: one cut short (a full disk) does not stay behind."""
    try:
        shutil.copy2(source, target)
        if durable:
            with open(target, "rb+") as fh:
                os.fsync(fh.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _free_name(target: Path, reserved: set[Path] | frozenset[Path] = frozenset()) -> Path:
    """``target``, or ``name (2).ext`` … when an earlier file of that name is already there
    (or is where a recorded disposal goes)."""
    if not target.exists() and target not in reserved:
        return target
    for n in range(2, 10000):
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        if not candidate.exists() and candidate not in reserved:
            return candidate
    raise FileExistsError(f"too many files named {target.name} in {target.parent}")


def _leave_room_for_reason(target: Path) -> Path:
    """A quarantine name short enough that "<name>.reason.txt" (and a " (n)" that _free_name may
    add) is still a legal file name; the reason file names the original path in full."""
    room = NAME_MAX - len(REASON_SUFFIX) - len(" (9999)")
    stem, suffix = target.stem, target.suffix
    if len(os.fsencode(target.name)) <= room:
        return target
    while stem and len(os.fsencode(f"{stem}~{suffix}")) > room:
        stem = stem[:-1]
    return target.with_name(f"{stem}~{suffix}")


def release_from_quarantine(settings: Settings, row: SourceFile, quarantined: Path) -> None:
    """A retried file was ingested after all: its quarantined copy and reason file go (the copy
    to processed/ when ``after_ingest = "move"``), audited."""
    reason = quarantined.with_name(quarantined.name + REASON_SUFFIX)
    target = None
    if settings.after_ingest == "move":
        target = _free_name(ledger.source_path(settings.processed_dir, row))
        _place(quarantined, target, copy=False)
    else:
        quarantined.unlink(missing_ok=True)
    reason.unlink(missing_ok=True)
    with database.atomic():
        audit.record("moved", row.sha256, row.id, action="released from quarantine",
                     **ledger.path_details("path", quarantined),
                     **ledger.path_details("to", target))


def write_reason(target: Path, row: SourceFile) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    where = f"line {row.error_line}: " if row.error_line else ""
    text = (f"file: {row.path}\nsha256: {row.sha256}\nrejected: {row.finished_at} UTC\n"
            f"reason: {where}{row.error}\n"
            f"retry after fixing the cause: accu-ingest retry {row.id} --reason \"…\"\n")
    reason = target.with_name(target.name + REASON_SUFFIX)
    reason.write_text(text, encoding="utf-8")



def dispose_copies(settings: Settings, ids: list[int] | None = None) -> int:
    """Duplicate copies in this watcher's inbox whose original is final follow it: to
    quarantine/ when it was rejected, else processed/ (or deleted, or kept, as configured).
    A copy that arrived while its original was in flight waited for this; ``ids`` limits it
    to those copies. Returns how many were settled."""
    query = (DuplicateCopy.select(DuplicateCopy, SourceFile).join(SourceFile)
             .where(DuplicateCopy.origin == settings.node,
                    DuplicateCopy.disposed == False,  # noqa: E712
                    SourceFile.state.in_(FINAL_STATES)))
    if ids is not None:
        if not ids:
            return 0
        query = query.where(DuplicateCopy.id.in_(ids))
    copies = list(query)  # read whole before writing (see watcher._dispose_finished)
    mode = settings.after_ingest
    for copy in copies:
        row: SourceFile = copy.original
        source = settings.inbox / ledger.disk_path(copy.path, copy.path_bytes)
        now = _stat_of(source)
        target: Path | None = None
        if mode == "keep":
            action = "duplicate kept"
        elif now != (copy.size, copy.mtime_ns):
            # Gone, or written to since it was read (the watcher takes that as a new file).
            action = "duplicate gone" if now is None else "duplicate changed"
        elif mode == "delete":
            source.unlink(missing_ok=True)
            action = "duplicate delete"
        else:
            base = settings.quarantine_dir if row.state == REJECTED else settings.processed_dir
            target = _free_name(ledger.source_path(base, copy))  # type: ignore[arg-type]
            try:
                _place(source, target, copy=False)
            except OSError as exc:
                log.warning("duplicate %s: not moved yet: %s", copy.path, exc)
                continue
            action = "duplicate move"
        with database.atomic():
            (DuplicateCopy.update(disposed=True).where(DuplicateCopy.id == copy.id).execute())
            audit.record("moved", row.sha256, row.id, action=action, path=copy.path,
                         follows=row.state, **ledger.path_details("to", target))
    return len(copies)
