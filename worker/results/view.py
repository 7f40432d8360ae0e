"""What the ``results`` and ``calibration`` commands show: current Result rows read back into
plain dicts (for ``--json``) and lines for a person.

Ordering is natural everywhere (``Std_12`` before ``Std_100``, ``Inj_2`` before ``Inj_10``), the
job's own rows (its calibration curve) before its samples', and kinds in the order of the registry
(``worker.results.kinds``: within a sample purity, then acceptance, identity and quantity), which
also gives each kind's decimals and the one number shown behind an outcome.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from peewee import JOIN

from worker.chemistry.naturalsort import natural_key
from worker.record.canaries import not_canary_job
from worker.record.models import Injection, Job, Result, Sample, SourceFile
from worker.results import kinds
from worker.results.sample import CONTRADICTORY_SAMPLE


class JobNotFound(LookupError):
    """JOB matched no job, or several (the message lists them)."""


def _detail(r: Result, inputs: dict[str, Any]) -> str:
    """The one number behind an outcome, for the text view."""
    kind = kinds.get(r.kind)
    return kind.detail(inputs) if kind and kind.detail else ""


def result_rows(sample: str | None = None, job: str | None = None,
                since: datetime | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Current results with the names of the files they were computed from; with ``limit``
    the newest first. The files are read in one query for the lot, never per row, so
    a filtered answer stays quick however large the database."""
    query = (Result.select(Result, Sample, Job)
             .join(Sample, JOIN.LEFT_OUTER, on=(Result.sample == Sample.id))
             .switch(Result).join(Job)
             .where(Result.superseded == False, not_canary_job()))  # noqa: E712
    if job:
        query = query.where(Result.job == find_job(job).id)
    if sample:
        query = query.where(Sample.sample_id == sample)
    if since:
        query = query.where(Result.computed_at >= since)
    query = query.order_by(Result.id.desc())  # the newest first, by the primary key
    if limit:
        query = query.limit(limit)
    found = list(query)
    sample_ids = {r.sample_id for r in found if r.sample_id}
    inj_ids = {r.injection_id for r in found if r.injection_id}
    files_of_sample: dict[int, set[str]] = {}
    file_of_injection: dict[int, str] = {}
    if sample_ids or inj_ids:
        q = (Injection.select(Injection.id, Injection.sample, Injection.superseded,
                              SourceFile.name).join(SourceFile)
             .where(Injection.sample.in_(list(sample_ids)) | Injection.id.in_(list(inj_ids))))
        for inj_id, sid, superseded, name in q.tuples():
            file_of_injection[inj_id] = name
            if not superseded:
                files_of_sample.setdefault(sid, set()).add(name)
    numbers = dict(Injection.select(Injection.id, Injection.number)
                   .where(Injection.id.in_(list(inj_ids))).tuples()) if inj_ids else {}
    rows = []
    for r in found:
        inputs = json.loads(r.inputs)
        if r.injection_id:
            srcs = [file_of_injection.get(r.injection_id, "")]
        elif r.sample_id:
            srcs = sorted(files_of_sample.get(r.sample_id, ()), key=natural_key)
        else:
            srcs = sorted({p["label"] for p in inputs.get("points", [])}, key=natural_key)
        smp = r.sample if r.sample_id else None
        rows.append({
            "job": r.job.name, "job_id": r.job_id,
            "sample": smp.sample_id if smp else None,
            "sample_kind": smp.kind if smp else None,
            "sample_identity": smp.identity if smp else None,
            "analyte": r.analyte, "kind": r.kind,
            "injection": numbers.get(r.injection_id) if r.injection_id else None,
            "value": r.value, "text": r.text, "unit": r.unit,
            "detail": _detail(r, inputs),
            "flags": json.loads(r.flags), "calc_version": r.calc_version,
            "computed_at": r.computed_at.isoformat() + "Z", "source_files": srcs})
    rows.sort(key=lambda x: (x["job_id"], x["sample"] is not None,
                             natural_key(x["sample"] or ""), x["sample_identity"] or "",
                             natural_key(x["analyte"]), kinds.rank(x["kind"]),
                             x["injection"] or 0))
    return rows


