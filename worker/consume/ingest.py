"""One file from the ledger to rows: detect, parse, write, compute — all or nothing.

This is the body of the Huey task. It is idempotent: the lease decides who works on a file, and
its rows, its final ledger state and its audit events commit in one transaction, so a consumer
killed at any point leaves either nothing or everything, and the reconciler retries the former.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import struct
import sys
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import PurePosixPath
from typing import TypeVar, cast

from peewee import InterfaceError, OperationalError

from worker.chemistry import purity
from worker.consume import dfolder, dispose
from worker.consume.gcpause import paused
from worker.consume.sample_names import identify
from worker.parsers.base import ParsedFile, ParseError, Signal
from worker.parsers.options import ParserOptions
from worker.record import audit, counters, db, digest, heartbeat, ledger, sql, store
from worker.record.models import (
    CONTEXT,
    INGESTED,
    REJECTED,
    Chromatogram,
    Injection,
    Job,
    Peak,
    RawBlob,
    Sample,
    SourceFile,
    database,
    sample_identity,
    utcnow,
)
from worker.results import extras
from worker.results import job as job_results
from worker.results.inputs import StoredPeak, Tables, read_tables, stored_peaks
from worker.results.sample import namesakes_read_once, recompute_sample
from worker.results.store import batched
from worker.settings import Settings

log = logging.getLogger(__name__)

LOOSE_WINDOW = timedelta(minutes=2)  # loose files first seen this close together share a Job
TRANSIENT = (OperationalError, InterfaceError, store.StoreError, OSError)
CHUNK_BYTES = 32 * 1024 * 1024
T = TypeVar("T")


def raw_bytes(settings: Settings, row: SourceFile, copies: dict[str, bytes] | None = None,
              packs: store.Packs | None = None) -> bytes:
    """The stored bytes: from the local raw store (through ``packs``, a chunk's open packs,
    when given), else from the database (scale-out), where ``copies`` holds those read
    already (``database_copies``)."""
    try:
        if packs is not None:
            return packs.get(row.sha256, row.raw_pack, row.raw_offset, row.size)
        return store.get(settings.raw_dir, row.sha256, row.raw_pack, row.raw_offset, row.size)
    except FileNotFoundError:
        pass
    data = (copies or {}).get(row.sha256)
    if data is None:
        blob = RawBlob.get_or_none(RawBlob.sha256 == row.sha256)
        if blob is None:
            raise store.StoreError(f"raw bytes of {row.sha256[:12]}… are in neither "
                                   f"{settings.raw_dir} nor the database")
        data = bytes(blob.data)
    if store.sha256_of(data) != row.sha256:
        raise store.StoreError(f"database copy of {row.sha256[:12]}… does not match its SHA-256")
    return data


def database_copies(settings: Settings, rows: list[SourceFile]) -> dict[str, bytes]:
    """The database's copies of the bytes of those ``rows`` this machine's raw store lacks (a
    consumer of a scaled-out installation), in one query for them all: one each was a round
    trip per file. Not a big file's: those are read one at a time (``raw_bytes``), so a chunk
    of them is never held at once."""
    raw_dir = settings.raw_dir
    here: dict[str, bool] = {}  # by pack: a chunk's files share a few

    def local(row: SourceFile) -> bool:
        if row.raw_pack is None:
            return store.has(raw_dir, row.sha256)
        found = here.get(row.raw_pack)
        if found is None:
            found = here[row.raw_pack] = store.has(raw_dir, row.sha256, row.raw_pack)
        return found

    wanted = [r.sha256 for r in rows if r.size <= store.STREAM_BYTES and not local(r)]
    found: dict[str, bytes] = {}
    for chunk in sql.chunks(wanted):
        found.update((sha, bytes(data)) for sha, data in sql.rows(
            f"SELECT sha256, data FROM {sql.table(RawBlob)} "
            f"WHERE sha256 IN ({sql.marks(len(chunk))})", chunk))
    return found


@contextlib.contextmanager
def stored(settings: Settings, row: SourceFile,
           copies: dict[str, bytes] | None = None) -> Iterator[bytes | mmap.mmap]:
    """The stored bytes to parse: a big file as an mmap of its record in the raw store (its
    pages are the file's, so memory stays bounded whatever its size), else ``raw_bytes``."""
    with contextlib.ExitStack() as stack:
        view = None
        if row.size > store.STREAM_BYTES and row.raw_pack is not None:
            with contextlib.suppress(FileNotFoundError):  # not here: from the database
                view = stack.enter_context(store.mapped(settings.raw_dir, row.sha256,
                                                        row.raw_pack, row.raw_offset))
        yield view if view is not None else raw_bytes(settings, row, copies)


@dataclass
class Work:
    """One claimed file on its way through a batch, and what became of it."""

    row: SourceFile
    parsed: ParsedFile | dfolder.Evidence | dfolder.Folder | None = None
    rejection: ParseError | None = None
    wait: float | None = None  # not yet (a .D sibling pending): give back, retry this soon
    failure: Exception | None = None  # transient or unexpected: give back with backoff
    state: str | None = None  # the final state once committed
    touched: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    prepared: Prepared | None = None  # what its rows need of it, made before the write lock


def process(settings: Settings, file_id: int, owner: str | None = None) -> str | None:
    """Ingest or reject one ledger row; returns the final state, or None if not ours to do."""
    return process_many(settings, [file_id], owner).get(file_id)


def process_many(settings: Settings, file_ids: list[int],
                 owner: str | None = None) -> dict[int, str]:
    """Ingest or reject a batch of ledger rows; returns the final state of those it finished.

    The batch is claimed in one transaction, then written and disposed of a chunk at a time
    (see _chunks), each chunk in one transaction: sharing them is what makes a burst fast. Each
    file still commits all or nothing, in a savepoint of its own, and a chunk that fails as a
    whole is written again file by file so one bad file cannot hold back the rest.
    """
    owner = owner or ledger.owner_id()
    beat = heartbeat.loop(f"consumer {threading.current_thread().name}", stall_after=None)
    finished: dict[int, str] = {}
    # Past its lease a batch is taken over by others: a pass that long is hung, and the
    # watchdog (and /readyz) say so.
    beat.busy(settings.lease_seconds)
    try:
        claimed = _while_connection_lost(
            settings, beat, lambda: ledger.claim_many(file_ids, owner, settings.lease_seconds))
        for chunk in _chunks(claimed):
            finished.update(_process_chunk(settings, chunk, owner, beat))
    except TRANSIENT:
        # Given up on for now (its leases, ours or not, bring them back: the reconciler). This
        # thread is idle again and its next query opens a new connection.
        beat.ok()
        raise
    finally:
        beat.idle()
    beat.ok()
    return finished


def _while_connection_lost(settings: Settings, beat: heartbeat.Loop, work: Callable[[], T]) -> T:
    """``work()``, tried again with backoff while the database connection is lost (a server
    restart, a failover), for as long as a lease lasts: the files this thread holds are then
    finished as soon as the server is back, not when their leases run out. Other errors, and
    the last one, are raised."""
    deadline = time.monotonic() + settings.lease_seconds
    backoff = db.Backoff()
    while True:
        try:
            return work()
        except TRANSIENT as exc:
            if not db.connection_lost() or time.monotonic() > deadline:
                raise
            beat.failed(f"database: {exc}")
            wait = backoff.failed()
            log.warning("database connection lost (%s); trying again in %.1f s", exc, wait)
            time.sleep(wait)


def _chunks(rows: list[SourceFile]) -> Iterator[list[SourceFile]]:
    """The claimed rows in chunks of at most CHUNK_BYTES of raw bytes (at least one file each):
    a chunk's files are all parsed before its transaction, so a batch of large traces must not
    be held in memory at once."""
    chunk: list[SourceFile] = []
    size = 0
    for row in rows:
        if chunk and size + row.size > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row.size
    if chunk:
        yield chunk


def _process_chunk(settings: Settings, rows: list[SourceFile], owner: str,
                   beat: heartbeat.Loop) -> dict[int, str]:
    copies = _while_connection_lost(settings, beat, partial(database_copies, settings, rows))
    parser_options = dfolder.options(settings)  # a validated model: made once, not per file

    def prepare(row: SourceFile) -> Work:
        work = _prepare(settings, row, copies, parser_options, packs)
        if isinstance(work.failure, TRANSIENT) and db.connection_lost():
            raise work.failure  # its bytes come from the database: read them once it is back
        return work

    with store.Packs(settings.raw_dir) as packs:
        works = [_while_connection_lost(settings, beat, partial(prepare, row)) for row in rows]
    todo = [w for w in works if w.wait is None and w.failure is None]

    try:
        _while_connection_lost(settings, beat, partial(commit_chunk, settings, todo, owner))
    except TRANSIENT as exc:  # rolled back: nothing of the batch was written
        for w in todo:
            w.state, w.failure = None, exc
    except Exception as exc:
        if len(todo) == 1:
            todo[0].state, todo[0].failure = None, exc
        else:
            log.warning("batch of %d failed as a whole; writing its files one by one",
                        len(todo))
            for w in todo:
                _commit_alone(settings, w, owner)
    waiting = [(w.row, w.wait) for w in works if w.wait is not None]
    if waiting:
        with contextlib.suppress(*TRANSIENT):  # else their leases expire: retried then
            _while_connection_lost(settings, beat, partial(_release_all, waiting, owner))
    retries = [(w.row, delay) for w in works if w.wait is None and w.failure is not None
               and (delay := _failed(settings, w, owner)) is not None]
    if retries:
        with contextlib.suppress(*TRANSIENT):  # else their leases expire: retried then
            _release_all(retries, owner)
    done = [w for w in works if w.state]
    for w in done:
        w.row.state = w.state
        _log_outcome(w, w.state)
    dispose.dispose_rows(settings, [w.row for w in done])  # it reads them afresh, under its lock
    return {w.row.id: w.state for w in done}  # type: ignore[misc]


def _release_all(rows: list[tuple[SourceFile, float]], owner: str) -> None:
    """Give back files to be tried again after so many seconds, in one transaction: a ``.D``
    folder's files wait for its writer together, a chunk that failed as a whole fails for
    all its files, and one by one each took the write lock."""
    with database.atomic():
        for row, retry_in in rows:
            ledger.release(row, owner, retry_in)


def _log_outcome(w: Work, state: str | None, reason: str | None = None) -> None:
    """One line per committed file, its facts as separate fields in the JSON log."""
    row, took = w.row, round(time.monotonic() - w.started, 3)
    path, file_id = row.path, row.id
    fields = {"outcome": state, "file_id": file_id, "path": path, "sha256": row.sha256,
              "duration_s": took, "format": None, "job": None}
    if state == CONTEXT:
        log.info("kept %s (file %d) as context of its instrument folder's injection",
                 path, file_id, extra=fields)
    elif state == INGESTED:
        fmt = fields["format"] = w.parsed.format if w.parsed is not None else None
        job = fields["job"] = w.touched[0].job_id if w.touched else None
        log.info("ingested %s (file %d, %s, job %s) in %.2f s", path, file_id, fmt, job, took,
                 extra=fields)
    else:
        why, line = (w.rejection.reason, w.rejection.line) if w.rejection else (reason, None)
        fields["reason"], fields["line"] = why, line
        log.warning("rejected %s (file %d): %s", path, file_id,
                    why if line is None else f"line {line}: {why}", extra=fields)


def _prepare(settings: Settings, row: SourceFile, copies: dict[str, bytes],
             parser_options: ParserOptions | None = None,
             packs: store.Packs | None = None) -> Work:
    """Read the stored bytes and parse, outside any transaction (the slow, pure part)."""
    work = Work(row)
    siblings = partial(raw_bytes, settings)
    try:
        if row.size > store.STREAM_BYTES:  # maybe mapped (``stored``)
            with stored(settings, row, copies) as data:
                work.parsed = dfolder.parse(settings, row, data, siblings, parser_options)
        else:  # nearly every file: its bytes, without a context to enter and leave
            work.parsed = dfolder.parse(settings, row, raw_bytes(settings, row, copies, packs),
                                        siblings, parser_options)
        parsed = (work.parsed.parsed if isinstance(work.parsed, dfolder.Folder)
                  else work.parsed)
        if isinstance(parsed, ParsedFile):
            work.prepared = _prepared(row, parsed)
    except dfolder.NotYet as wait:
        work.wait = wait.seconds
    except ParseError as exc:
        work.rejection = exc
    except Exception as exc:
        work.failure = exc
    return work


def _commit_alone(settings: Settings, work: Work, owner: str) -> None:
    try:
        _commit(settings, [work], owner)
    except Exception as exc:
        work.state, work.failure = None, exc


def commit_chunk(settings: Settings, works: list[Work], owner: str) -> None:
    """``_commit`` without a savepoint per file, or, when one of them must back off, again
    with them."""
    for w in works:
        w.wait = None  # what a failed try found is rolled back; the next try sees afresh
    try:
        _commit(settings, works, owner, savepoints=len(works) == 1)
    except _SavepointsNeeded:  # rolled back: again, each file in a savepoint of its own
        for w in works:
            w.wait = None
        _commit(settings, works, owner, savepoints=True)


class _SavepointsNeeded(Exception):
    """A file of a chunk written without savepoints must back off (a ``.D`` sibling pending):
    its rows cannot be rolled back alone, so the chunk is written again with savepoints."""


def _commit(settings: Settings, works: list[Work], owner: str, savepoints: bool = True) -> None:
    """Rows, final states and audit events of every file in ``works``: one transaction.

    Each file's rows are all or nothing: in a savepoint of its own, or, without ``savepoints``,
    because any file that fails fails the whole transaction (a savepoint per file costs two
    statements, each a round trip to a database server; the rare chunk that needs them is
    written again with them).
    """
    if not works:
        return
    assert savepoints or len(works) > 1, "a file alone: its failure must not commit its rows"
    # Final states, then counters, then events are written on the way out (innermost first),
    # all after the chain's lock taken here, as in every writer.
    with (paused(), database.atomic(), audit.held() as events, counters.held() as counts,
          ledger.finishing() as finishes):
        audit.lock_chain()  # before any row lock: one lock order for all writers (PostgreSQL)
        ours = ledger.owned([w.row.id for w in works], owner)
        known = Known(prepared={w.row.id: w.prepared for w in works
                                if w.prepared is not None})
        for w in works:
            w.state = None
            if w.row.id not in ours:
                continue  # the lease was lost (expired and taken): the other holder finishes it
            recorded, counted, finished = len(events), len(counts), len(finishes)
            if w.rejection is not None:
                exc = w.rejection
                ledger.mark_rejected(w.row, exc.reason, exc.line)
                w.state = REJECTED
                continue
            try:
                with database.atomic() if savepoints else contextlib.nullcontext():
                    if isinstance(w.parsed, dfolder.Evidence):
                        known.flush()  # it reads its folder's injection, maybe this chunk's
                        dfolder.write_evidence(w.row, w.parsed)
                    elif isinstance(w.parsed, dfolder.Folder):
                        w.touched = _write(w.row, w.parsed.parsed, settings, known)
                        known.flush()  # its spectra, links and facts need the injection's id
                        dfolder.write_folder(w.row, w.parsed)
                    else:
                        assert w.parsed is not None
                        w.touched = _write(w.row, w.parsed, settings, known)
                    if savepoints:
                        known.flush()  # inside its savepoint: all or nothing with the file
                w.state = (w.parsed.state if isinstance(w.parsed, dfolder.Evidence)
                           else INGESTED)
            except dfolder.NotYet as wait:
                if not savepoints:
                    raise _SavepointsNeeded from wait
                w.wait = wait.seconds
                # What it looked up or created was rolled back with it; the loose jobs of
                # the files still finished (their final states held) are kept.
                kept = {f[3].id for f in finishes}
                known = Known(loose=[e for e in known.loose if e[3] in kept],
                              prepared=known.prepared)
                del events[recorded:]  # and so were its events, counts and final state
                del counts[counted:]
                del finishes[finished:]
            except TRANSIENT:
                raise
            except Exception as exc:
                if len(works) > 1:
                    raise  # written again alone, where it fails on its own
                known.written.clear()  # rolled back with its savepoint
                w.failure = exc
                del events[recorded:]
                del counts[counted:]
                del finishes[finished:]
        known.flush()
        _recompute([w for w in works if w.state == INGESTED], settings, known.written)


def _recompute(works: list[Work], settings: Settings,
               written: dict[int, list[StoredPeak]] | None = None) -> None:
    """Results of every sample and job the batch touched, each computed once (``written``:
    ``Known.written``)."""
    jobs: dict[int, tuple[Job, dict[int, Sample]]] = {}
    for w in works:
        for sample in w.touched:
            job = sample.job
            jobs.setdefault(job.id, (job, {}))[1][sample.id] = sample
    cache: dict[int, Tables] = {}
    touched = [s for _, samples in jobs.values() for s in samples.values()]
    read_tables(touched, settings.methods, cache, written)
    with namesakes_read_once(touched), batched(touched), purity.worked_out_once():
        for job, samples in jobs.values():
            for sample in samples.values():
                recompute_sample(sample, settings.methods, cache)
            job_results.recompute_job(job, samples.values(), settings.methods, cache)


def _failed(settings: Settings, work: Work, owner: str) -> float | None:
    """Transient failures (database busy, disk full) come back after a backoff; anything else is
    retried the same way in case it was a fluke, then rejected so it cannot loop for ever.
    Returns the backoff to give the file back with (``_release_all``), None once rejected."""
    row, exc = work.row, work.failure
    if not isinstance(exc, TRANSIENT):
        log.error("unexpected failure on %s (attempt %d)", row.path, row.attempts,
                  exc_info=exc)
        if row.attempts >= settings.max_attempts:
            reason = (f"failed {row.attempts} times with an internal error "
                      f"({type(exc).__name__}: {exc}); report it, then retry the file")
            with contextlib.suppress(*TRANSIENT):
                if ledger.reject(row, owner, reason, None):
                    _log_outcome(work, REJECTED, reason)
                    dispose.dispose_row(settings, SourceFile.get_by_id(row.id))
            return None
    delay = min(300.0, 2.0 ** min(row.attempts, 8))
    log.warning("%s failed (attempt %d), retry in %.0fs: %s", row.path, row.attempts, delay, exc)
    return delay


_PEAK_COLUMNS = ("injection_id", "signal", "number", "rt_min", "area", "area_pct", "height",
                 "begin_min", "end_min", "width_min", "peak_type", "name")
_SAMPLE_COLUMNS = ("job_id", "sample_id", "analyte", "identity", "kind", "level")
_INJECTION_COLUMNS = ("sample_id", "source_file_id", "number", "acquired_at", "dilution_factor",
                      "superseded")
# A chromatogram's columns in the rows digest (digest.COLUMNS), after its id and injection's.
_TRACE_DIGESTED = ("signal", "detector", "wavelength_nm", "points", "time_unit",
                   "value_unit", "t_start", "t_end", "data")


def _write(row: SourceFile, parsed: ParsedFile, settings: Settings,
           known: Known) -> list[Sample]:
    """Every row derived from one file and its final state; returns the samples it touched."""
    ready = known.prepared.get(row.id) or _prepared(row, parsed)
    job = _job_for(row, parsed, known, ready.folder)
    sample, number, created = _sample_for(job, row, parsed, known, ready.named)
    in_folder = dfolder.member(row.path) is not None
    if in_folder or row.previous_id is not None:
        known.flush()  # both read the injections written so far
    dfolder.settle_folder(row, settings.methods)
    # A new sample under a name others already print: their results gain the flag too.
    touched = [sample, *(known.namesakes(sample) if created else ()),
               *_supersede_previous_revision(row)]
    peaks = ready.peaks
    known.injections.append(Pending(
        sample, row.id, (number, parsed.acquired_at, parsed.dilution_factor), peaks,
        ready.tails, ready.stored,
        [signal for signal in parsed.signals if signal.trace is not None],
        # A .D folder's writer stores its spectra and peak details itself (write_folder).
        parsed if not in_folder and ready.extras else None))
    ledger.mark_ingested(row, parsed.format, parsed.parser_version, job.id,
                         encoding=parsed.encoding, job=job.key, sample=sample.sample_id,
                         injection=number, peaks=len(peaks),
                         traces=sum(1 for s in parsed.signals if s.trace is not None),
                         **({"flags": parsed.flags} if parsed.flags else {}))
    return touched


@dataclass(frozen=True)
class Prepared:
    """What ``_write`` needs of a parsed file that depends on the file alone: made with the
    parse, outside any transaction, so the write lock is not held for it."""

    peaks: list[tuple[object, ...]]  # its peak rows as ``Known.flush`` inserts them
    tails: list[bytes] | None  # the end of each one's digest line (``digest.tail``), or None
    stored: list[StoredPeak] | None  # those rows as read back (``inputs.stored_peaks``)
    folder: str  # dfolder.job_folder
    named: Named  # sample_named
    extras: bool  # extras.wanted


def _prepared(row: SourceFile, parsed: ParsedFile) -> Prepared:
    peaks = [(signal.name, p.number, p.rt_min, p.area, p.area_pct, p.height, p.begin_min,
              p.end_min, p.width_min, p.peak_type, p.name)
             for signal in parsed.signals for p in signal.peaks or ()]
    tails = [digest.tail("peak", peak) for peak in peaks]
    return Prepared(peaks, None if None in tails else cast(list[bytes], tails),
                    stored_peaks(peaks), dfolder.job_folder(row.path), sample_named(row, parsed),
                    extras.wanted(parsed))


def pack(times: object, values: object) -> bytearray:
    """Little-endian float64 times then values: portable across machines and databases.

    Written straight into one buffer (no copy of the arrays, no concatenation): the points of
    a long trace are held once more here, not three times."""
    t, v = _doubles(times), _doubles(values)
    if sys.byteorder != "little":
        t, v = array("d", t), array("d", v)
        t.byteswap()
        v.byteswap()
    size = len(t) * 8
    out = bytearray(4 + 2 * size)
    struct.pack_into("<I", out, 0, len(t))
    out[4:4 + size] = memoryview(t).cast("B")
    out[4 + size:] = memoryview(v).cast("B")
    return out


def _doubles(points: object) -> array:
    if isinstance(points, array) and points.typecode == "d":
        return points
    return array("d", points)  # type: ignore[call-overload]


@dataclass
class Pending:
    """One file's injection row (without its id), peak rows (without their injection's id)
    and signals with a trace, until ``Known.flush`` writes them, with its extras (spectra,
    peak details) when it has any."""

    sample: Sample  # its id given by ``Known.flush`` when it is new
    file_id: int
    injection: tuple[object, ...]  # number, acquired_at, dilution_factor
    peaks: list[tuple[object, ...]]
    tails: list[bytes] | None  # the ends of the peaks' digest lines (``_prepared``)
    stored: list[StoredPeak] | None  # the peaks as read back (``_prepared``)
    traces: list[Signal]
    extras: ParsedFile | None = None


@dataclass
class Known:
    """Jobs and samples a batch has already looked up or created, inside its transaction: the
    files of a burst share a few folders and samples, and each is read once per batch."""

    jobs: dict[str, Job] = field(default_factory=dict)
    samples: dict[tuple[int, str, str, str], Sample] = field(default_factory=dict)
    # The same samples by (job, printed name, analyte): a new sample's namesakes are looked
    # up for each one created, and a scan of every sample the batch knows was one per file.
    named: dict[tuple[int, str, str], list[Sample]] = field(default_factory=dict)
    loaded: set[int] = field(default_factory=set)  # jobs whose every sample is in ``samples``
    injections: list[Pending] = field(default_factory=list)  # not written yet: see ``flush``
    created: list[Sample] = field(default_factory=list)  # new samples, not written yet either
    # Loose files given a job in this batch: (origin, first_seen, job, file id). Their final
    # states, which name the job, are written at the batch's end (ledger.finishing), so the
    # database cannot tell the next loose file which job they share.
    loose: list[tuple[str, datetime, Job, int]] = field(default_factory=list)
    prepared: dict[int, Prepared] = field(default_factory=dict)  # by file id: ``_prepared``
    # The peaks of the injections ``flush`` inserted, by injection id, as they read back: the
    # recompute that follows takes them from here rather than reading them again. Emptied when
    # a file's savepoint rolls back (SQLite may give its ids to the next rows).
    written: dict[int, list[StoredPeak]] = field(default_factory=dict)

    def flush(self) -> None:
        """Write the injections held so far with their peaks and traces: a statement for all
        of them rather than two per file (each a round trip to a database server). Held only
        within a file's savepoint, or until something reads injections (``_write``, the
        recompute), so every read sees them all."""
        created, self.created = self.created, []
        if created:  # before their injections, which need their ids
            for sample, sample_id in zip(created, sql.insert(Sample, _SAMPLE_COLUMNS, [
                    (sample.job_id, sample.sample_id, sample.analyte, sample.identity,
                     sample.kind, sample.level) for sample in created], returning=True),
                                         strict=True):
                sample.id = sample_id
        pending, self.injections = self.injections, []
        if not pending:
            return
        ids = sql.insert(Injection, _INJECTION_COLUMNS, [
            (p.sample.id, p.file_id, *p.injection, False) for p in pending], returning=True)
        peak_ids = iter(sql.insert(Peak, _PEAK_COLUMNS, [
            (injection_id, *peak) for injection_id, p in zip(ids, pending, strict=True)
            for peak in p.peaks], returning=True))
        for injection_id, p in zip(ids, pending, strict=True):
            # Each file's rows digested from the values just bound (its ``ingested`` event
            # carries the digest), rather than read back under the write lock.
            its_ids = [next(peak_ids) for _ in p.peaks]
            traces = []
            for signal in p.traces:
                tr = signal.trace
                assert tr is not None
                values = {"injection": injection_id, "signal": signal.name,
                          "detector": signal.detector, "wavelength_nm": signal.wavelength_nm,
                          "points": tr.points, "time_unit": tr.time_unit,
                          "value_unit": tr.value_unit, "t_start": tr.times[0],
                          "t_end": tr.times[-1], "data": pack(tr.times, tr.values)}
                trace = Chromatogram.create(**values)
                traces.append((trace.id, injection_id, digest.tail(
                    "chromatogram", [values[c] for c in _TRACE_DIGESTED])))
            rows = None
            if p.tails is not None and None not in (end for *_, end in traces):
                rows = digest.file_written(
                    (injection_id, p.sample.id, p.file_id, *p.injection),
                    [(i, injection_id, end) for i, end in zip(its_ids, p.tails, strict=True)],
                    cast(list[tuple[int, int, bytes]], traces))
            if rows is not None:
                ledger.rows_written(p.file_id, rows)
            if p.stored is not None:
                self.written[injection_id] = p.stored
            if p.extras is not None:  # after its peaks: peak details are matched to them
                extras.store(injection_id, p.file_id, p.extras)

    def load(self, job: Job) -> None:
        """Every sample of ``job``, read once: a chunk asked for each of its files' samples,
        a round trip each to a database server. Its own writes keep them complete after (the
        chain's lock serialises ingest transactions, so no other one adds any meanwhile)."""
        if job.id in self.loaded:
            return
        for id_, sample_id, analyte, identity, kind, level in sql.rows(_JOB_SAMPLES_SQL,
                                                                         (job.id,)):
            self.add((job.id, sample_id, analyte, identity), Sample(
                id=id_, job=job, sample_id=sample_id, analyte=analyte, identity=identity,
                kind=kind, level=level))
        self.loaded.add(job.id)

    def add(self, key: tuple[int, str, str, str], sample: Sample) -> None:
        self.samples[key] = sample
        self.named.setdefault(key[:3], []).append(sample)

    def namesakes(self, sample: Sample) -> list[Sample]:
        """results.sample.namesakes, from the loaded samples of its job (those created in
        this batch, without an id until ``flush``, last and in the order made, as their ids
        will be)."""
        same = self.named.get((sample.job_id, sample.sample_id, sample.analyte), ())
        return sorted((s for s in same if s is not sample),
                      key=lambda s: (s.id is None, s.id or 0))


def _job_for(row: SourceFile, parsed: ParsedFile, known: Known, folder: str) -> Job:
    """The export folder a file was dropped in is its Job (``folder``: dfolder.job_folder);
    loose files dropped together share one."""
    if folder != ".":
        key = f"{row.origin}:{folder}"
        job = known.jobs.get(key)
        if job is None:
            job, created = _folder_job(key, PurePosixPath(folder).name, parsed)
        else:
            created = False
    else:
        # By the first_seen index, newest first, the origin and path checked here: asked of
        # the database, the planner takes the origin index and reads every file of the node.
        window = (SourceFile.select(SourceFile.job, SourceFile.origin, SourceFile.path,
                                    SourceFile.first_seen)
                  .where(SourceFile.job.is_null(False),
                         SourceFile.first_seen.between(row.first_seen - LOOSE_WINDOW,
                                                       row.first_seen + LOOSE_WINDOW))
                  .order_by(SourceFile.first_seen.desc()))
        stored = next((r for r in window.iterator()
                       if r.origin == row.origin and "/" not in r.path), None)
        near = [(seen, job) for origin, seen, job, _ in known.loose if origin == row.origin
                and abs(seen - row.first_seen) <= LOOSE_WINDOW]
        if stored is not None:
            near.append((stored.first_seen, stored.job))
        if near:
            job, created = max(near, key=lambda n: n[0])[1], False
        else:
            stamp = row.first_seen.strftime("%Y-%m-%d %H:%M:%S")
            job, created = Job.create(key=f"{row.origin}:loose:{stamp}:{row.id}",
                                      name=f"loose files {stamp}", instrument=parsed.instrument,
                                      method=parsed.method, acquired_at=parsed.acquired_at), True
    if not created and job.method is None and parsed.method:
        Job.update(method=parsed.method, instrument=parsed.instrument).where(
            Job.id == job.id).execute()
        job.method, job.instrument = parsed.method, parsed.instrument
    if folder != ".":
        known.jobs[job.key] = job
    else:
        known.loose.append((row.origin, row.first_seen, job, row.id))
    return job


def _folder_job(key: str, name: str, parsed: ParsedFile) -> tuple[Job, bool]:
    """The Job of ``key``, created (named ``name``, described by ``parsed``) when there is none
    yet, and whether it was; in plain SQL, as every chunk asks it for each of its folders."""
    found = sql.rows(_JOB_SQL, (key,))
    if not found:
        values = (key, name, parsed.instrument, parsed.method, parsed.acquired_at, utcnow())
        # Another writer's row of the same key (none in an ingest transaction, which holds the
        # chain's lock) leaves this one inserting nothing, and that row is read instead.
        inserted = sql.rows(_NEW_JOB_SQL, values)
        if inserted:
            return _as_read(Job(id=inserted[0][0], **dict(zip(_JOB_COLUMNS, values,
                                                                strict=True)))), True
        found = sql.rows(_JOB_SQL, (key,))
    job = Job(**dict(zip(("id", *_JOB_COLUMNS), found[0], strict=True)))
    job.acquired_at = Job.acquired_at.python_value(job.acquired_at)  # as the ORM reads them
    job.created_at = Job.created_at.python_value(job.created_at)
    return _as_read(job), False


def _as_read(job: Job) -> Job:
    """``job`` as the ORM hands a row over: nothing in it waiting to be saved."""
    job._dirty.clear()
    return job


_JOB_COLUMNS = ("key", "name", "instrument", "method", "acquired_at", "created_at")
_JOB_SQL = f"SELECT id, {', '.join(_JOB_COLUMNS)} FROM {sql.table(Job)} WHERE key = ?"
_NEW_JOB_SQL = (f"INSERT INTO {sql.table(Job)} ({', '.join(_JOB_COLUMNS)}) VALUES "
                f"({sql.marks(len(_JOB_COLUMNS))}) ON CONFLICT (key) DO NOTHING RETURNING id")
_JOB_SAMPLES_SQL = (f"SELECT id, sample_id, analyte, identity, kind, level FROM "
                    f"{sql.table(Sample)} WHERE job_id = ?")


@dataclass(frozen=True)
class Named:
    """What a file says of its sample (``sample_named``)."""

    sample_id: str
    analyte: str
    identity: str  # sample_identity
    kind: str
    level: float | None
    number: int  # its injection's


def sample_named(row: SourceFile, parsed: ParsedFile) -> Named:
    """The sample a file is an injection of, as its name and contents say (``_sample_for``)."""
    ident = (identify(parsed.sample_name, printed=True) if parsed.sample_name
             else identify(dfolder.fallback_name(row.path)))
    kind = parsed.sample_kind or ident.kind
    level = parsed.level if parsed.level is not None else ident.level
    return Named(ident.sample_id, ident.analyte,
                 sample_identity(kind, level, parsed.vial, parsed.level_label), kind, level,
                 parsed.injection or ident.injection)


def _sample_for(job: Job, row: SourceFile, parsed: ParsedFile, known: Known,
                named: Named) -> tuple[Sample, int, bool]:
    """The Sample this file is an injection of: its printed name *and* what the file says the
    sample is (kind, level, vial; see ``sample_identity``), so files that print one name but
    contradict each other become separate samples, flagged on their results, never averaged."""
    key = (job.id, named.sample_id, named.analyte, named.identity)
    kind, level, number = named.kind, named.level, named.number
    known.load(job)
    sample = known.samples.get(key)
    created = sample is None
    if sample is None:  # inserted with its injection (``Known.flush``), with the chunk's others
        sample = Sample(id=None, job=job, sample_id=named.sample_id,
                        analyte=named.analyte, identity=key[3], kind=kind, level=level)
        known.add(key, sample)
        known.created.append(sample)
    return sample, number, created


def _supersede_previous_revision(row: SourceFile) -> list[Sample]:
    """A new revision of a path makes the old revision's injections (and so results) history;
    returns the samples whose results must be computed again."""
    if row.previous_id is None:
        return []
    old = list(Injection.select().where(Injection.source_file == row.previous_id,
                                        Injection.superseded == False))  # noqa: E712
    if not old:
        return []
    Injection.update(superseded=True).where(Injection.id.in_([i.id for i in old])).execute()
    audit.record("revision_superseded", row.sha256, row.id, previous=row.previous_id,
                 injections=[i.id for i in old])
    return list({i.sample_id: i.sample for i in old}.values())
