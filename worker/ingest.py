"""One file from the ledger to rows: detect, parse, write, compute — all or nothing.

This is the body of the Huey task. It is idempotent: the lease decides who works on a file, and
its rows, its final ledger state and its audit events commit in one transaction, so a consumer
killed at any point leaves either nothing or everything, and the reconciler retries the former.
"""

from __future__ import annotations

import contextlib
import logging
import struct
import sys
from datetime import timedelta
from pathlib import PurePosixPath

from peewee import InterfaceError, OperationalError

from worker import audit, dispose, grouping, jobresults, ledger, store
from worker.models import (
    INGESTED,
    Chromatogram,
    Injection,
    Job,
    Peak,
    RawBlob,
    Sample,
    SourceFile,
    database,
    utcnow,
)
from worker.naming import identify
from worker.parsers.base import ParsedFile, ParseError
from worker.results import recompute_sample
from worker.settings import Settings

log = logging.getLogger(__name__)

LOOSE_WINDOW = timedelta(minutes=2)  # loose files first seen this close together share a Job
TRANSIENT = (OperationalError, InterfaceError, store.StoreError, OSError)


def raw_bytes(settings: Settings, row: SourceFile) -> bytes:
    """The stored bytes: from the local raw store, else from the database (scale-out)."""
    path = store.path_for(settings.raw_dir, row.sha256)
    if path.exists():
        return store.get(settings.raw_dir, row.sha256)
    blob = RawBlob.get_or_none(RawBlob.sha256 == row.sha256)
    if blob is None:
        raise store.StoreError(f"raw bytes of {row.sha256[:12]}… are in neither {settings.raw_dir}"
                               " nor the database")
    data = bytes(blob.data)
    if store.sha256_of(data) != row.sha256:
        raise store.StoreError(f"database copy of {row.sha256[:12]}… does not match its SHA-256")
    return data


def process(settings: Settings, file_id: int, owner: str | None = None) -> str | None:
    """Ingest or reject one ledger row; returns the final state, or None if not ours to do."""
    owner = owner or ledger.owner_id()
    row = ledger.claim(file_id, owner, settings.lease_seconds)
    if row is None:
        return None
    try:
        data = raw_bytes(settings, row)
        with database.atomic():
            audit.record("parsing", row.sha256, row.id, attempt=row.attempts)
        parsed = grouping.parse(settings, row, data, lambda r: raw_bytes(settings, r))
    except grouping.NotYet as wait:
        ledger.release(row, owner, wait.seconds)
        return None
    except ParseError as exc:
        return _reject(settings, row, owner, exc.reason, exc.line)
    except TRANSIENT as exc:
        _retry_later(row, owner, exc)
        raise
    except Exception as exc:
        return _unexpected(settings, row, owner, exc)
    try:
        if isinstance(parsed, grouping.Evidence):
            done = grouping.link(row, owner, parsed)
        else:
            done = _write(row, owner, parsed, settings)
    except grouping.NotYet as wait:
        ledger.release(row, owner, wait.seconds)
        return None
    except TRANSIENT as exc:
        _retry_later(row, owner, exc)
        raise
    except Exception as exc:
        return _unexpected(settings, row, owner, exc)
    if not done:
        return None
    dispose.dispose_row(settings, SourceFile.get_by_id(row.id))
    return INGESTED


def _reject(settings: Settings, row: SourceFile, owner: str, reason: str,
            line: int | None) -> str | None:
    if not ledger.reject(row, owner, reason, line):
        return None
    log.warning("rejected %s: %s", row.path, reason if line is None else f"line {line}: {reason}")
    dispose.dispose_row(settings, SourceFile.get_by_id(row.id))
    return "rejected"


def _retry_later(row: SourceFile, owner: str, exc: BaseException) -> None:
    """A transient failure (database busy, disk full): give the file back with backoff."""
    delay = min(300.0, 2.0 ** min(row.attempts, 8))
    log.warning("transient failure on %s (attempt %d), retry in %.0fs: %s", row.path,
                row.attempts, delay, exc)
    with contextlib.suppress(TRANSIENT):  # else the lease expires and the reconciler retries
        ledger.release(row, owner, delay)


def _unexpected(settings: Settings, row: SourceFile, owner: str, exc: Exception) -> str | None:
    """Neither a parse error nor transient (a bug, a constraint the data breaks): retried with
    backoff in case it was a fluke, then rejected with the error so it cannot loop for ever."""
    log.exception("unexpected failure on %s (attempt %d)", row.path, row.attempts)
    if row.attempts >= settings.max_attempts:
        reason = (f"failed {row.attempts} times with an internal error "
                  f"({type(exc).__name__}: {exc}); report it, then retry the file")
        return _reject(settings, row, owner, reason, None)
    _retry_later(row, owner, exc)
    return None


