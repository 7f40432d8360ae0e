"""What may be deleted, and only that: processed/ copies, orphan raw packs, old canary rows.

The raw store keeps every file's bytes and the ledger, results and trail are kept for good; the
``[retention]`` settings only bound what is kept besides them. Each deletion is one ``pruned``
audit event naming what went and by whom (the service), so ``audit verify --rows`` knows those
rows are gone on purpose.

- ``processed/``: a file older than ``processed_days`` (its age counts from when it was moved
  there: the later of its modification and change times), then the oldest while the folder is
  larger than ``processed_gb`` — each only once its SHA-256 is in the ledger with stored bytes,
  so what is deleted can always be had again from the raw store.
- Raw packs no ledger row points at (the watcher stored them, then crashed before registering
  their files) once ``orphan_pack_hours`` old, looked up again just before each is deleted.
- Canary files older than ``canary_days``: their ledger rows, injections, peaks, traces,
  results and ``raw_blob`` rows (their packs become orphans and follow).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from worker.record import audit, sql, store, who
from worker.record.canaries import CANARY_PREFIX
from worker.record.models import (
    FINAL_STATES,
    Chromatogram,
    Disposal,
    Injection,
    Peak,
    RawBlob,
    Result,
    Sample,
    SourceFile,
    database,
    utcnow,
)
from worker.settings import Settings

log = logging.getLogger(__name__)
GB = 1024 ** 3


@dataclass
class Pruned:
    processed_files: int = 0
    processed_bytes: int = 0
    orphan_packs: int = 0
    canary_files: int = 0
    kept: list[str] = field(default_factory=list)  # what retention wanted but may not delete


def prune(settings: Settings) -> Pruned:
    done = Pruned()
    prune_processed(settings, done)
    prune_orphan_packs(settings, done)
    prune_canaries(settings, done)
    return done


# --- processed/ ---------------------------------------------------------------------------

def _aged(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    # A move keeps the modification time; on POSIX the change time is the move's.
    return max(st.st_mtime, st.st_ctime), st.st_size


def prune_processed(settings: Settings, done: Pruned) -> None:
    r = settings.retention
    root = settings.processed_dir
    if (r.processed_days is None and r.processed_gb is None) or not root.is_dir():
        return
    files = sorted((aged[0], aged[1], p) for p in root.rglob("*")
                   if p.is_file() and not p.is_symlink() and (aged := _aged(p)) is not None)
    now, total = time.time(), sum(size for _, size, _ in files)
    doomed: list[tuple[Path, int]] = []
    for at, size, path in files:
        too_old = r.processed_days is not None and now - at > r.processed_days * 86400
        too_big = r.processed_gb is not None and total > r.processed_gb * GB
        if not (too_old or too_big):
            break  # oldest first: every later one is younger, and the folder fits by now
        doomed.append((path, size))
        total -= size
    gone: list[str] = []
    for path, size in doomed:
        if not _in_raw_store(path):
            done.kept.append(f"{path}: its bytes are not in the raw store (ledger), so kept")
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        gone.append(path.relative_to(root).as_posix())
        done.processed_files += 1
        done.processed_bytes += size
    for folder in sorted({p.parent for p, _ in doomed}, key=lambda p: len(p.parts),
                         reverse=True):
        while folder != root and folder.is_dir():
            try:
                folder.rmdir()  # only when empty
            except OSError:
                break
            folder = folder.parent
    if gone:
        _event({"what": "processed", "folder": str(root), "paths": gone,
                "bytes": done.processed_bytes,
                "rule": {"processed_days": r.processed_days, "processed_gb": r.processed_gb}})


def _in_raw_store(path: Path) -> bool:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    except OSError:
        return False
    found = sql.rows(f"SELECT raw_pack FROM {sql.table(SourceFile)} WHERE sha256 = ?",
                     (h.hexdigest(),))
    return bool(found) and (found[0][0] is not None or bool(sql.rows(
        f"SELECT 1 FROM {sql.table(RawBlob)} WHERE sha256 = ?", (h.hexdigest(),))))


# --- orphan packs -------------------------------------------------------------------------

_POINTS_AT = f"SELECT 1 FROM {sql.table(SourceFile)} WHERE raw_pack = ? LIMIT 1"


def prune_orphan_packs(settings: Settings, done: Pruned) -> None:
    root = settings.raw_dir
    packs = store.packs(root)
    if not packs:
        return
    named = {p for (p,) in sql.rows(f"SELECT DISTINCT raw_pack FROM {sql.table(SourceFile)} "
                                    "WHERE raw_pack IS NOT NULL")}
    old_enough = time.time() - settings.retention.orphan_pack_hours * 3600
    gone: list[dict[str, object]] = []
    for rel in packs:
        path = root / rel
        try:
            st = path.stat()
        except OSError:
            continue
        if rel in named or st.st_mtime > old_enough:
            continue
        with database.atomic():  # the write lock: no row can name it between look and delete
            if sql.rows(_POINTS_AT, (rel,)):  # registered meanwhile
                continue
            path.unlink(missing_ok=True)
            gone.append({"pack": rel, "bytes": st.st_size})
            _event({"what": "orphan raw pack", "pack": rel, "bytes": st.st_size})
        done.orphan_packs += 1
    for folder in {(root / g["pack"]).parent for g in gone}:  # type: ignore[operator]
        with contextlib.suppress(OSError):
            folder.rmdir()


# --- canaries -----------------------------------------------------------------------------

def prune_canaries(settings: Settings, done: Pruned, batch: int = 500) -> None:
    before = utcnow() - timedelta(days=settings.retention.canary_days)
    while True:
        with database.atomic():
            audit.lock_chain()
            files = [r.id for r in SourceFile.select(SourceFile.id).where(
                SourceFile.path.startswith(CANARY_PREFIX), SourceFile.state.in_(FINAL_STATES),
                SourceFile.finished_at < before).order_by(SourceFile.id).limit(batch)]
            if not files:
                return
            results = _delete_canary_rows(files)
            _event({"what": "canary", "files": files, "results": results,
                    "older_than": before.isoformat(sep=" ", timespec="seconds")})
        done.canary_files += len(files)


def _delete_canary_rows(files: list[int]) -> list[int]:
    """The rows of these canary files, children first; returns the result ids deleted."""
    injections = [i.id for i in Injection.select(Injection.id)
                  .where(Injection.source_file.in_(files))]
    samples = {i.sample_id for i in Injection.select(Injection.sample)
               .where(Injection.id.in_(injections))} if injections else set()
    results: list[int] = []
    if injections:
        results += [r.id for r in Result.select(Result.id).where(
            Result.injection.in_(injections))]
        Peak.delete().where(Peak.injection.in_(injections)).execute()
        Chromatogram.delete().where(Chromatogram.injection.in_(injections)).execute()
    empty = [s for s in samples
             if not Injection.select().where(Injection.sample == s,
                                             Injection.id.not_in(injections)).exists()]
    if empty:
        results += [r.id for r in Result.select(Result.id).where(Result.sample.in_(empty))]
    results = sorted(set(results))
    if results:
        Result.delete().where(Result.id.in_(results)).execute()
    if injections:
        Injection.delete().where(Injection.id.in_(injections)).execute()
    if empty:
        Sample.delete().where(Sample.id.in_(empty)).execute()
    shas = [r.sha256 for r in SourceFile.select(SourceFile.sha256).where(SourceFile.id.in_(files))]
    RawBlob.delete().where(RawBlob.sha256.in_(shas)).execute()
    Disposal.delete().where(Disposal.source_file.in_(files)).execute()
    SourceFile.delete().where(SourceFile.id.in_(files)).execute()
    return results


def _event(details: dict[str, object]) -> None:
    """One ``pruned`` event by the service, in its own transaction unless in the caller's."""
    with database.atomic():
        audit.record("pruned", None, None, **details, **who.service())
    log.info("retention: pruned %s", details.get("what"),
             extra={k: v for k, v in details.items() if k in ("what", "bytes", "pack")})
