"""Allotrope Simple Model (ASM) liquid-chromatography documents, one per injection.

The schema is the one Benchling's ``allotropy`` ships and writes its own LC documents against
(``MANIFEST``); each document is validated with allotropy's validator before it is written
(the optional ``asm`` extra: allotropy brings pandas and friends, which nothing else needs).

ASM gives times in seconds; the ledger keeps the minutes the instrument printed. Times are
converted in decimal (``7.643`` min → ``458.58`` s exactly as written, not ``458.58000000000004``),
so reading a document back in minutes gives the printed value again: ``from_seconds`` is the
inverse the round-trip test uses. Areas, area %, heights are written as stored. A signal becomes
one measurement document (with its chromatogram data cube when the file had the trace in a
unit the schema knows) under the injection's one injection document.
"""

from __future__ import annotations

import struct
from array import array
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker import __version__
from worker.record.canaries import not_canary_job
from worker.record.models import (
    BLANK,
    STANDARD,
    Chromatogram,
    Injection,
    Job,
    Peak,
    Sample,
    SourceFile,
)

MANIFEST = ("http://purl.allotrope.org/manifests/liquid-chromatography/BENCHLING/2023/09/"
            "liquid-chromatography.manifest")
ROLES = {STANDARD: "standard sample role", BLANK: "blank role"}
# A trace's value unit → the measure the schema's detector documents name, and the factor to
# it (``25 µV``: each count is 25 µV). A trace whose unit is none of these (unknown, or a pump
# pressure or oven temperature: detector ``status``) gets no data cube rather than a wrong one.
MEASURES = {"mau": ("absorbance", "mAU", 1.0), "au": ("absorbance", "mAU", 1000.0),
            "mv": ("voltage", "mV", 1.0), "mvolts": ("voltage", "mV", 1.0),
            "v": ("voltage", "mV", 1000.0), "volts": ("voltage", "mV", 1000.0),
            "uv": ("voltage", "mV", 0.001), "pa": ("electric current", "pA", 1.0),
            "nc": ("electric charge", "nC", 1.0)}
UNITLESS = "(unitless)"


class MissingExtra(RuntimeError):
    """allotropy is not installed."""


def to_seconds(minutes: float) -> float:
    return float(Decimal(repr(minutes)) * 60)


def from_seconds(seconds: float) -> float:
    return float(Decimal(repr(seconds)) / 60)


def _q(value: float | None, unit: str) -> dict[str, Any] | None:
    return None if value is None else {"value": value, "unit": unit}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "+00:00"


def unpack(blob: bytes) -> tuple[list[float], list[float]]:
    """A Chromatogram's times and values (consume/ingest.pack)."""
    (n,) = struct.unpack_from("<I", blob)
    times, values = array("d"), array("d")
    times.frombytes(blob[4:4 + 8 * n])
    values.frombytes(blob[4 + 8 * n:4 + 16 * n])
    return list(times), list(values)


def measure(value_unit: str | None) -> tuple[str, str, float] | None:
    """(concept, unit, factor) of a trace's value unit, e.g. ``0.001 mV`` → voltage in mV ×
    0.001; None when the schema has no measure for it."""
    if not value_unit:
        return None
    words = value_unit.replace("µ", "u").replace("μ", "u").split()
    factor = 1.0
    if len(words) == 2:
        try:
            factor = float(words[0])
        except ValueError:
            return None
        words = words[1:]
    found = MEASURES.get(words[0].lower()) if len(words) == 1 else None
    return None if found is None else (found[0], found[1], found[2] * factor)


def _cube(trace: Chromatogram) -> dict[str, Any] | None:
    found = measure(trace.value_unit) if trace.detector != "status" else None
    if found is None:
        return None
    concept, unit, factor = found
    times, values = unpack(bytes(trace.data))
    # the trace is a picture, not a printed figure: plain float arithmetic
    if trace.time_unit == "min":
        times = [t * 60 for t in times]
    if factor != 1.0:
        values = [v * factor for v in values]
    return {"label": trace.signal,
            "cube-structure": {
                "dimensions": [{"@componentDatatype": "double", "concept": "retention time",
                                "unit": "s"}],
                "measures": [{"@componentDatatype": "double", "concept": concept,
                              "unit": unit}]},
            "data": {"dimensions": [times], "measures": [values]}}


