"""Quantity by external-standard calibration: concentration and, given a volume, amount.

Why: the lab's question after purity is "how much is in the vial". From the curve
area = slope · c + intercept, the concentration in the injected solution is
c = (mean main-peak area − intercept) / slope; × dilution factor gives the concentration of the
sample as prepared; × volume gives the amount. Units are explicit throughout: the concentration
carries the curve's unit (µg/mL by default, from configuration), and the amount's unit is the
mass part of it, the volume being converted to the concentration's volume unit.

Extrapolation is not refused — it is flagged (outside_calibrated_range), as is a negative
concentration (area below the intercept); the operator decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from worker.chemistry import steps as t
from worker.chemistry.calibration import CalibrationCurve
from worker.chemistry.steps import Computation, Step

CALC_VERSION = "quantity/1.0.0"

# Volume units in litres; "u" accepted for "µ" because config files are often ASCII.
_VOLUME_L = {"L": 1.0, "mL": 1e-3, "µL": 1e-6, "uL": 1e-6, "μL": 1e-6, "nL": 1e-9}
VOLUME_UNITS = frozenset(_VOLUME_L)


@dataclass(frozen=True)
class Quantity:
    """Concentration (after dilution) and, when a volume was given, amount."""

    concentration: Computation
    amount: Computation | None


def split_concentration_unit(unit: str) -> tuple[str, str]:
    """``"µg/mL"`` → ``("µg", "mL")``; ChemistryError for a unit that is not mass/volume."""
    mass, sep, volume = unit.partition("/")
    if not sep or not mass or volume not in _VOLUME_L:
        raise t.ChemistryError(f"concentration unit {unit!r} is not <mass>/<volume> with a "
                               f"volume in {sorted(_VOLUME_L)}")
    return mass, volume


def quantity(
    areas: Sequence[float],
    curve: CalibrationCurve,
    *,
    dilution_factor: float = 1.0,
    volume: float | None = None,
    volume_unit: str = "mL",
    sample: str | None = None,
    analyte: str | None = None,
) -> Quantity:
    """Concentration from the mean main-peak area via ``curve``, × dilution, × volume.

    ``areas``: main-peak area of each of the sample's injections (the mean is taken here and
    shown in the trace). The unit is the curve's unit. Returns None values, flagged, when the
    curve has no usable slope or there is no area.
    """
    t.check_finite("area", areas)
    t.check_finite("dilution factor", [dilution_factor])
    if dilution_factor <= 0:
        raise t.ChemistryError(f"dilution factor must be > 0, got {dilution_factor}")
    unit = curve.unit
    mass_unit, conc_volume_unit = split_concentration_unit(unit)
    if volume is not None:
        t.check_finite("volume", [volume])
        if volume_unit not in _VOLUME_L:
            raise t.ChemistryError(f"volume unit {volume_unit!r} not in {sorted(_VOLUME_L)}")
    inputs = {"sample": sample, "analyte": analyte, "areas": list(areas),
              "slope": curve.slope, "intercept": curve.intercept, "curve_r2": curve.r2,
              "curve_flags": list(curve.flags), "dilution_factor": dilution_factor,
              "volume": volume, "volume_unit": volume_unit if volume is not None else None}
    flags: list[str] = []
    steps: list[Step] = []
    mean_area = t.mean(list(areas)) if areas else None
    steps.append(Step(label="mean main-peak area", formula="Σ area / n",
                      inputs={"areas": list(areas)}, value=mean_area))
    if mean_area is None or curve.slope is None or curve.intercept is None or curve.slope == 0:
        flags.append(t.NO_VALUE if mean_area is None else t.NO_CALIBRATION)
        steps.append(Step(label="concentration",
                          formula="undefined: " + ("no area" if mean_area is None else
                                                   "the calibration has no usable slope"),
                          inputs={"slope": curve.slope, "intercept": curve.intercept},
                          value=None))
        conc = Computation(kind="concentration", value=None, unit=unit, inputs=inputs,
                           steps=steps, flags=flags, calc_version=CALC_VERSION)
        amount = None
        if volume is not None:
            amount = Computation(kind="amount", value=None, unit=mass_unit, inputs=inputs,
                                 steps=steps, flags=list(flags), calc_version=CALC_VERSION)
        return Quantity(conc, amount)

    measured = (mean_area - curve.intercept) / curve.slope
    steps.append(Step(label="concentration in the injected solution",
                      formula="c = (mean area − intercept) / slope",
                      inputs={"mean_area": mean_area, "intercept": curve.intercept,
                              "slope": curve.slope}, value=measured))
    rng = curve.calibrated_range
    if rng is not None and not rng[0] <= measured <= rng[1]:
        flags.append(t.OUTSIDE_CALIBRATED_RANGE)
        steps.append(Step(label="calibrated range check",
                          formula="lowest level ≤ c ≤ highest level (else extrapolated)",
                          inputs={"low": rng[0], "high": rng[1], "c": measured}, value=False))
    if measured < 0:
        flags.append(t.BELOW_INTERCEPT)
    diluted = measured * dilution_factor
    steps.append(Step(label="concentration of the sample", formula="c × dilution factor",
                      inputs={"c": measured, "dilution_factor": dilution_factor},
                      value=diluted))
    conc = Computation(kind="concentration", value=diluted, unit=unit,
                       inputs={**inputs, "mean_area": mean_area,
                               "measured_concentration": measured},
                       steps=list(steps), flags=list(flags), calc_version=CALC_VERSION)
    amount = None
    if volume is not None:
        factor = _VOLUME_L[volume_unit] / _VOLUME_L[conc_volume_unit]
        volume_conv = volume * factor
        amount_steps = [*steps]
        if factor != 1:
            amount_steps.append(Step(label="volume in the concentration's volume unit",
                                     formula=f"{volume_unit} → {conc_volume_unit}",
                                     inputs={"volume": volume, "factor": factor},
                                     value=volume_conv))
        value = diluted * volume_conv
        amount_steps.append(Step(label="amount", formula="concentration × volume",
                                 inputs={"concentration": diluted, "unit": unit,
                                         "volume": volume_conv,
                                         "volume_unit": conc_volume_unit},
                                 value=value))
        amount = Computation(kind="amount", value=value, unit=mass_unit,
                             inputs={**conc.inputs, "concentration": diluted},
                             steps=amount_steps, flags=list(flags),
                             calc_version=CALC_VERSION)
    return Quantity(conc, amount)
