"""Turning a sample's current injections into Result rows, and keeping them current.

Results follow the data: whenever a file adds or supersedes injections of a sample, its results
are computed again. A result whose value and inputs did not change stays as it is; one that did
is marked superseded and the new one inserted, so history is kept and nothing is duplicated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from worker import audit
from worker.chemistry import purity
from worker.chemistry.trace import Computation
from worker.models import Injection, Peak, Result, Sample

# Result kinds as stored (the chemistry's own kinds, renamed for the table).
PURITY_INJECTION = "purity_injection"


def purity_signal(peaks: Iterable[Peak]) -> str | None:
    """The signal purity is computed on: the first signal (in file order) that has a peak table.

    Exports with several signals (a DAD at 220 and 254 nm, FID and TCD) list their primary
    signal first, so the first peak table is the documented default.
    """
    for peak in peaks:
        return peak.signal
    return None


def recompute_sample(sample: Sample) -> list[Result]:
    """Compute purity for ``sample`` from its current injections; returns the rows now current."""
    injections = list(sample.injections.where(Injection.superseded == False)  # noqa: E712
                      .order_by(Injection.number, Injection.id))
    tables: list[tuple[Injection, list[Peak]]] = []
    for inj in injections:
        peaks = list(inj.peaks.order_by(Peak.id))
        signal = purity_signal(peaks)
        if signal is None:
            continue  # a trace-only injection (chromatogram) has no peak table to judge
        tables.append((inj, [p for p in peaks if p.signal == signal]))
    wanted: list[tuple[Injection | None, Computation]] = []
    if tables:
        labelled = [purity.Injection(label=f"Inj_{inj.number}", peaks=peaks)
                    for inj, peaks in tables]
        outcome = purity.sample_purity(labelled, sample=sample.sample_id,
                                       analyte=sample.analyte or None)
        by_label = {f"Inj_{inj.number}": inj for inj, _ in tables}
        for comp in outcome.injections:
            wanted.append((by_label[comp.inputs["injection"]], comp))
        wanted += [(None, outcome.purity), (None, outcome.rsd)]
    return _replace(sample, wanted)


def _signature(injection_id: int | None, kind: str, value: float | None, inputs: str) -> tuple:
    return injection_id, kind, value, inputs


def _replace(sample: Sample, wanted: list[tuple[Injection | None, Computation]]) -> list[Result]:
    current = list(sample.results.where(Result.superseded == False))  # noqa: E712
    have = {_signature(r.injection_id, r.kind, r.value, r.inputs): r for r in current}
    keep: list[Result] = []
    for injection, comp in wanted:
        inputs = json.dumps(comp.inputs, sort_keys=True, default=str)
        value = float(comp.value) if isinstance(comp.value, int | float) else None
        sig = _signature(injection.id if injection else None, comp.kind, value, inputs)
        if sig in have:
            keep.append(have.pop(sig))
            continue
        row = Result.create(
            job=sample.job_id, sample=sample, injection=injection, analyte=sample.analyte,
            kind=comp.kind, value=value, unit=comp.unit, inputs=inputs,
            text=str(comp.value) if isinstance(comp.value, bool) else None,
            trace=json.dumps([s.model_dump(mode="json") for s in comp.steps]),
            flags=json.dumps(comp.flags), calc_version=comp.calc_version)
        keep.append(row)
        audit.record("computed", None, None, result=row.id, sample=sample.sample_id,
                     kind=comp.kind, value=value, calc_version=comp.calc_version)
    for stale in have.values():
        Result.update(superseded=True).where(Result.id == stale.id).execute()
        audit.record("superseded", None, None, result=stale.id, sample=sample.sample_id,
                     kind=stale.kind)
    return keep