def format_result(r: dict[str, Any]) -> str:
    if r["text"] is not None:
        value = r["text"]
    elif r["value"] is None:
        value = "—"
    else:
        kind = kinds.get(r["kind"])
        value = f"{r['value']:.{kind.digits if kind else 4}f}"
    who = r["sample"] or f"(curve {r['analyte'] or 'default'})"
    if r["sample"] and r["analyte"]:
        who += f" [{r['analyte']}]"
    if CONTRADICTORY_SAMPLE in r["flags"]:
        who += f" ({r['sample_identity']})"  # namesakes: which of them this row is
    inj = f"inj {r['injection']}" if r["injection"] else ""
    extra = "; ".join(x for x in (r["detail"], ", ".join(r["flags"])) if x)
    return (f"{r['job']:<20} {who:<22} {r['kind']:<21} {inj:<7} {value:>16} "
            f"{r['unit'] or '':<12} {', '.join(r['source_files'])}"
            + (f"  ({extra})" if extra else ""))


def find_job(ref: str) -> Job:
    """A job by its name, else by its id."""
    named = list(Job.select().where(Job.name == ref).order_by(Job.id))
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        ids = ", ".join(f"{j.id} ({j.key})" for j in named)
        raise JobNotFound(f"several jobs are named {ref!r}: give the id, one of {ids}")
    if ref.isdigit():
        job = Job.get_or_none(Job.id == int(ref))
        if job is not None:
            return job
    raise JobNotFound(f"no job named or numbered {ref!r} (see `accu-ingest results`)")


def calibration_report(job: Job) -> dict[str, Any]:
    """The job's current curves: slope, intercept, r², unit, points and flags per analyte."""
    curve_kinds = kinds.names("job", job_row=True)
    rows = (Result.select().where(Result.job == job, Result.kind.in_(curve_kinds),
                                  Result.superseded == False)  # noqa: E712
            .order_by(Result.analyte, Result.id))
    curves: dict[str, dict[str, Any]] = {}
    for r in rows:
        inputs = json.loads(r.inputs)
        curve = curves.setdefault(r.analyte, {
            "analyte": r.analyte, "configuration": inputs.get("configuration"),
            "unit": inputs["unit"], "slope": None, "slope_unit": None, "intercept": None,
            "r2": None, "points_used": inputs["points_used"],
            "distinct_levels": inputs["distinct_levels"], "min_r2": inputs["min_r2"],
            "mean_rt_min": inputs.get("mean_rt_min"), "flags": json.loads(r.flags),
            "points": inputs["points"], "calc_version": r.calc_version,
            "computed_at": r.computed_at.isoformat() + "Z", "trace": json.loads(r.trace)})
        name = r.kind.removeprefix("calibration_")
        curve[name] = r.value
        if name == "slope":
            curve["slope_unit"] = r.unit
    return {"job": job.name, "job_id": job.id, "job_key": job.key, "method": job.method,
            "curves": sorted(curves.values(), key=lambda c: natural_key(c["analyte"]))}


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def format_calibration(report: dict[str, Any]) -> list[str]:
    lines = [f"job {report['job']} (id {report['job_id']}), method {report['method'] or '—'}"]
    if not report["curves"]:
        lines.append("no calibration: the job has no standard with a level and a peak table")
    for c in report["curves"]:
        lines += [
            "",
            f"curve {c['analyte'] or '(default: standards without an analyte)'}"
            f" — configuration {c['configuration'] or '(built-in defaults)'}",
            f"  slope      {_num(c['slope'], 4)} {c['slope_unit']}",
            f"  intercept  {_num(c['intercept'], 4)} area",
            f"  r²         {_num(c['r2'], 5)}   (minimum {c['min_r2']:g})",
            f"  unit       {c['unit']}   {c['points_used']} points, "
            f"{c['distinct_levels']} levels used; mean RT {_num(c['mean_rt_min'], 4)} min",
            f"  flags      {', '.join(c['flags']) or 'none'}",
            f"  {'nominal':>8} {'level':>8} {'area':>11} {'back-calc':>10} {'% error':>8} "
            f"{'RT':>7}  excluded  file",
        ]
        for p in c["points"]:
            excluded = "yes" if p["excluded"] else "no"
            lines.append(
                f"  {p['nominal_level']:>8g} {p['level']:>8g} {p['area']:>11.4f} "
                f"{_num(p['back_calculated'], 3):>10} {_num(p['pct_error'], 2):>8} "
                f"{_num(p['rt_min'], 3):>7}  {excluded:<8}  {p['label']}"
                + (f"  ({p['exclusion_reason']})" if p["exclusion_reason"] else ""))
    return lines
