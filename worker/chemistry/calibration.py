"""External-standard calibration: least-squares line of main-peak area against concentration.

Why this shape: the lab's workbook (STD_*.xlsx) fits a linear trendline *with* intercept through
the standards' main-peak areas; we reproduce that, plus what the trendline hides — residuals,
back-calculated concentration and % error per level — so a bad standard is visible.

Why our own fit: ordinary least squares with an intercept is a few sums; doing it in plain Python
with ``math.fsum`` (correctly rounded sums, centred formulas) keeps the package free of numpy and
its result reproducible to the last digit on every platform.

Configuration choices come in as arguments and land in the trace: ``corrections`` map a nominal
level to the true one (file names round: ``12`` stands for 12.5 µg/mL); ``exclude_levels`` /
``exclude_labels`` drop points from the fit — the dropped points stay in the point list, marked,
with their back-calculation against the fitted line. A correction or exclusion that matches no
standard is flagged (a stale configuration is worth knowing about).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from worker.chemistry import steps as t
from worker.chemistry.naturalsort import natural_key
from worker.chemistry.steps import Computation, Step

CALC_VERSION = "calibration/1.0.0"
DEFAULT_MIN_R2 = 0.99
DEFAULT_MIN_LEVELS = 3


@dataclass(frozen=True)
class Standard:
    """One standard injection: its label (file / injection), nominal level, main-peak area, RT."""

    label: str
    level: float
    area: float
    rt_min: float | None = None


@dataclass(frozen=True)
class CalibrationPoint:
    """A standard as used by (or excluded from) the fit, with its back-calculation."""

    label: str
    nominal_level: float
    level: float                       # after correction; the x of the fit
    area: float                        # the y of the fit
    rt_min: float | None
    excluded: bool
    exclusion_reason: str | None
    predicted_area: float | None       # slope × level + intercept
    residual: float | None             # area − predicted_area
    back_calculated: float | None      # (area − intercept) / slope
    pct_error: float | None            # (back_calculated − level) / level × 100


@dataclass(frozen=True)
class CalibrationCurve:
    """The fitted line (None values when it cannot be fitted), its points, flags and trace."""

    slope: float | None
    intercept: float | None
    r2: float | None
    unit: str                          # concentration unit of x (e.g. µg/mL)
    points: list[CalibrationPoint]
    distinct_levels: int
    mean_rt_min: float | None          # mean main-peak RT of the points used (identity fallback)
    flags: list[str]
    computation: Computation           # kind "calibration", value = slope

    @property
    def fitted(self) -> bool:
        return self.slope is not None and self.intercept is not None

    @property
    def used_points(self) -> list[CalibrationPoint]:
        return [p for p in self.points if not p.excluded]

    @property
    def calibrated_range(self) -> tuple[float, float] | None:
        """Lowest and highest level used in the fit (beyond it, quantity extrapolates)."""
        used = self.used_points
        if not used:
            return None
        return min(p.level for p in used), max(p.level for p in used)


@dataclass(frozen=True)
class LinearFit:
    """Ordinary least squares y = slope · x + intercept, with r² (None when all y are equal)."""

    slope: float
    intercept: float
    r2: float | None
    n: int
    mean_x: float
    mean_y: float
    sxx: float
    sxy: float
    ss_res: float
    ss_tot: float


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> LinearFit:
    """OLS with intercept using centred sums (numerically stable) and ``math.fsum``.

    slope = Σ(x − x̄)(y − ȳ) / Σ(x − x̄)², intercept = ȳ − slope · x̄,
    r² = 1 − SS_res / SS_tot. Raises ChemistryError when fewer than 2 distinct x.
    """
    if len(xs) != len(ys):
        raise t.ChemistryError("x and y differ in length")
    t.check_finite("x", xs)
    t.check_finite("y", ys)
    if len(set(xs)) < 2:
        raise t.ChemistryError("a line needs at least 2 distinct x values")
    n = len(xs)
    mx = math.fsum(xs) / n
    my = math.fsum(ys) / n
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = math.fsum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = math.fsum((y - my) ** 2 for y in ys)
    r2 = None if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return LinearFit(slope, intercept, r2, n, mx, my, sxx, sxy, ss_res, ss_tot)


def fit_calibration(
    standards: Sequence[Standard],
    *,
    corrections: Mapping[float, float] | None = None,
    exclude_levels: Collection[float] = (),
    exclude_labels: Collection[str] = (),
    unit: str = "µg/mL",
    min_r2: float = DEFAULT_MIN_R2,
    min_levels: int = DEFAULT_MIN_LEVELS,
    analyte: str | None = None,
) -> CalibrationCurve:
    """Fit the calibration line of main-peak area (y) against level (x) for one analyte.

    ``corrections`` and ``exclude_levels`` are keyed by the *nominal* level (as in the file
    name/metadata); ``exclude_labels`` drops single injections. Flags: LOW_R2 (r² < min_r2),
    FEW_LEVELS (distinct levels used < min_levels), NOT_FITTED (< 2 distinct levels: slope,
    intercept and r² are None), R2_UNDEFINED, LEVEL_CORRECTED, POINT_EXCLUDED, CONFIG_UNMATCHED.
    """
    corrections = dict(corrections or {})
    exclude_levels = set(exclude_levels)
    exclude_labels = set(exclude_labels)
    t.check_finite("standard level", [s.level for s in standards])
    t.check_finite("standard area", [s.area for s in standards])
    t.check_finite("standard rt_min", [s.rt_min for s in standards if s.rt_min is not None])
    t.check_finite("correction", [*corrections.keys(), *corrections.values()])
    ordered = sorted(standards, key=lambda s: (s.level, natural_key(s.label)))
    flags: list[str] = []
    steps: list[Step] = [Step(
        label="standards considered",
        formula="main-peak area (y) and nominal level (x) of every standard, by level",
        inputs={"standards": [{"label": s.label, "level": s.level, "area": s.area,
                               "rt_min": s.rt_min} for s in ordered]},
        value=len(ordered))]

    applied = {s.level: corrections[s.level] for s in ordered if s.level in corrections}
    if applied:
        flags.append(t.LEVEL_CORRECTED)
        steps.append(Step(label="level corrections (configuration)",
                          formula="nominal level → level used as x",
                          inputs={"corrections": {str(k): v for k, v in corrections.items()}},
                          value={str(k): v for k, v in applied.items()}))
    reasons: dict[int, str] = {}
    for i, s in enumerate(ordered):
        if s.label in exclude_labels:
            reasons[i] = f"label {s.label!r} excluded by configuration"
        elif s.level in exclude_levels:
            reasons[i] = f"level {s.level:g} excluded by configuration"
    if reasons:
        flags.append(t.POINT_EXCLUDED)
        steps.append(Step(label="exclusions (configuration)",
                          formula="points left out of the fit; still listed and back-calculated",
                          inputs={"exclude_levels": sorted(exclude_levels),
                                  "exclude_labels": sorted(exclude_labels)},
                          value={ordered[i].label: r for i, r in reasons.items()}))
    levels_seen = {s.level for s in ordered}
    labels_seen = {s.label for s in ordered}
    unmatched = ([f"correction {k:g}" for k in corrections if k not in levels_seen]
                 + [f"exclude level {k:g}" for k in exclude_levels if k not in levels_seen]
                 + [f"exclude label {k!r}" for k in exclude_labels if k not in labels_seen])
    if unmatched:
        flags.append(t.CONFIG_UNMATCHED)
        steps.append(Step(label="configuration that matched no standard",
                          formula="listed for review; it changed nothing",
                          inputs={}, value=sorted(unmatched)))

    xs = [corrections.get(s.level, s.level) for s in ordered]
    used = [i for i in range(len(ordered)) if i not in reasons]
    ux = [xs[i] for i in used]
    uy = [ordered[i].area for i in used]
    distinct = len(set(ux))
    inputs = {"analyte": analyte, "unit": unit, "min_r2": min_r2, "min_levels": min_levels,
              "points_used": len(used), "distinct_levels": distinct}
    if distinct < min_levels:
        flags.append(t.FEW_LEVELS)
    fit: LinearFit | None = None
    if distinct >= 2:
        fit = linear_fit(ux, uy)
        steps.append(Step(
            label="least-squares fit",
            formula="slope = Σ(x−x̄)(y−ȳ) / Σ(x−x̄)²; intercept = ȳ − slope·x̄",
            inputs={"x": ux, "y": uy, "n": fit.n, "mean_x": fit.mean_x, "mean_y": fit.mean_y,
                    "Sxx": fit.sxx, "Sxy": fit.sxy},
            value={"slope": fit.slope, "intercept": fit.intercept}))
        steps.append(Step(label="coefficient of determination",
                          formula="r² = 1 − SS_res / SS_tot",
                          inputs={"SS_res": fit.ss_res, "SS_tot": fit.ss_tot}, value=fit.r2))
        if fit.r2 is None:
            flags.append(t.R2_UNDEFINED)
        elif fit.r2 < min_r2:
            flags.append(t.LOW_R2)
    else:
        flags.append(t.NOT_FITTED)
        steps.append(Step(label="least-squares fit",
                          formula="not possible: a line needs at least 2 distinct levels",
                          inputs={"x": ux, "y": uy}, value=None))
    if t.FEW_LEVELS in flags:
        steps.append(Step(label="level count check", formula="distinct levels used ≥ min_levels",
                          inputs={"distinct_levels": distinct, "min_levels": min_levels},
                          value=False))
    if fit is not None and fit.r2 is not None:
        steps.append(Step(label="r² check", formula="r² ≥ min_r2",
                          inputs={"r2": fit.r2, "min_r2": min_r2}, value=fit.r2 >= min_r2))

    points: list[CalibrationPoint] = []
    for i, s in enumerate(ordered):
        x = xs[i]
        pred = res = back = err = None
        if fit is not None:
            pred = fit.slope * x + fit.intercept
            res = s.area - pred
            if fit.slope != 0:
                back = (s.area - fit.intercept) / fit.slope
                err = (back - x) / x * 100.0 if x != 0 else None
        points.append(CalibrationPoint(
            label=s.label, nominal_level=s.level, level=x, area=s.area, rt_min=s.rt_min,
            excluded=i in reasons, exclusion_reason=reasons.get(i), predicted_area=pred,
            residual=res, back_calculated=back, pct_error=err))
    if fit is not None:
        steps.append(Step(
            label="residuals and back-calculation per point",
            formula="residual = y − (slope·x + intercept); back = (y − intercept) / slope; "
                    "% error = (back − x) / x × 100",
            inputs={},
            value=[{"label": p.label, "level": p.level, "area": p.area, "excluded": p.excluded,
                    "residual": p.residual, "back_calculated": p.back_calculated,
                    "pct_error": p.pct_error} for p in points]))
    rts = [ordered[i].rt_min for i in used if ordered[i].rt_min is not None]
    mean_rt = t.mean(rts) if rts else None
    if rts:
        steps.append(Step(label="mean main-peak RT of the points used",
                          formula="Σ RT / n (reference RT for identity when no standard "
                                  "of the same job is available)",
                          inputs={"rt_min": rts}, value=mean_rt))
    comp = Computation(
        kind="calibration", value=fit.slope if fit else None,
        unit=f"area/({unit})", inputs=inputs, steps=steps, flags=flags,
        calc_version=CALC_VERSION)
    return CalibrationCurve(
        slope=fit.slope if fit else None, intercept=fit.intercept if fit else None,
        r2=fit.r2 if fit else None, unit=unit, points=points, distinct_levels=distinct,
        mean_rt_min=mean_rt, flags=flags, computation=comp)
