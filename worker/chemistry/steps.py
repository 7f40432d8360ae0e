"""The record every chemistry computation returns: a value plus the working that produced it.

Why: a Result row in the database must be re-checkable by a person without the code — which
numbers went in, which formula turned them into what, which choices (corrections, exclusions,
tie-breaks) were made, what looked wrong (flags) and which version of the calculation ran.
``Computation`` carries exactly that; ``to_json()`` gives a plain dict the pipeline can store.

Flags are short, stable machine codes (constants below) so the pipeline and the CLI can match
on them; the human explanation of each flag is in the steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ChemistryError(ValueError):
    """Input that no computation can be made from (e.g. a non-finite number): a caller bug."""


class Step(BaseModel):
    """One line of working: what was done (label), how (formula), with what (inputs) → value."""

    model_config = ConfigDict(frozen=True)

    label: str
    formula: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    value: Any = None


class Computation(BaseModel):
    """One computed value with its unit, inputs, step-by-step trace, flags and calc version.

    ``value`` is None when the value cannot be computed; a flag then says why. Nothing is
    raised for chemistry that merely looks bad (low r², one injection): that is a flag.
    """

    model_config = ConfigDict(frozen=True)

    kind: str
    value: float | bool | None
    unit: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)
    flags: list[str] = Field(default_factory=list)
    calc_version: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the Result row's trace column)."""
        return self.model_dump(mode="json")


# Stable flag codes (the explanation is always in a Step of the same Computation).
NO_PEAKS = "no_peaks"                          # an injection with an empty peak table
ZERO_TOTAL_AREA = "zero_total_area"            # Area% cannot be derived
AREA_PCT_DERIVED = "area_pct_derived"          # Area% computed as area / total × 100
MAIN_PEAK_TIE = "main_peak_tie"                # several peaks share the highest Area%
RSD_UNDEFINED = "rsd_undefined"                # fewer than 2 values, or a mean of 0
INJECTION_WITHOUT_VALUE = "injection_without_value"
NO_VALUE = "no_value"                          # nothing to compute the value from
LOW_R2 = "low_r2"                              # r² below the minimum (default 0.99)
FEW_LEVELS = "few_levels"                      # fewer distinct levels than the minimum (3)
NOT_FITTED = "not_fitted"                      # fewer than 2 distinct levels: no line at all
R2_UNDEFINED = "r2_undefined"                  # all areas equal
LEVEL_CORRECTED = "level_corrected"
POINT_EXCLUDED = "point_excluded"
CONFIG_UNMATCHED = "config_unmatched"          # a correction/exclusion that matched no standard
NO_REFERENCE = "no_reference"                  # identity: no standard RT and no curve RT
NO_CALIBRATION = "no_calibration"              # quantity: the curve has no slope
OUTSIDE_CALIBRATED_RANGE = "outside_calibrated_range"
BELOW_INTERCEPT = "below_intercept"            # negative concentration


def check_finite(name: str, values: Iterable[float]) -> None:
    """Refuse NaN/inf: they would poison every sum and make the stored trace invalid JSON."""
    for v in values:
        if type(v) is float and v - v == 0.0:  # the usual case, checked first: finite floats
            continue
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
            raise ChemistryError(f"{name}: {v!r} is not a finite number")


def mean(values: list[float]) -> float:
    """Arithmetic mean with a correctly rounded sum (math.fsum)."""
    return math.fsum(values) / len(values)


def sample_sd(values: list[float]) -> float:
    """Sample standard deviation, n − 1 denominator (the lab convention for replicate RSD)."""
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))