def _peak(injection: Injection, p: Peak) -> dict[str, Any]:
    width = p.width_min
    found = {
        "identifier": f"{injection.id}-{p.signal}-{p.number}",
        "peak index": str(p.number),
        "retention time": _q(to_seconds(p.rt_min), "s"),
        "peak area": _q(p.area, UNITLESS),
        "relative peak area": _q(p.area_pct, "%"),
        "peak height": _q(p.height, UNITLESS),
        "peak width": _q(None if width is None else to_seconds(width), "s"),
        "peak start": _q(None if p.begin_min is None else to_seconds(p.begin_min), "s"),
        "peak end": _q(None if p.end_min is None else to_seconds(p.end_min), "s"),
        "written name": p.name,
    }
    return {k: v for k, v in found.items() if v is not None}


def document(injection: Injection) -> dict[str, Any]:
    """The ASM document of one injection (its sample, job and source file joined)."""
    sample: Sample = injection.sample
    job: Job = sample.job
    source: SourceFile = injection.source_file
    peaks: dict[str, list[Peak]] = {}
    for p in injection.peaks.order_by(Peak.signal, Peak.number):
        peaks.setdefault(p.signal, []).append(p)
    traces = {t.signal: t for t in injection.chromatograms.order_by(Chromatogram.id)
              if t.detector != "status"}  # pump pressures, temperatures: not a detector
    injected = injection.acquired_at or source.first_seen
    measurements = []
    for signal in list(dict.fromkeys([*peaks, *traces])):
        trace = traces.get(signal)
        control: dict[str, Any] = {"device type": "detector"}
        if trace is not None and trace.detector:
            control["detection type"] = trace.detector
        if trace is not None and trace.wavelength_nm is not None:
            control["detector wavelength setting"] = _q(trace.wavelength_nm, "nm")
        m: dict[str, Any] = {
            "measurement identifier": f"{source.sha256[:16]}-{injection.id}-{signal}",
            "chromatography column document": {},
            "device control aggregate document": {"device control document": [control]},
            "sample document": {
                "sample identifier": sample.sample_id, "written name": sample.sample_id,
                "sample role type": ROLES.get(sample.kind, "sample role"),
                **({"description": sample.identity} if sample.identity else {})},
            "injection document": {"injection identifier": f"{injection.number}",
                                   "injection time": _iso(injected)},
        }
        cube = _cube(trace) if trace is not None else None
        if cube is not None:
            m["chromatogram data cube"] = cube
        if peaks.get(signal):
            m["processed data aggregate document"] = {"processed data document": [
                {"peak list": {"peak": [_peak(injection, p) for p in peaks[signal]]}}]}
        measurements.append(m)
    return {
        "$asm.manifest": MANIFEST,
        "liquid chromatography aggregate document": {
            "device system document": {
                "asset management identifier": job.instrument or "unknown",
                **({"model number": job.instrument} if job.instrument else {})},
            "data system document": {
                "file name": source.name, "UNC path": source.path,
                "software name": source.format or "unknown",
                "ASM converter name": "accu-ingest", "ASM converter version": __version__},
            "liquid chromatography document": [{
                "analyst": "unknown",
                "measurement aggregate document": {"measurement document": measurements}}],
        },
    }


def injections(since: datetime | None = None) -> list[Injection]:
    """Every current injection of real jobs, by job, sample, injection."""
    query = (Injection.select(Injection, Sample, Job, SourceFile)
             .join(Sample).join(Job).switch(Injection).join(SourceFile)
             .where(Injection.superseded == False, not_canary_job())  # noqa: E712
             .order_by(Job.id, Sample.sample_id, Injection.number, Injection.id))
    if since is not None:
        query = query.where(SourceFile.finished_at >= since)
    return list(query)


def validate(doc: dict[str, Any]) -> None:
    """Raises ValueError naming what the schema refuses; MissingExtra without allotropy."""
    try:
        from allotropy.allotrope.schemas import validate_asm_schema
    except ImportError:
        raise MissingExtra("the asm export needs allotropy: pip install 'accu-ingest[asm]'") \
            from None
    try:
        validate_asm_schema(doc)
    except Exception as exc:
        raise ValueError(str(exc)) from None


def file_name(injection: Injection) -> str:
    """A name unique per injection that a person can still read."""
    import re
    sample = re.sub(r"[^A-Za-z0-9._-]+", "_", injection.sample.sample_id).strip("_") or "sample"
    return f"{injection.sample.job_id}-{sample[:50]}-inj{injection.number}-{injection.id}.json"
