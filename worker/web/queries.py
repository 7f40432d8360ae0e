"""What the pages, the API and ``accu-ingest show``/``jobs`` read, as plain JSON-ready dicts.

Every query here reads; none writes (invariant 10). Lists page by key (``paging``) on an index,
so a page costs the same at 100,000 files as at 100.
"""

from __future__ import annotations

import json
import re
import struct
import sys
from array import array
from datetime import datetime, timedelta
from typing import Any

from peewee import fn

from worker import __version__
from worker.chemistry import purity
from worker.chemistry.naturalsort import natural_key
from worker.record import audit, counters, sql, store
from worker.record.canaries import not_canary_file, not_canary_job
from worker.record.models import (
    INGESTED,
    PROCESSING,
    QUEUED,
    REJECTED,
    STATES,
    AuditEvent,
    Chromatogram,
    Injection,
    Job,
    Peak,
    RawBlob,
    Result,
    Sample,
    SourceFile,
    utcnow,
)
from worker.results import kinds
from worker.results.inputs import StoredPeak, purity_signal
from worker.settings import Settings
from worker.web.paging import BadQuery, Page, page

DUPLICATE = "duplicate"  # not a ledger state: a copy whose content the ledger already had
FILE_STATES = (*STATES, DUPLICATE)  # every ledger state (a new one is listed by itself)
RECENT_REJECTIONS = 10
SHA_RE = re.compile(r"[0-9a-fA-F]{64}")


class NotFound(LookupError):
    """No such file, job, sample or injection; the message names what was asked for."""


