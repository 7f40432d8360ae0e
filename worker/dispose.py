"""Where a source file goes once the ledger has its final state.

Only after its raw bytes are stored and its row is final does a file leave the inbox
(invariant 3): ingested files go to ``processed/`` (or are kept or deleted, as configured),
rejected ones to ``quarantine/`` with a ``<name>.reason.txt`` beside them. A file whose size or
mtime changed since it was registered is left alone: it is a new revision the watcher will take.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
from pathlib import Path

from worker import audit, ledger, store
from worker.filelock import FileLock
from worker.models import FINAL_STATES, REJECTED, SourceFile, database
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
    The moves of a batch share one fsync per folder and one transaction for their marks.
    """
    ids = [r.id for r in rows
           if not r.disposed and r.state in FINAL_STATES and r.origin == settings.node]
    if not ids:
        return {}
    with _lock(settings.data_dir):
        fresh = list(SourceFile.select().where(SourceFile.id.in_(ids),
                                               SourceFile.disposed == False))  # noqa: E712
        folders: set[Path] = set()
        done = [(row, *_dispose(settings, row, folders)) for row in fresh]
        done = [(row, action, target) for row, action, target in done if action]
        for folder in folders:
            store.fsync_dir(folder)
        if done:
            with database.atomic():
                SourceFile.update(disposed=True).where(
                    SourceFile.id.in_([row.id for row, _, _ in done])).execute()
                audit.record_many([("moved", row.sha256, row.id, {
                    "action": action, "path": row.path, **ledger.path_details("to", target)})
                    for row, action, target in done])
    return {row.id: action for row, action, _ in done}


def _dispose(settings: Settings, row: SourceFile,
             folders: set[Path]) -> tuple[str | None, Path | None]:
    source = ledger.source_path(settings.inbox, row)
    try:
        st = source.stat()
    except FileNotFoundError:
        return "gone", None
    if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
        return None, None
    rejected = row.state == REJECTED
    mode = settings.after_ingest
    target: Path | None
    if rejected:
        target = _free_name(_leave_room_for_reason(
            ledger.source_path(settings.quarantine_dir, row)))
        write_reason(target, row)
        _place(source, target, copy=mode == "keep", folders=folders)
        action = "quarantined (copy)" if mode == "keep" else "quarantined"
    elif mode == "move":
        target = _free_name(ledger.source_path(settings.processed_dir, row))
        _place(source, target, copy=False, folders=folders)
        action = "moved"
    elif mode == "delete":
        target = None
        source.unlink()
        action = "deleted"
    else:
        target, action = None, "kept"
    return action, target


def _place(source: Path, target: Path, copy: bool, folders: set[Path] | None = None) -> None:
    """Move (or copy) durably; with ``folders`` the caller fsyncs the target folders once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if copy:
        shutil.copy2(source, target)
    else:
        try:
            os.replace(source, target)
        except OSError:  # another volume: copy durably, then remove the source
            shutil.copy2(source, target)
            with open(target, "rb+") as fh:
                os.fsync(fh.fileno())
            source.unlink()
    with contextlib.suppress(OSError):  # a rename keeps the inbox's mode (e.g. 0644)
        os.chmod(target, 0o600)
    if folders is None:
        store.fsync_dir(target.parent)
    else:
        folders.add(target.parent)


def _free_name(target: Path) -> Path:
    """``target``, or ``name (2).ext`` … when an earlier file of that name is already there."""
    if not target.exists():
        return target
    for n in range(2, 10000):
        candidate = target.with_name(f"{target.stem} ({n}){target.suffix}")
        if not candidate.exists():
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
            f"retry after fixing the cause: accu-ingest retry {row.id}\n")
    reason = target.with_name(target.name + REASON_SUFFIX)
    reason.write_text(text, encoding="utf-8")



def dispose_duplicate(settings: Settings, source: Path, rel: str, row: SourceFile) -> None:
    """A second copy of already-registered bytes: its content is safe, so it leaves the inbox."""
    mode = settings.after_ingest
    if mode == "keep":
        return
    if mode == "delete":
        source.unlink(missing_ok=True)
        target = None
    else:
        base = settings.quarantine_dir if row.state == REJECTED else settings.processed_dir
        target = _free_name(base / rel)
        _place(source, target, copy=False)
    with database.atomic():
        audit.record("moved", row.sha256, row.id, action=f"duplicate {mode}",
                     path=ledger.ledger_path(rel)[0], **ledger.path_details("to", target))