def _write(row: SourceFile, owner: str, parsed: ParsedFile, settings: Settings) -> bool:
    """Every row derived from the file, its final state and audit events: one transaction."""
    with database.atomic() as txn:
        audit.lock_chain()  # before any row lock: one lock order for all writers (PostgreSQL)
        if not ledger.still_owned(row, owner):
            txn.rollback()
            return False
        job = _job_for(row, parsed)
        sample, number = _sample_for(job, row, parsed)
        grouping.settle_folder(row, settings.methods)
        _supersede_previous_revision(row)
        injection = Injection.create(sample=sample, source_file=row, number=number,
                                     acquired_at=parsed.acquired_at)
        peak_rows = []
        for signal in parsed.signals:
            for p in signal.peaks or ():
                peak_rows.append({
                    "injection": injection.id, "signal": signal.name, "number": p.number,
                    "rt_min": p.rt_min, "area": p.area, "area_pct": p.area_pct,
                    "height": p.height, "begin_min": p.begin_min, "end_min": p.end_min,
                    "width_min": p.width_min, "peak_type": p.peak_type, "name": p.name})
            if signal.trace is not None:
                tr = signal.trace
                Chromatogram.create(
                    injection=injection, signal=signal.name, detector=signal.detector,
                    wavelength_nm=signal.wavelength_nm, points=tr.points, time_unit=tr.time_unit,
                    value_unit=tr.value_unit, t_start=tr.times[0], t_end=tr.times[-1],
                    data=pack(tr.times, tr.values))
        for start in range(0, len(peak_rows), 200):
            Peak.insert_many(peak_rows[start:start + 200]).execute()
        results = recompute_sample(sample, settings.methods)
        results += jobresults.after_file(row, job, sample, settings.methods)
        (SourceFile.update(state=INGESTED, format=parsed.format,
                           parser_version=parsed.parser_version, job=job, finished_at=utcnow(),
                           lease_owner=None, lease_until=0, error=None, error_line=None)
         .where(SourceFile.id == row.id).execute())
        audit.record("ingested", row.sha256, row.id, format=parsed.format,
                     parser_version=parsed.parser_version, encoding=parsed.encoding,
                     job=job.key, sample=sample.sample_id, injection=number,
                     peaks=len(peak_rows),
                     traces=sum(1 for s in parsed.signals if s.trace is not None),
                     results=[r.id for r in results])
    return True


def pack(times: object, values: object) -> bytes:
    """Little-endian float64 times then values: portable across machines and databases."""
    from array import array
    t, v = array("d", times), array("d", values)  # type: ignore[arg-type]
    if sys.byteorder != "little":
        t.byteswap()
        v.byteswap()
    return struct.pack("<I", len(t)) + t.tobytes() + v.tobytes()


def unpack(data: bytes) -> tuple[list[float], list[float]]:
    from array import array
    (n,) = struct.unpack_from("<I", data)
    t, v = array("d"), array("d")
    t.frombytes(data[4:4 + 8 * n])
    v.frombytes(data[4 + 8 * n:4 + 16 * n])
    if sys.byteorder != "little":
        t.byteswap()
        v.byteswap()
    return list(t), list(v)


def _job_for(row: SourceFile, parsed: ParsedFile) -> Job:
    """The export folder a file was dropped in is its Job; loose files dropped together share
    one."""
    folder = grouping.job_folder(row.path)
    if folder != ".":
        key = f"{row.origin}:{folder}"
        job, created = Job.get_or_create(key=key, defaults={
            "name": PurePosixPath(folder).name, "instrument": parsed.instrument,
            "method": parsed.method, "acquired_at": parsed.acquired_at})
    else:
        near = (SourceFile.select(SourceFile.job)
                .where(SourceFile.origin == row.origin, ~SourceFile.path.contains("/"),
                       SourceFile.job.is_null(False),
                       SourceFile.first_seen.between(row.first_seen - LOOSE_WINDOW,
                                                     row.first_seen + LOOSE_WINDOW))
                .order_by(SourceFile.first_seen.desc()).first())
        if near is not None:
            job, created = near.job, False
        else:
            stamp = row.first_seen.strftime("%Y-%m-%d %H:%M:%S")
            job, created = Job.create(key=f"{row.origin}:loose:{stamp}:{row.id}",
                                      name=f"loose files {stamp}", instrument=parsed.instrument,
                                      method=parsed.method, acquired_at=parsed.acquired_at), True
    if not created and job.method is None and parsed.method:
        Job.update(method=parsed.method, instrument=parsed.instrument).where(
            Job.id == job.id).execute()
    return job


def _sample_for(job: Job, row: SourceFile, parsed: ParsedFile) -> tuple[Sample, int]:
    ident = identify(parsed.sample_name or grouping.fallback_name(row.path))
    kind = parsed.sample_kind or ident.kind
    level = parsed.level if parsed.level is not None else ident.level
    number = parsed.injection or ident.injection
    sample, _ = Sample.get_or_create(job=job, sample_id=ident.sample_id, analyte=ident.analyte,
                                     defaults={"kind": kind, "level": level})
    return sample, number


def _supersede_previous_revision(row: SourceFile) -> None:
    """A new revision of a path makes the old revision's injections (and so results) history."""
    if row.previous_id is None:
        return
    old = list(Injection.select().where(Injection.source_file == row.previous_id,
                                        Injection.superseded == False))  # noqa: E712
    if not old:
        return
    Injection.update(superseded=True).where(Injection.id.in_([i.id for i in old])).execute()
    audit.record("revision_superseded", row.sha256, row.id, previous=row.previous_id,
                 injections=[i.id for i in old])
    for sample in {i.sample for i in old}:
        recompute_sample(sample)

