"""Identity by retention time: a sample's main peak elutes where the analyte's standard does.

Why: under the same method and column, the analyte's retention time is its identity evidence
for the lab's HPLC-UV release. The reference is, in order of preference,
1. the main-peak RT of standard injection(s) of the same analyte in the same job (mean of them) —
   same column, same mobile phase, same day;
2. else the calibration curve's mean main-peak RT (``CalibrationCurve.mean_rt_min``).
The sample's RT is the mean of its injections' main-peak RTs. It conforms when
|sample − reference| ≤ tolerance (inclusive; default 0.5 min, configurable per analyte).
RTs are printed to 0.001 min, so a 1e-9 min allowance only absorbs binary floating-point noise
at the boundary (7.7 − 7.2 is not exactly 0.5 in floating point).
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.chemistry import steps as t
from worker.chemistry.steps import Computation, Step

CALC_VERSION = "identity/1.0.0"
DEFAULT_TOLERANCE_MIN = 0.5
_FLOAT_NOISE_MIN = 1e-9


def identity(
    sample_rts: Sequence[float],
    *,
    standard_rts: Sequence[float] = (),
    curve_mean_rt: float | None = None,
    tolerance_min: float = DEFAULT_TOLERANCE_MIN,
    sample: str | None = None,
    analyte: str | None = None,
) -> Computation:
    """Conforms (True) / does not (False) / None when there is no sample RT or no reference.

    ``sample_rts``: main-peak RT of each of the sample's injections (minutes).
    ``standard_rts``: main-peak RTs of standard injections of the same analyte in the same job.
    ``curve_mean_rt``: fallback reference, the curve's mean main-peak RT.
    """
    t.check_finite("sample RT", sample_rts)
    t.check_finite("standard RT", standard_rts)
    if curve_mean_rt is not None:
        t.check_finite("curve mean RT", [curve_mean_rt])
    t.check_finite("tolerance", [tolerance_min])
    if tolerance_min < 0:
        raise t.ChemistryError(f"tolerance_min must be ≥ 0, got {tolerance_min}")
    inputs = {"sample": sample, "analyte": analyte, "sample_rts": list(sample_rts),
              "standard_rts": list(standard_rts), "curve_mean_rt": curve_mean_rt,
              "tolerance_min": tolerance_min}
    steps: list[Step] = []
    flags: list[str] = []
    sample_rt = t.mean(list(sample_rts)) if sample_rts else None
    steps.append(Step(label="sample RT", formula="mean of the injections' main-peak RT",
                      inputs={"rt_min": list(sample_rts)}, value=sample_rt))
    if standard_rts:
        ref = t.mean(list(standard_rts))
        source = "standard injections of the same analyte in the same job"
        steps.append(Step(label="reference RT", formula=f"mean main-peak RT of {source}",
                          inputs={"rt_min": list(standard_rts)}, value=ref))
    elif curve_mean_rt is not None:
        ref = curve_mean_rt
        source = "calibration curve mean RT"
        steps.append(Step(label="reference RT",
                          formula="no standard of this analyte in the job: the curve's mean RT",
                          inputs={"curve_mean_rt": curve_mean_rt}, value=ref))
    else:
        ref = None
        source = None
    inputs["reference_source"] = source
    if sample_rt is None or ref is None:
        flags.append(t.NO_VALUE if sample_rt is None else t.NO_REFERENCE)
        steps.append(Step(label="conformity", formula="undefined: "
                          + ("no sample RT" if sample_rt is None else "no reference RT"),
                          inputs={}, value=None))
        return Computation(kind="identity", value=None, unit=None, inputs=inputs, steps=steps,
                           flags=flags, calc_version=CALC_VERSION)
    delta = sample_rt - ref
    steps.append(Step(label="RT difference", formula="Δ = sample RT − reference RT",
                      inputs={"sample_rt": sample_rt, "reference_rt": ref}, value=delta))
    conforms = abs(delta) <= tolerance_min + _FLOAT_NOISE_MIN
    steps.append(Step(label="conformity", formula="|Δ| ≤ tolerance (min)",
                      inputs={"abs_delta": abs(delta), "tolerance_min": tolerance_min},
                      value=conforms))
    return Computation(kind="identity", value=conforms, unit=None,
                       inputs={**inputs, "sample_rt": sample_rt, "reference_rt": ref,
                               "delta_min": delta},
                       steps=steps, flags=flags, calc_version=CALC_VERSION)
