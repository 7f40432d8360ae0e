"""Chromatographic purity: main-peak Area% per injection, mean and RSD per sample and analyte.

Why Area%: purity by area normalisation is what the lab reports from an HPLC-UV run — the main
peak's share of all integrated area. When the export prints Area% we use the printed value (it
is what the operator sees on the report); when it does not (Shimadzu), Area% = area / total ×
100 over that injection's peak table, and the trace says so.

Main-peak rule (documented because it decides the result): the peak with the highest Area%;
on an exact tie the earliest retention time; on a tie of both, the first in table order. Every
peak considered is listed in the trace — nothing is excluded silently.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from worker.chemistry import steps as t
from worker.chemistry.naturalsort import natural_key
from worker.chemistry.steps import Computation, Step

CALC_VERSION = "purity/1.0.0"


class PeakLike(Protocol):
    """What purity needs from a peak; ``worker.parsers.base.Peak`` satisfies it as is."""

    @property
    def rt_min(self) -> float: ...
    @property
    def area(self) -> float: ...
    @property
    def area_pct(self) -> float | None: ...


@dataclass(frozen=True)
class PeakInput:
    """A peak for callers (and tests) that do not hold a parser ``Peak``."""

    rt_min: float
    area: float
    area_pct: float | None = None


@dataclass(frozen=True)
class Injection:
    """One injection's peak table, labelled (``Inj_1`` …) so traces and ordering can name it."""

    label: str
    peaks: Sequence[PeakLike]


class MainPeak(NamedTuple):
    """The peak chosen as main peak, with its index in the table and how Area% was obtained."""

    index: int
    rt_min: float
    area: float
    area_pct: float
    area_pct_derived: bool
    tied_with: tuple[int, ...] = ()


@dataclass(frozen=True)
class SamplePurity:
    """Per-injection purity, the mean over injections, and the RSD of those values."""

    injections: list[Computation]
    purity: Computation
    rsd: Computation
    main_peaks: dict[str, MainPeak | None] = field(default_factory=dict)


def _area_pcts(peaks: Sequence[PeakLike]) -> tuple[list[float], list[bool], float]:
    """Area% per peak (printed, or area / total × 100) and whether each was derived."""
    t.check_finite("peak area", [p.area for p in peaks])
    t.check_finite("peak rt_min", [p.rt_min for p in peaks])
    t.check_finite("peak area_pct", [p.area_pct for p in peaks if p.area_pct is not None])
    total = math.fsum(p.area for p in peaks)
    pcts: list[float] = []
    derived: list[bool] = []
    for p in peaks:
        if p.area_pct is not None:
            pcts.append(float(p.area_pct))
            derived.append(False)
        else:
            pcts.append(p.area / total * 100.0 if total > 0 else math.nan)
            derived.append(True)
    return pcts, derived, total


def select_main_peak(peaks: Sequence[PeakLike]) -> MainPeak | None:
    """The main peak by the documented rule, or None for an empty table / zero total area."""
    if not peaks:
        return None
    return _worked_out(peaks)[3]


Worked = tuple[list[float], list[bool], float, MainPeak | None]  # Area%s, derived, total, main
_remembered = threading.local()


@contextlib.contextmanager
def worked_out_once() -> Iterator[None]:
    """Inside, each peak table's Area% and main peak are worked out once, by the table object:
    a recompute asks for those of each injection of a standard twice, for the sample's purity
    and for its job's calibration curve. The tables must not change inside."""
    if getattr(_remembered, "found", None) is not None:  # already, further out
        yield
        return
    _remembered.found = {}
    try:
        yield
    finally:
        _remembered.found = None


def _worked_out(peaks: Sequence[PeakLike]) -> Worked:
    found: dict[int, tuple[Sequence[PeakLike], Worked]] | None = getattr(_remembered, "found",
                                                                         None)
    if found is not None:
        # Kept with the table itself: while it is held here its id cannot be another's.
        seen = found.get(id(peaks))
        if seen is not None and seen[0] is peaks:
            return seen[1]
    pcts, derived, total = _area_pcts(peaks)
    worked = (pcts, derived, total, _main_peak(peaks, pcts, derived))
    if found is not None:
        found[id(peaks)] = (peaks, worked)
    return worked


def _main_peak(peaks: Sequence[PeakLike], pcts: list[float],
               derived: list[bool]) -> MainPeak | None:
    if any(math.isnan(p) for p in pcts):
        return None
    best_pct = max(pcts)
    candidates = [i for i, p in enumerate(pcts) if p == best_pct]
    chosen = min(candidates, key=lambda i: (peaks[i].rt_min, i))
    p = peaks[chosen]
    return MainPeak(index=chosen, rt_min=p.rt_min, area=p.area, area_pct=pcts[chosen],
                    area_pct_derived=derived[chosen],
                    tied_with=tuple(i for i in candidates if i != chosen))


def injection_purity(injection: Injection, *, analyte: str | None = None) -> Computation:
    """Purity of one injection = Area% of its main peak; the trace lists every peak."""
    return _injection_purity(injection, analyte)[0]


