"""Job reports: when a job's files have settled, one JSON document with every sample's results,
flags and source files (with SHA-256), written to ``data/reports/jobs/`` and, when
``job_report_url`` is set, put in the outbox for webhook.py to POST.

A job is finished when none of its files finished for ``job_settle_seconds`` and no file that
would join it (same node, same export folder; for loose files, any loose file of the node) is
still queued or being processed. A job that changes afterwards (a late standard, a re-export, a
retry) settles again and gets a new report; one whose content did not change gets none. The
idempotency key is a hash of the job and its content, so a receiver that sees a key twice has
the same report twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from peewee import fn

from worker import __version__
from worker.consume.dfolder import job_folder
from worker.deliver import lims
from worker.deliver.messages import Message, Words
from worker.deliver.state import State
from worker.record.canaries import CANARY_DIR
from worker.record.models import (
    PROCESSING,
    QUEUED,
    Injection,
    Job,
    Result,
    Sample,
    SourceFile,
    utcnow,
)
from worker.settings import Settings

log = logging.getLogger(__name__)

LOOKBACK = timedelta(minutes=2)  # a file committed late still carries its earlier time
SCHEMA = "accu-ingest job report 1"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def build(job: Job) -> dict[str, Any]:
    """The report of ``job`` as it stands in the database (without the time it was made)."""
    files = list(SourceFile.select().where(SourceFile.job == job).order_by(SourceFile.id))
    samples = []
    for sample in Sample.select().where(Sample.job == job).order_by(Sample.id):
        injections = (Injection.select(Injection, SourceFile).join(SourceFile)
                      .where(Injection.sample == sample, Injection.superseded == False)  # noqa: E712
                      .order_by(Injection.number, Injection.id))
        samples.append({
            "sample_id": sample.sample_id, "type": sample.kind, "analyte": sample.analyte,
            "identity": sample.identity, "level": sample.level,
            "injections": [{"number": i.number, "source_file": i.source_file.path,
                            "sha256": i.source_file.sha256, "acquired_at": _iso(i.acquired_at),
                            "dilution_factor": i.dilution_factor} for i in injections],
            "results": _results(job, sample)})
    return {
        "schema": SCHEMA,
        "job": {"id": job.id, "key": job.key, "name": job.name, "instrument": job.instrument,
                "method": job.method, "acquired_at": _iso(job.acquired_at)},
        "files": [{"id": f.id, "path": f.path, "sha256": f.sha256, "size": f.size,
                   "state": f.state, "format": f.format, "parser_version": f.parser_version,
                   "error": f.error, "error_line": f.error_line,
                   "finished_at": _iso(f.finished_at)} for f in files],
        "job_results": _results(job, None),
        "samples": samples,
        "lims_rows": lims.rows(job_id=job.id),
    }


def _results(job: Job, sample: Sample | None) -> list[dict[str, Any]]:
    query = Result.select().where(Result.job == job, Result.superseded == False)  # noqa: E712
    query = query.where(Result.sample.is_null()) if sample is None \
        else query.where(Result.sample == sample)
    return [{"kind": r.kind, "analyte": r.analyte, "injection": r.injection_id and
             r.injection.number, "value": r.value, "text": r.text, "unit": r.unit,
             "flags": json.loads(r.flags), "calc_version": r.calc_version,
             "inputs": json.loads(r.inputs), "computed_at": _iso(r.computed_at)}
            for r in query.order_by(Result.kind, Result.id)]


def finish(report: dict[str, Any]) -> dict[str, Any]:
    """The report with its idempotency key (from its content) and when it was made."""
    digest = hashlib.sha256(canonical(report).encode("utf-8")).hexdigest()
    return {**report, "idempotency_key": f"accu-ingest:{digest}",
            "generated_at": _iso(utcnow()), "worker_version": __version__}


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_")[:60] or "job"


def _write(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _waiting_keys() -> set[str]:
    """The job keys unfinished files will join (``node:loose`` for loose files)."""
    keys = set()
    for f in (SourceFile.select(SourceFile.origin, SourceFile.path)
              .where(SourceFile.state.in_([QUEUED, PROCESSING]))):
        folder = job_folder(f.path)
        keys.add(f"{f.origin}:{folder}" if folder != "." else f"{f.origin}:loose")
    return keys


def _waits(job: Job, keys: set[str]) -> bool:
    if job.key in keys:
        return True
    origin, _, rest = job.key.partition(":")
    return rest.startswith("loose:") and f"{origin}:loose" in keys


class JobReports:
    """Settled jobs → reports; called by the deliver loop on the scheduler's pass."""

    def __init__(self, settings: Settings, state: State,
                 tell: Callable[[Message], None] | None = None) -> None:
        self.settings = settings
        self.state = state
        self.tell = tell  # Notifier.send, for the job_finished event
        self.words = Words(settings)
        if state.get("jobs_watermark") is None:  # first start: earlier jobs are not news
            state.set("jobs_watermark", utcnow().isoformat())

    @property
    def folder(self) -> Path:
        return self.settings.reports_dir / "jobs"

    @property
    def outbox(self) -> Path:
        return self.settings.reports_dir / "outbox"

    def poll(self) -> list[Path]:
        """Write the reports of jobs that settled; their paths."""
        watermark = datetime.fromisoformat(self.state.get("jobs_watermark"))
        pending: dict[str, str] = dict(self.state.get("jobs_pending", {}))
        # the last finish of each job already considered: the lookback reads it again
        considered: dict[str, str] = {
            k: v for k, v in self.state.get("jobs_considered", {}).items()
            if datetime.fromisoformat(v) >= watermark - 2 * LOOKBACK}
        recent = (SourceFile.select(SourceFile.job, fn.MAX(SourceFile.finished_at).alias("last"))
                  .where(SourceFile.finished_at >= watermark - LOOKBACK,
                         SourceFile.job.is_null(False))
                  .group_by(SourceFile.job))
        newest = watermark
        for row in recent:
            last = row.last if isinstance(row.last, datetime) else \
                datetime.fromisoformat(str(row.last))
            newest = max(newest, last)
            job_id = str(row.job_id)
            if max(pending.get(job_id, ""), considered.get(job_id, "")) < last.isoformat():
                pending[job_id] = last.isoformat()
        settled_before = utcnow() - timedelta(seconds=self.settings.job_settle_seconds)
        written = []
        waiting = None
        for job_id, last in sorted(pending.items()):
            if datetime.fromisoformat(last) > settled_before:
                continue
            waiting = _waiting_keys() if waiting is None else waiting
            job = Job.get_or_none(Job.id == int(job_id))
            if job is not None and _waits(job, waiting):
                continue
            considered[job_id] = pending.pop(job_id)
            if job is None or job.name == CANARY_DIR or job.key.endswith(f":{CANARY_DIR}"):
                continue
            path = self._report(job)
            if path is not None:
                written.append(path)
        self.state.update({"jobs_pending": pending, "jobs_considered": considered,
                           "jobs_watermark": newest.isoformat()})
        return written

    def _report(self, job: Job) -> Path | None:
        report = build(job)
        key = hashlib.sha256(canonical(report).encode("utf-8")).hexdigest()
        reported: dict[str, str] = self.state.get("jobs_reported", {})
        if reported.get(str(job.id)) == key:
            return None  # settled again with nothing new
        document = finish(report)
        path = self.folder / f"job-{job.id}-{_safe(job.name)}.json"
        _write(path, document)
        if self.settings.job_report_url is not None:
            _write(self.outbox / f"{document['generated_at'][:19].replace(':', '')}-"
                                 f"{job.id}-{key[:16]}.json", document)
        reported[str(job.id)] = key
        self.state.set("jobs_reported", reported)
        self.state.count("job_reports", "written")
        log.info("job %s finished: report %s", job.name, path)
        if self.tell is not None:
            self.tell(self.words.job_finished(job.name, len(report["samples"]),
                                              len(report["files"]), path))
        return path