def iso(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.isoformat(timespec="seconds") + "Z"


def retry_command(file_id: int) -> str:
    """What the operator runs: a retry can change results, so it says why (``--reason``)."""
    return f'accu-ingest retry {file_id} --reason "…"'


# ---- overview -----------------------------------------------------------------------------

def throughput(hours: float) -> dict[str, int]:
    """Files that became final in the last ``hours``, canary files included (a few an hour):
    read from the (finished_at, state) index alone, never the rows."""
    since = utcnow() - timedelta(hours=hours)
    out = {INGESTED: 0, REJECTED: 0}
    # "state || ''": grouped by the state index, SQLite would walk every row of the ledger
    # rather than the time range.
    out.update(dict(sql.rows(f"SELECT state || '', COUNT(*) FROM {sql.table(SourceFile)} "
                             "WHERE finished_at >= ? GROUP BY 1", (since,))))
    return out


def recent_rejections(limit: int = RECENT_REJECTIONS) -> list[dict[str, Any]]:
    rows = (SourceFile.select(SourceFile.id, SourceFile.path, SourceFile.error,
                              SourceFile.error_line, SourceFile.finished_at, SourceFile.format)
            .where(SourceFile.state == REJECTED, not_canary_file())
            .order_by(SourceFile.id.desc()).limit(limit))
    return [{"id": r.id, "path": r.path, "reason": r.error, "line": r.error_line,
             "at": iso(r.finished_at), "retry": retry_command(r.id)} for r in rows]


def overview(health: dict[str, str | None], queue_depth: int | None) -> dict[str, Any]:
    """The front page: health in words, counts, backlog, throughput, the last rejections.

    Counts come from the event counters, as /metrics reads them, not from counting the ledger:
    the page costs the same at 100,000 files as at 100."""
    from worker.runtime import metrics
    from worker.runtime.health import last_ingest, oldest_backlog
    counted = counters.read()
    by_state = metrics.counts_by_state(counted)
    return {
        "ready": not any(health.values()),
        "health": [{"check": name, "ok": problem is None, "problem": problem}
                   for name, problem in health.items()],
        "files": {**by_state,
                  DUPLICATE: int(counted.get(counters.DUPLICATE, {}).get("", 0))},
        "backlog": by_state[QUEUED] + by_state[PROCESSING],
        "oldest_backlog": iso(oldest_backlog()),
        "queue_depth": queue_depth,
        "last_ingest": iso(last_ingest()),
        "throughput": {"last_hour": throughput(1), "last_day": throughput(24)},
        "recent_rejections": recent_rejections(),
        "version": __version__,
    }


# ---- files --------------------------------------------------------------------------------

def _file_item(r: SourceFile) -> dict[str, Any]:
    return {"id": r.id, "path": r.path, "name": r.name, "state": r.state, "format": r.format,
            "size": r.size, "first_seen": iso(r.first_seen), "finished_at": iso(r.finished_at),
            "job_id": r.job_id, "reason": r.error, "line": r.error_line,
            "sha256": r.sha256}


def files(state: str | None = None, name: str | None = None, fmt: str | None = None,
          since: datetime | None = None, until: datetime | None = None,
          before: int | None = None, size: int = 50) -> Page:
    """Ledger rows, newest first, filtered; ``state=duplicate`` lists the duplicate copies."""
    if state and state not in FILE_STATES:
        raise BadQuery(f"state {state!r}: expected one of {', '.join(FILE_STATES)}")
    if state == DUPLICATE:
        return duplicate_copies(name=name, since=since, until=until, before=before, size=size)
    query = SourceFile.select().where(not_canary_file())
    if state:
        query = query.where(SourceFile.state == state)
    if name:
        query = query.where(SourceFile.path.contains(name))
    if fmt:
        query = query.where(SourceFile.format == fmt)
    if since:
        query = query.where(SourceFile.first_seen >= since)
    if until:
        query = query.where(SourceFile.first_seen < until)
    if before:
        query = query.where(SourceFile.id < before)
    rows = query.order_by(SourceFile.id.desc()).limit(size + 1)
    return page([_file_item(r) for r in rows], size)


def duplicate_copies(original: int | None = None, name: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     before: int | None = None, size: int = 50) -> Page:
    """Each copy of content the ledger already had (its ``duplicate`` event), newest first;
    the cursor is the event's number."""
    query = AuditEvent.select().where(AuditEvent.event == "duplicate")
    if original is not None:
        query = query.where(AuditEvent.source_file_id == original)
    if since:
        query = query.where(AuditEvent.at >= since.isoformat())
    if until:
        query = query.where(AuditEvent.at < until.isoformat())
    if name:
        query = query.where(AuditEvent.details.contains(name))
    if before:
        query = query.where(AuditEvent.seq < before)
    items = []
    for ev in query.order_by(AuditEvent.seq.desc()).limit(size + 1):
        d = json.loads(ev.details)
        items.append({"seq": ev.seq, "id": ev.source_file_id, "path": d.get("path"),
                      "original_path": d.get("first_path"), "state": DUPLICATE,
                      "original_state": d.get("state"), "at": ev.at, "sha256": ev.sha256})
    return page(items, size, key="seq")


def formats() -> list[str]:
    """The formats in the ledger, for the Files filter."""
    rows = (SourceFile.select(SourceFile.format).where(SourceFile.format.is_null(False))
            .distinct())
    return sorted(r.format for r in rows)


def find_file(ref: str) -> SourceFile:
    """A file by ledger id, SHA-256 (or a unique prefix of 8+ hex digits), path or name."""
    ref = ref.strip()
    if ref.isdigit():
        row = SourceFile.get_or_none(SourceFile.id == int(ref))
        if row is not None:
            return row
    if SHA_RE.fullmatch(ref):
        row = SourceFile.get_or_none(SourceFile.sha256 == ref.lower())
        if row is not None:
            return row
    elif re.fullmatch(r"[0-9a-fA-F]{8,63}", ref):
        found = list(SourceFile.select().where(SourceFile.sha256.startswith(ref.lower()))
                     .limit(5))
        if len(found) == 1:
            return found[0]
    for column in (SourceFile.path, SourceFile.name):
        found = list(SourceFile.select().where(column == ref).order_by(SourceFile.id.desc())
                     .limit(11))
        if len(found) == 1:
            return found[0]
        if found:
            ids = ", ".join(str(r.id) for r in found[:10])
            raise NotFound(f"{len(found) if len(found) <= 10 else 'more than 10'} files match "
                           f"{ref!r}: give the id, one of {ids}")
    raise NotFound(f"no file with id, SHA-256, path or name {ref!r} (see `accu-ingest "
                   "status` or the Files page)")


def _chain_checks(events: list[AuditEvent], key: bytes | None) -> dict[int, str | None]:
    """Each event's link to the event before it and its own hash, checked: None when it holds,
    else what is wrong. The whole trail is checked by ``audit verify``; this checks one file's
    events where they sit in it."""
    if not events:
        return {}
    # By the event index: MIN(seq) alone, SQLite walks the seq index until the event comes,
    # i.e. the whole trail when it was never keyed ("+ 0" keeps it off that index).
    keyed_since = (AuditEvent.select(fn.MIN(AuditEvent.seq + 0))
                   .where(AuditEvent.event == audit.KEYED).scalar())
    before = {e.seq: e.hash for e in AuditEvent.select(AuditEvent.seq, AuditEvent.hash).where(
        AuditEvent.seq.in_([ev.seq - 1 for ev in events]))}
    out: dict[int, str | None] = {}
    for ev in events:
        problem = None
        use = key if keyed_since is not None and ev.seq >= keyed_since else None
        if ev.seq > 1 and before.get(ev.seq - 1) != ev.prev_hash:
            problem = "does not link to the event before it"
        elif use is None and keyed_since is not None and ev.seq >= keyed_since:
            problem = "keyed, and this process has no key to check it with"
        elif audit._digest(ev.prev_hash, ev.seq, ev.at, ev.host, ev.pid, ev.version, ev.event,
                           ev.sha256, ev.source_file_id, ev.details, use) != ev.hash:
            problem = "content changed after it was written"
        out[ev.seq] = problem
    return out


def _event_item(ev: AuditEvent, check: str | bool | None = False) -> dict[str, Any]:
    item = {"seq": ev.seq, "at": ev.at, "event": ev.event, "file_id": ev.source_file_id,
            "sha256": ev.sha256, "host": ev.host, "pid": ev.pid, "version": ev.version,
            "details": json.loads(ev.details), "hash": ev.hash}
    if check is not False:
        item["chain"] = "ok" if check is None else check
    return item


def raw_location(settings: Settings, row: SourceFile) -> dict[str, Any]:
    """Where the file's original bytes are kept: its pack and offset, and the database copy."""
    if row.raw_pack:
        where = str(settings.raw_dir / row.raw_pack)
    elif row.raw_pack is None and row.raw_offset is None and store.has(settings.raw_dir,
                                                                        row.sha256):
        where = str(store.path_for(settings.raw_dir, row.sha256))
    else:
        where = None
    in_db = RawBlob.select(RawBlob.sha256).where(RawBlob.sha256 == row.sha256).exists()
    return {"file": where, "offset": row.raw_offset, "in_database": in_db}


def rehash(settings: Settings, row: SourceFile) -> dict[str, Any]:
    """Read the stored bytes again and hash them: does the evidence still match the ledger?"""
    try:
        data = store.get(settings.raw_dir, row.sha256, row.raw_pack, row.raw_offset)
        return {"ok": True, "size": len(data), "sha256": store.sha256_of(data),
                "message": f"the stored {len(data):,} bytes hash to the ledger's SHA-256"}
    except store.StoreError as exc:
        return {"ok": False, "message": str(exc)}
    except FileNotFoundError:
        blob = RawBlob.get_or_none(RawBlob.sha256 == row.sha256)
        if blob is None:
            return {"ok": False, "message": "no stored copy on this machine or in the database"
                    + (" (rejected before it was stored: over the size limit)"
                       if row.raw_pack is None else "")}
        digest = store.sha256_of(bytes(blob.data))
        return {"ok": digest == row.sha256, "size": len(blob.data), "sha256": digest,
                "message": "the database's copy " + ("hashes to the ledger's SHA-256"
                                                      if digest == row.sha256
                                                      else "does NOT match the ledger")}


def file_story(settings: Settings, row: SourceFile, key: bytes | None,
               with_rehash: bool = False) -> dict[str, Any]:
    """One file's whole story: ledger row, audit events (chain-checked), raw bytes, injections
    and results, duplicates that pointed at it, revisions, its reason when rejected."""
    events = list(AuditEvent.select().where(AuditEvent.source_file_id == row.id)
                  .order_by(AuditEvent.seq))
    checks = _chain_checks(events, key)
    injections = []
    for inj in (Injection.select(Injection, Sample).join(Sample)
                .where(Injection.source_file == row.id).order_by(Injection.id)):
        injections.append({
            "id": inj.id, "number": inj.number, "superseded": inj.superseded,
            "sample_id": inj.sample_id, "sample": inj.sample.sample_id,
            "sample_kind": inj.sample.kind, "job_id": inj.sample.job_id,
            "peaks": Peak.select().where(Peak.injection == inj.id).count(),
            "signals": [c.signal for c in Chromatogram.select(Chromatogram.signal)
                        .where(Chromatogram.injection == inj.id).order_by(Chromatogram.id)]})
    sample_ids = list({i["sample_id"] for i in injections})
    results = [_result_item(r) for r in Result.select().where(
        Result.sample.in_(sample_ids), Result.superseded == False)  # noqa: E712
        .order_by(Result.id)] if sample_ids else []
    later = (SourceFile.select(SourceFile.id).where(
        SourceFile.previous == row.id).order_by(SourceFile.id).first())
    moved = [e for e in events if e.event == "moved"]
    story = {
        "file": {**_file_item(row), "origin": row.origin, "attempts": row.attempts,
                 "parser_version": row.parser_version, "disposed": row.disposed,
                 "mtime_ns": row.mtime_ns},
        "job": _job_brief(row.job_id),
        "rejected": ({"reason": row.error, "line": row.error_line,
                      "retry": retry_command(row.id)} if row.state == REJECTED else None),
        "raw": raw_location(settings, row),
        "rehash": rehash(settings, row) if with_rehash else None,
        "now_at": json.loads(moved[-1].details).get("to") if moved else None,
        "events": [_event_item(e, checks.get(e.seq)) for e in events],
        "chain_ok": all(v is None for v in checks.values()),
        "injections": injections,
        "results": results,
        "duplicates": duplicate_copies(original=row.id, size=100).items,
        "previous_revision": row.previous_id,
        "next_revision": later.id if later else None,
    }
    return story


def _job_brief(job_id: int | None) -> dict[str, Any] | None:
    if job_id is None:
        return None
    job = Job.get_or_none(Job.id == job_id)
    return None if job is None else {"id": job.id, "name": job.name, "key": job.key}


# ---- jobs, samples, injections ------------------------------------------------------------

def jobs(before: int | None = None, size: int = 50, name: str | None = None) -> Page:
    query = Job.select().where(not_canary_job())
    if name:
        query = query.where(Job.name.contains(name))
    if before:
        query = query.where(Job.id < before)
    rows = list(query.order_by(Job.id.desc()).limit(size + 1))
    ids = [j.id for j in rows]
    samples = dict(Sample.select(Sample.job, fn.COUNT(Sample.id)).where(Sample.job.in_(ids))
                   .group_by(Sample.job).tuples()) if ids else {}
    nfiles = dict(SourceFile.select(SourceFile.job, fn.COUNT(SourceFile.id))
                  .where(SourceFile.job.in_(ids)).group_by(SourceFile.job).tuples()) if ids else {}
    return page([{"id": j.id, "name": j.name, "key": j.key, "instrument": j.instrument,
                  "method": j.method, "acquired_at": iso(j.acquired_at),
                  "created_at": iso(j.created_at), "samples": samples.get(j.id, 0),
                  "files": nfiles.get(j.id, 0)} for j in rows], size)


def _result_item(r: Result) -> dict[str, Any]:
    kind = kinds.get(r.kind)
    inputs = json.loads(r.inputs)
    return {"id": r.id, "kind": r.kind, "analyte": r.analyte, "value": r.value, "text": r.text,
            "unit": r.unit, "digits": kind.digits if kind else 4,
            "detail": kind.detail(inputs) if kind and kind.detail else "",
            "n": len(inputs["injections"]) if isinstance(inputs.get("injections"), list)
            else None,
            "flags": json.loads(r.flags), "trace": json.loads(r.trace), "inputs": inputs,
            "calc_version": r.calc_version, "computed_at": iso(r.computed_at),
            "superseded": r.superseded, "sample_id": r.sample_id,
            "injection_id": r.injection_id}


def _sorted_results(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda x: (natural_key(x["analyte"]), kinds.rank(x["kind"]),
                                       x["injection_id"] or 0))


def job(job_id: int) -> dict[str, Any]:
    j = Job.get_or_none(Job.id == job_id)
    if j is None:
        raise NotFound(f"no job {job_id}")
    samples = sorted(Sample.select().where(Sample.job == j.id),
                     key=lambda s: (natural_key(s.sample_id), s.identity))
    counts = dict(Injection.select(Injection.sample, fn.COUNT(Injection.id))
                  .where(Injection.sample.in_([s.id for s in samples]),
                         Injection.superseded == False)  # noqa: E712
                  .group_by(Injection.sample).tuples()) if samples else {}
    job_results = _sorted_results([_result_item(r) for r in Result.select().where(
        Result.job == j.id, Result.sample.is_null(), Result.superseded == False)])  # noqa: E712
    from worker.results.view import calibration_report
    return {"job": {"id": j.id, "name": j.name, "key": j.key, "instrument": j.instrument,
                    "method": j.method, "acquired_at": iso(j.acquired_at),
                    "created_at": iso(j.created_at)},
            "samples": [{"id": s.id, "sample_id": s.sample_id, "kind": s.kind,
                         "analyte": s.analyte, "level": s.level, "identity": s.identity,
                         "injections": counts.get(s.id, 0)} for s in samples],
            "results": job_results,
            "calibration": calibration_report(j)["curves"],
            "files": [{"id": f.id, "path": f.path, "state": f.state} for f in
                      SourceFile.select(SourceFile.id, SourceFile.path, SourceFile.state)
                      .where(SourceFile.job == j.id).order_by(SourceFile.id).limit(500)]}


def sample(sample_id: int) -> dict[str, Any]:
    s = Sample.get_or_none(Sample.id == sample_id)
    if s is None:
        raise NotFound(f"no sample {sample_id}")
    injections = [{"id": i.id, "number": i.number, "superseded": i.superseded,
                   "acquired_at": iso(i.acquired_at), "file_id": i.source_file_id,
                   "file": i.source_file.path, "dilution_factor": i.dilution_factor}
                  for i in Injection.select(Injection, SourceFile).join(SourceFile)
                  .where(Injection.sample == s.id).order_by(Injection.number, Injection.id)]
    results = _sorted_results([_result_item(r) for r in Result.select().where(
        Result.sample == s.id, Result.superseded == False)])  # noqa: E712
    return {"sample": {"id": s.id, "sample_id": s.sample_id, "kind": s.kind,
                       "analyte": s.analyte, "level": s.level, "identity": s.identity},
            "job": _job_brief(s.job_id), "injections": injections, "results": results}


def injection(settings: Settings, injection_id: int) -> dict[str, Any]:
    """An injection with its peaks by signal, the main peak (the purity rule) and its traces."""
    i = (Injection.select(Injection, Sample, SourceFile).join(Sample)
         .switch(Injection).join(SourceFile).where(Injection.id == injection_id).first())
    if i is None:
        raise NotFound(f"no injection {injection_id}")
    peaks = list(Peak.select().where(Peak.injection == i.id).order_by(Peak.id))
    stored = [StoredPeak(p.signal, p.rt_min, p.area, p.area_pct, p.height, p.begin_min,
                         p.end_min, p.width_min) for p in peaks]
    from worker.results.inputs import wanted_signal
    signal = purity_signal(stored, wanted_signal(i.sample, settings.methods))
    main = None
    if signal is not None:
        on = [(p, s) for p, s in zip(peaks, stored, strict=True) if s.signal == signal]
        chosen = purity.select_main_peak([s for _, s in on])
        if chosen is not None:
            main = on[chosen.index][0].id
    by_signal: dict[str, list[dict[str, Any]]] = {}
    for p in peaks:
        by_signal.setdefault(p.signal, []).append({
            "id": p.id, "number": p.number, "rt_min": p.rt_min, "area": p.area,
            "area_pct": p.area_pct, "height": p.height, "begin_min": p.begin_min,
            "end_min": p.end_min, "width_min": p.width_min, "type": p.peak_type,
            "name": p.name, "main": p.id == main})
    traces = [{"id": c.id, "signal": c.signal, "detector": c.detector,
               "wavelength_nm": c.wavelength_nm, "points": c.points, "time_unit": c.time_unit,
               "value_unit": c.value_unit, "t_start": c.t_start, "t_end": c.t_end}
              for c in Chromatogram.select(*[f for f in Chromatogram._meta.sorted_fields
                                             if f.name != "data"])
              .where(Chromatogram.injection == i.id).order_by(Chromatogram.id)]
    results = _sorted_results([_result_item(r) for r in Result.select().where(
        (Result.injection == i.id) | (Result.sample == i.sample_id),
        Result.superseded == False)])  # noqa: E712
    return {"injection": {"id": i.id, "number": i.number, "superseded": i.superseded,
                          "acquired_at": iso(i.acquired_at),
                          "dilution_factor": i.dilution_factor},
            "sample": {"id": i.sample.id, "sample_id": i.sample.sample_id,
                       "kind": i.sample.kind, "identity": i.sample.identity},
            "job": _job_brief(i.sample.job_id),
            "file": {"id": i.source_file.id, "path": i.source_file.path},
            "purity_signal": signal, "main_peak": main, "peaks": by_signal,
            "signals": traces, "results": results}


def trace_points(chromatogram_id: int) -> tuple[list[float], list[float]]:
    """A stored trace's times and values (ingest.pack: a little-endian count, then float64
    times, then values)."""
    c = Chromatogram.get_by_id(chromatogram_id)
    data = bytes(c.data)
    (n,) = struct.unpack_from("<I", data)
    values = array("d")
    values.frombytes(data[4:4 + 16 * n])
    if sys.byteorder != "little":
        values.byteswap()
    return values[:n].tolist(), values[n:].tolist()


# ---- audit --------------------------------------------------------------------------------

def audit_events(file_id: int | None = None, job_id: int | None = None,
                 kind: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, before: int | None = None,
                 size: int = 50) -> Page:
    """The trail, newest first, by file, job, kind and time; the cursor is the event number."""
    query = AuditEvent.select()
    if file_id is not None:
        query = query.where(AuditEvent.source_file_id == file_id)
    if job_id is not None:
        query = query.where(AuditEvent.source_file_id.in_(
            SourceFile.select(SourceFile.id).where(SourceFile.job == job_id)))
    if kind:
        query = query.where(AuditEvent.event == kind)
    if since:
        query = query.where(AuditEvent.at >= since.isoformat())
    if until:
        query = query.where(AuditEvent.at < until.isoformat())
    if before:
        query = query.where(AuditEvent.seq < before)
    rows = query.order_by(AuditEvent.seq.desc()).limit(size + 1)
    return page([_event_item(e) for e in rows], size, key="seq")


EVENT_KINDS = ("detected", "stable", "stored", "queued", "parsing", "ingested", "rejected",
               "retry", "moved", "duplicate", "computed", "chain_keyed")