def _injection_purity(injection: Injection,
                      analyte: str | None) -> tuple[Computation, MainPeak | None]:
    """The purity and the main peak it came from: a sample needs both, found once."""
    peaks = injection.peaks
    inputs = {"injection": injection.label, "analyte": analyte, "peak_count": len(peaks)}
    if not peaks:
        return Computation(
            kind="purity_injection", value=None, unit="%", inputs=inputs, flags=[t.NO_PEAKS],
            steps=[Step(label="peaks considered", formula="the peak table is empty",
                        inputs={"peaks": []}, value=None)],
            calc_version=CALC_VERSION), None
    pcts, derived, total, main = _worked_out(peaks)
    table = [{"n": i + 1, "rt_min": p.rt_min, "area": p.area, "area_pct": pcts[i],
              "area_pct_derived": derived[i]} for i, p in enumerate(peaks)]
    steps = [Step(label="peaks considered",
                  formula="every integrated peak of the injection, in table order",
                  inputs={"peaks": table}, value=len(peaks))]
    flags: list[str] = []
    if any(derived):
        flags.append(t.AREA_PCT_DERIVED)
        steps.append(Step(label="Area% derived",
                          formula="Area% = area / Σ area × 100 (not printed by the instrument)",
                          inputs={"total_area": total,
                                  "derived_for": [i + 1 for i, d in enumerate(derived) if d]},
                          value=total))
    if main is None:
        flags.append(t.ZERO_TOTAL_AREA)
        steps.append(Step(label="main peak", formula="Area% undefined: Σ area = 0",
                          inputs={"total_area": total}, value=None))
        return Computation(kind="purity_injection", value=None, unit="%", inputs=inputs,
                           steps=steps, flags=flags, calc_version=CALC_VERSION), None
    if main.tied_with:
        flags.append(t.MAIN_PEAK_TIE)
    steps.append(Step(
        label="main peak",
        formula="highest Area%; ties → earliest RT; then first in table order",
        inputs={"peak": main.index + 1, "rt_min": main.rt_min, "area": main.area,
                "tied_with": [i + 1 for i in main.tied_with]},
        value=main.area_pct))
    return Computation(kind="purity_injection", value=main.area_pct, unit="%",
                       inputs={**inputs, "main_peak": main.index + 1,
                               "main_peak_rt_min": main.rt_min,
                               "main_peak_area": main.area},
                       steps=steps, flags=flags, calc_version=CALC_VERSION), main


def sample_purity(injections: Sequence[Injection], *, sample: str,
                  analyte: str | None = None) -> SamplePurity:
    """Mean main-peak Area% over a sample's injections for one analyte, and its RSD (n − 1).

    Injections are taken in natural label order. An injection without a value (no peaks) is
    listed and flagged, not averaged; RSD is None (flagged) when fewer than 2 values exist.
    """
    ordered = sorted(injections, key=lambda inj: natural_key(inj.label))
    found = [_injection_purity(inj, analyte) for inj in ordered]
    per_inj = [comp for comp, _ in found]
    mains = {inj.label: main for inj, (_, main) in zip(ordered, found, strict=True)}
    values = [c.value for c in per_inj if isinstance(c.value, float)]
    used = [c.inputs["injection"] for c in per_inj if isinstance(c.value, float)]
    missing = [c.inputs["injection"] for c in per_inj if c.value is None]
    inputs = {"sample": sample, "analyte": analyte, "injections": [i.label for i in ordered]}
    collected = Step(label="main-peak Area% per injection",
                     formula="purity of each injection (see its own trace), natural order",
                     inputs={c.inputs["injection"]: c.value for c in per_inj},
                     value=values)
    flags: list[str] = []
    if missing:
        flags.append(t.INJECTION_WITHOUT_VALUE)
    if not values:
        flags.append(t.NO_VALUE)
        steps = [collected, Step(label="mean", formula="no injection has a main peak",
                                 inputs={"without_value": missing}, value=None)]
        purity = Computation(kind="purity", value=None, unit="%", inputs=inputs, steps=steps,
                             flags=flags, calc_version=CALC_VERSION)
        rsd = Computation(kind="purity_rsd", value=None, unit="%", inputs=inputs,
                          steps=steps, flags=[*flags, t.RSD_UNDEFINED],
                          calc_version=CALC_VERSION)
        return SamplePurity(per_inj, purity, rsd, mains)
    m = t.mean(values)
    mean_step = Step(label="mean purity", formula="mean = Σ Area% / n",
                     inputs={"n": len(values), "used": used, "without_value": missing},
                     value=m)
    purity = Computation(kind="purity", value=m, unit="%", inputs=inputs,
                         steps=[collected, mean_step], flags=list(flags),
                         calc_version=CALC_VERSION)
    rsd_flags = list(flags)
    if len(values) < 2:
        rsd_flags.append(t.RSD_UNDEFINED)
        rsd_steps = [collected, mean_step,
                     Step(label="RSD", formula="undefined: needs n ≥ 2 (sample SD, n − 1)",
                          inputs={"n": len(values)}, value=None)]
        rsd_value = None
    else:
        sd = t.sample_sd(values)
        sd_step = Step(label="sample standard deviation",
                       formula="s = √(Σ (x − mean)² / (n − 1))",
                       inputs={"n": len(values), "mean": m}, value=sd)
        if m == 0:
            rsd_flags.append(t.RSD_UNDEFINED)
            rsd_value = None
            rsd_step = Step(label="RSD", formula="undefined: mean is 0",
                            inputs={"s": sd, "mean": m}, value=None)
        else:
            rsd_value = sd / m * 100.0
            rsd_step = Step(label="RSD", formula="RSD = s / mean × 100",
                            inputs={"s": sd, "mean": m}, value=rsd_value)
        rsd_steps = [collected, mean_step, sd_step, rsd_step]
    rsd = Computation(kind="purity_rsd", value=rsd_value, unit="%", inputs=inputs,
                      steps=rsd_steps, flags=rsd_flags, calc_version=CALC_VERSION)
    return SamplePurity(per_inj, purity, rsd, mains)
