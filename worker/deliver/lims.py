"""LIMS-ready rows: one per sample and analyte, with everything a LIMS takes in one line.

The column names are a contract (README, "Deliver"): new columns may be added at the end, none
is renamed or removed. Numbers stay numbers; several files are joined with ``;`` in the same
order in ``source_files`` and ``source_sha256``. Canary jobs are never exported.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from worker.chemistry.naturalsort import natural_key
from worker.record.canaries import not_canary_job
from worker.record.models import Injection, Job, Result, Sample, SourceFile

COLUMNS = [
    "job", "job_id", "sample_id", "sample_type", "analyte", "sample_identity",
    "purity_pct", "purity_rsd_pct", "purity_n", "identity", "identity_delta_rt_min",
    "concentration", "concentration_unit", "amount", "amount_unit", "dilution_factor",
    "dilution_source", "acceptance", "flags", "calc_version", "source_files", "source_sha256",
    "acquired_at",
]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def rows(job_id: int | None = None, since: datetime | None = None) -> list[dict[str, Any]]:
    """One row per current sample (a sample with at least one current injection) of real jobs,
    by job, then sample in natural order."""
    samples = (Sample.select(Sample, Job).join(Job)
               .where(not_canary_job(), Sample.id.in_(
                   Injection.select(Injection.sample)
                   .where(Injection.superseded == False))))  # noqa: E712
    if job_id is not None:
        samples = samples.where(Sample.job == job_id)
    found = []
    for sample in samples:
        results = list(Result.select().where(Result.sample == sample,
                                             Result.superseded == False,  # noqa: E712
                                             Result.injection.is_null()))
        if since is not None and not any(r.computed_at >= since for r in results):
            continue
        found.append(_row(sample, {r.kind: r for r in results}))
    found.sort(key=lambda r: (r["job_id"], natural_key(r["sample_id"]), r["sample_identity"],
                              natural_key(r["analyte"])))
    return found


def _row(sample: Sample, by_kind: dict[str, Result]) -> dict[str, Any]:
    injections = list(Injection.select(Injection, SourceFile).join(SourceFile)
                      .where(Injection.sample == sample, Injection.superseded == False)  # noqa: E712
                      .order_by(Injection.number, Injection.id))
    files = sorted({(i.source_file.path, i.source_file.sha256) for i in injections},
                   key=lambda f: natural_key(f[0]))
    purity, rsd = by_kind.get("purity"), by_kind.get("purity_rsd")
    identity, conc = by_kind.get("identity"), by_kind.get("concentration")
    amount, acceptance = by_kind.get("amount"), by_kind.get("acceptance")
    flags: list[str] = []
    for r in by_kind.values():
        flags += [f for f in json.loads(r.flags) if f not in flags]
    inputs = json.loads(purity.inputs) if purity else {}
    conc_inputs = json.loads(conc.inputs) if conc else {}
    id_inputs = json.loads(identity.inputs) if identity else {}
    versions = sorted({r.calc_version for r in by_kind.values()})
    acquired = [i.acquired_at for i in injections if i.acquired_at is not None]
    return {
        "job": sample.job.name, "job_id": sample.job_id, "sample_id": sample.sample_id,
        "sample_type": sample.kind, "analyte": sample.analyte,
        "sample_identity": sample.identity,
        "purity_pct": purity.value if purity else None,
        "purity_rsd_pct": rsd.value if rsd else None,
        "purity_n": len(inputs.get("injections", [])) if purity else None,
        "identity": identity.text if identity else None,
        "identity_delta_rt_min": id_inputs.get("delta_min"),
        "concentration": conc.value if conc else None,
        "concentration_unit": conc.unit if conc else None,
        "amount": amount.value if amount else None,
        "amount_unit": amount.unit if amount else None,
        "dilution_factor": conc_inputs.get("dilution_factor") if conc else
        _stated_dilution(injections),
        "dilution_source": conc_inputs.get("dilution_source") if conc else
        ("file" if _stated_dilution(injections) is not None else None),
        "acceptance": acceptance.text if acceptance else None,
        "flags": flags, "calc_version": ";".join(versions),
        "source_files": [f[0] for f in files], "source_sha256": [f[1] for f in files],
        "acquired_at": _iso(min(acquired)) if acquired else None,
    }


def _stated_dilution(injections: list[Injection]) -> float | None:
    stated = {i.dilution_factor for i in injections}
    return stated.pop() if len(stated) == 1 else None
