"""``accu-ingest export``: current results or every peak, as CSV or JSON, for spreadsheets and LIMS.

CSV and formula injection: a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and some also after a leading tab or carriage return). Sample names and peak names come from
instrument files anyone can write, so every TEXT cell starting with one of those characters is
written with a leading ``'``, which spreadsheets show as text. Numbers are written as numbers:
a value the database holds as a number (a negative area or a baseline offset) is not text a
spreadsheet could run, and quoting it would turn it into text nobody can sum. Canary rows are
never exported. JSON is written as it is: no spreadsheet evaluates it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, Any

from peewee import JOIN

from worker.record.canaries import not_canary_job
from worker.record.models import Injection, Job, Peak, Result, Sample, SourceFile

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

RESULT_COLUMNS = ["job", "sample", "sample_kind", "analyte", "kind", "injection", "value",
                  "text", "unit", "flags", "calc_version", "computed_at"]
PEAK_COLUMNS = ["job", "sample", "sample_kind", "analyte", "injection", "source_file",
                "sha256", "signal", "peak", "rt_min", "area", "area_pct", "height", "begin_min",
                "end_min", "width_min", "peak_type", "name", "ingested_at"]


def neutralise(cell: Any) -> Any:
    """A text cell a spreadsheet would execute gets a leading ``'``; anything else is unchanged."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def parse_since(text: str) -> datetime:
    """``2026-01-13`` or ``2026-01-13T08:00`` (UTC unless an offset is given) → naive UTC."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a date like 2026-01-13 or "
                         "2026-01-13T08:00") from None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def results(since: datetime | None = None) -> list[dict[str, Any]]:
    """Current (not superseded) results of real jobs, oldest job first; job-level rows (the
    calibration curve) have no sample."""
    query = (Result.select(Result, Sample, Job, Injection)
             .join(Job, on=(Result.job == Job.id))
             .switch(Result).join(Sample, on=(Result.sample == Sample.id),
                                  join_type=JOIN.LEFT_OUTER)
             .switch(Result).join(Injection, on=(Result.injection == Injection.id),
                                  join_type=JOIN.LEFT_OUTER)
             .where(Result.superseded == False, not_canary_job())  # noqa: E712
             .order_by(Job.id, Sample.sample_id, Result.kind, Result.id))
    if since is not None:
        query = query.where(Result.computed_at >= since)
    return [{
        "job": r.job.name, "sample": r.sample.sample_id if r.sample_id else None,
        "sample_kind": r.sample.kind if r.sample_id else None,
        "analyte": r.analyte, "kind": r.kind,
        "injection": r.injection.number if r.injection_id else None,
        "value": r.value, "text": r.text, "unit": r.unit, "flags": json.loads(r.flags),
        "calc_version": r.calc_version, "computed_at": _iso(r.computed_at),
    } for r in query]


def peaks(since: datetime | None = None) -> list[dict[str, Any]]:
    """Every peak of every current injection of real samples, by job, sample, injection."""
    query = (Peak.select(Peak, Injection, Sample, Job, SourceFile)
             .join(Injection).join(Sample).join(Job)
             .switch(Injection).join(SourceFile)
             .where(Injection.superseded == False, not_canary_job())  # noqa: E712
             .order_by(Job.id, Sample.sample_id, Injection.number, Peak.signal, Peak.number))
    if since is not None:
        query = query.where(SourceFile.finished_at >= since)
    rows = []
    for p in query:
        inj = p.injection
        rows.append({
            "job": inj.sample.job.name, "sample": inj.sample.sample_id,
            "sample_kind": inj.sample.kind, "analyte": inj.sample.analyte,
            "injection": inj.number, "source_file": inj.source_file.name,
            "sha256": inj.source_file.sha256, "signal": p.signal, "peak": p.number,
            "rt_min": p.rt_min, "area": p.area, "area_pct": p.area_pct, "height": p.height,
            "begin_min": p.begin_min, "end_min": p.end_min, "width_min": p.width_min,
            "peak_type": p.peak_type, "name": p.name,
            "ingested_at": _iso(inj.source_file.finished_at)})
    return rows


def write_csv(rows: Iterable[dict[str, Any]], columns: list[str], out: IO[str]) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        cells = []
        for col in columns:
            value = row[col]
            if isinstance(value, list):
                value = ";".join(str(v) for v in value)
            cells.append(neutralise(value))
        writer.writerow(cells)
