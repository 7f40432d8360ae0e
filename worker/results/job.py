"""Job-level chemistry: the calibration curve from a job's standards, and from it each sample's
identity, quantity and acceptance — recomputed whenever a file lands in the job.

Which standards make which curve: standards (Sample.kind "standard" with a level, from the
file's metadata or its name) are grouped by analyte label, one curve per label. Standards that
name no analyte (the Agilent ``12_Report.csv`` … files) make the job's default curve (label '').
A sample is quantified on the curve of its own analyte, else the default curve, else — when the
job has exactly one curve — that one (a run of one analyte's standards and unlabelled samples).

Each standard injection is one point: its main peak (purity's rule, on the purity signal) gives
the area (y) and RT; the nominal level is x, corrected or excluded per the configuration.

Configuration (``Settings.methods``) is looked up by the analyte label, then the job's
acquisition method name, then ``default``; its name is in every Result's inputs, and the level
corrections and exclusions a new curve uses are audited.

Results follow the data: the curve is computed on every file; when it (or any standard) changed,
every sample and standard of the job is recomputed, else only the samples the file touched.
Unchanged rows stay, changed ones are superseded (``worker.results.store``), so a standard arriving
after the samples makes their identity and quantity appear, and a re-export replaces them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from worker.chemistry import steps as t
from worker.chemistry.acceptance import purity_acceptance
from worker.chemistry.calibration import (
    CalibrationCurve,
    CalibrationPoint,
    Standard,
    fit_calibration,
)
from worker.chemistry.identity import identity
from worker.chemistry.quantity import quantity
from worker.chemistry.steps import Computation
from worker.record import audit, sql, who
from worker.record.models import SAMPLE, STANDARD, Job, Sample, database
from worker.results import kinds
from worker.results.inputs import MainPeakRow, Tables, main_peaks, peak_tables, read_tables
from worker.results.sample import flag_namesakes, namesakes_preload, sample_purity
from worker.results.store import Wanted, preload, replace
from worker.settings import MethodSettings

DEFAULT = "default"


@dataclass(frozen=True)
class Config:
    """The method settings that apply, and the name of the ``methods`` entry they came from."""

    name: str | None
    method: MethodSettings


def configuration(methods: Mapping[str, MethodSettings], analyte: str,
                  job_method: str | None) -> Config:
    """The settings for an analyte in a job: by analyte, then method name, then ``default``."""
    for key in (analyte, job_method, DEFAULT):
        if key and key in methods:
            return Config(key, methods[key])
    return Config(None, MethodSettings())


def recompute_job(job: Job, touched: Iterable[Sample], methods: Mapping[str, MethodSettings],
                  cache: dict[int, Tables] | None = None) -> None:
    """Calibration rows of ``job``, then identity / quantity / acceptance of affected samples."""
    _lock(job)
    standards = _samples(job, (STANDARD,))
    cache = {} if cache is None else cache
    read_tables(standards, methods, cache)  # those the chunk did not touch: a query for all
    peaks = {s.id: main_peaks(s, methods, cache) for s in standards}
    curves: dict[str, tuple[CalibrationCurve, Config]] = {}
    for analyte in sorted({s.analyte for s in standards if s.level is not None}):
        points = [Standard(m.label, s.level, m.area, m.rt_min) for s in standards
                  if s.analyte == analyte and s.level is not None for m in peaks[s.id]]
        if not points:
            continue  # standards without a peak table (traces only): nothing to fit
        cfg = configuration(methods, analyte, job.method)
        curves[analyte] = (fit_calibration(
            points, corrections=cfg.method.level_corrections,
            exclude_levels=cfg.method.exclude_levels, unit=cfg.method.concentration_unit,
            min_r2=cfg.method.min_r2, analyte=analyte), cfg)
    changed = replace(job.id, None, _calibration_rows(curves), "job")
    if changed:
        _audit_choices(job, curves)
    # Only a changed curve (or standard) reaches every sample of the job; otherwise the work is
    # the touched samples', so a file's cost does not grow with the size of its job.
    if changed or any(s.kind == STANDARD for s in touched):
        targets = _samples(job, (SAMPLE, STANDARD))
        preload(targets)
        namesakes_preload(targets)
        read_tables(targets, methods, cache)
    else:
        targets = [s for s in touched if s.kind in (SAMPLE, STANDARD)]
    for s in targets:
        if s.id not in peaks:
            peaks[s.id] = main_peaks(s, methods, cache)
        wanted = _sample_rows(job, s, peaks, standards, curves, methods, cache)
        replace(job.id, s, flag_namesakes(s, wanted), "job")


_SAMPLES_SQL = (f"SELECT id, sample_id, kind, analyte, level, identity FROM {sql.table(Sample)} "
                "WHERE job_id = ? AND kind IN ({}) ORDER BY id")


def _samples(job: Job, kinds: tuple[str, ...]) -> list[Sample]:
    """The job's samples of these kinds, with the job attached so ``sample.job`` asks nothing
    again; in plain SQL, as every chunk of a burst asks it of every job it touches."""
    return [Sample(id=id_, job=job, sample_id=sample_id, kind=kind, analyte=analyte,
                   level=level, identity=identity)
            for id_, sample_id, kind, analyte, level, identity in sql.rows(
                _SAMPLES_SQL.format(sql.marks(len(kinds))), (job.id, *kinds))]


def _lock(job: Job) -> None:
    """On PostgreSQL, serialise job recomputes so two consumers cannot fit the same job at once
    (SQLite's write transactions are already serial)."""
    if type(database.obj).__name__.startswith("Postgres"):
        sql.execute(_LOCK_SQL, (job.id,))


_LOCK_SQL = f"SELECT id FROM {sql.table(Job)} WHERE id = ? FOR UPDATE"


def _calibration_rows(curves: Mapping[str, tuple[CalibrationCurve, Config]]) -> list[Wanted]:
    """Slope, intercept and r² as three rows, each carrying the points and the whole fit."""
    wanted: list[Wanted] = []
    for analyte, (curve, cfg) in curves.items():
        comp = curve.computation
        inputs = {**comp.inputs, "analyte": analyte, "configuration": cfg.name,
                  "mean_rt_min": curve.mean_rt_min,
                  "points": [point_fields(p) for p in curve.points]}
        for kind, value in ((kinds.CALIBRATION_SLOPE, curve.slope),
                            (kinds.CALIBRATION_INTERCEPT, curve.intercept),
                            (kinds.CALIBRATION_R2, curve.r2)):
            unit = comp.unit if kind.unit == kinds.BY_METHOD else kind.unit
            wanted.append((None, comp.model_copy(update={
                "kind": kind.name, "value": value, "unit": unit, "inputs": inputs})))
    return wanted


def point_fields(point: CalibrationPoint) -> dict[str, object]:
    """``dataclasses.asdict`` of a point without its deep copy: every field is an immutable
    value (text, number, flag or None), which a deep copy returns unchanged, and the copying
    was most of the cost of a job's calibration rows."""
    return dict(vars(point))


def _audit_choices(job: Job, curves: Mapping[str, tuple[CalibrationCurve, Config]]) -> None:
    """A new curve that used level corrections or exclusions says so in the audit trail."""
    for analyte, (curve, cfg) in curves.items():
        corrected = {p.label: [p.nominal_level, p.level] for p in curve.points
                     if p.level != p.nominal_level}
        excluded = {p.label: p.exclusion_reason for p in curve.points if p.excluded}
        if corrected or excluded or t.CONFIG_UNMATCHED in curve.flags:
            audit.record("calibration_choices", None, None, job=job.key, analyte=analyte,
                         configuration=cfg.name, corrected=corrected, excluded=excluded,
                         flags=curve.flags, reason=cfg.method.reason, **who.service())


def _curve_for(analyte: str, curves: Mapping[str, tuple[CalibrationCurve, Config]],
               ) -> tuple[CalibrationCurve, Config] | None:
    if analyte in curves:
        return curves[analyte]
    if "" in curves:
        return curves[""]
    if len(curves) == 1:
        return next(iter(curves.values()))
    return None


def _sample_rows(job: Job, sample: Sample, peaks: Mapping[int, list[MainPeakRow]],
                 standards: list[Sample],
                 curves: Mapping[str, tuple[CalibrationCurve, Config]],
                 methods: Mapping[str, MethodSettings],
                 cache: dict[int, Tables]) -> list[Wanted]:
    """Identity (standards too), quantity and acceptance of one sample, as wanted rows."""
    mains = peaks[sample.id]
    found = _curve_for(sample.analyte, curves)
    curve = found[0] if found else None
    cfg = configuration(methods, sample.analyte, job.method)
    name = {"sample": sample.sample_id, "analyte": sample.analyte or None}
    rts = [m.rt_min for m in mains]
    wanted: list[Computation] = []
    if sample.kind == STANDARD:
        # System suitability: a standard's RT against the mean RT of the curve it belongs to.
        own = curves.get(sample.analyte)
        if own is not None and own[0].mean_rt_min is not None:
            wanted.append(identity(rts, curve_mean_rt=own[0].mean_rt_min,
                                   tolerance_min=cfg.method.rt_tolerance_min, **name))
        return [(None, _tagged(c, cfg)) for c in wanted]
    standard_rts = [m.rt_min for s in standards if s.analyte == sample.analyte
                    for m in peaks.get(s.id, [])]
    if standard_rts or (curve is not None and curve.mean_rt_min is not None):
        wanted.append(identity(rts, standard_rts=standard_rts,
                               curve_mean_rt=curve.mean_rt_min if curve else None,
                               tolerance_min=cfg.method.rt_tolerance_min, **name))
    if curve is not None:
        dilution, source = _dilution(mains, cfg)
        amount = quantity([m.area for m in mains], curve, dilution_factor=dilution,
                          volume=cfg.method.volume, volume_unit=cfg.method.volume_unit, **name)
        wanted += [c.model_copy(update={"inputs": {**c.inputs, "dilution_source": source}})
                   for c in [amount.concentration, *([amount.amount] if amount.amount else [])]]
    if cfg.method.purity_min_pct is not None:
        outcome = sample_purity(sample, peak_tables(sample, methods, cache))
        if outcome is not None:
            wanted.append(purity_acceptance(outcome.purity, cfg.method.purity_min_pct,
                                            decimals=cfg.method.purity_decimals, **name))
    return [(None, _tagged(c, cfg)) for c in wanted]


def _dilution(mains: list[MainPeakRow], cfg: Config) -> tuple[float, str]:
    """The dilution factor the sample's files state (all agreeing), else the configured one.

    What the instrument recorded for this very sample beats a per-method default; files that
    disagree are not averaged into a guess, the configuration decides and the trace says so.
    """
    stated = {m.injection.dilution_factor for m in mains}
    if len(stated) == 1 and None not in stated:
        return stated.pop(), "file"  # type: ignore[return-value]
    if len(stated - {None}) > 1:
        return cfg.method.dilution_factor, "configuration (the files disagree)"
    return cfg.method.dilution_factor, "configuration"


def _tagged(comp: Computation, cfg: Config) -> Computation:
    """The computation with the name of the configuration entry it used in its inputs."""
    return comp.model_copy(update={"inputs": {**comp.inputs, "configuration": cfg.name}})
