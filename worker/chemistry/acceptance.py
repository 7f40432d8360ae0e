"""Acceptance: does a sample's purity meet the analyte's criterion (e.g. ≥ 98.0 %)?

Why a separate Result: release decisions are made on pass/fail against a specification, and the
decision must be traceable to the exact purity value, criterion and rounding used.

Comparison: by default the unrounded purity is compared with the minimum. Labs that follow the
USP General Notices rounding rule (round the result to the number of decimals of the limit,
then compare) pass ``decimals`` (1 for "98.0"); rounding is then half-up, on the decimal value
as printed, and both the raw and the rounded number are in the trace.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from worker.chemistry import steps as t
from worker.chemistry.steps import Computation, Step

CALC_VERSION = "acceptance/1.0.0"


def purity_acceptance(
    purity: Computation,
    minimum_pct: float,
    *,
    decimals: int | None = None,
    sample: str | None = None,
    analyte: str | None = None,
) -> Computation:
    """Pass (True) when purity ≥ minimum_pct; None (flagged) when purity has no value."""
    t.check_finite("minimum_pct", [minimum_pct])
    inputs = {"sample": sample, "analyte": analyte, "purity": purity.value,
              "purity_unit": purity.unit, "purity_calc_version": purity.calc_version,
              "minimum_pct": minimum_pct, "decimals": decimals}
    if not isinstance(purity.value, float) or isinstance(purity.value, bool):
        return Computation(
            kind="acceptance", value=None, unit=None, inputs=inputs, flags=[t.NO_VALUE],
            steps=[Step(label="criterion", formula="purity ≥ minimum: undefined, no purity value",
                        inputs={"minimum_pct": minimum_pct}, value=None)],
            calc_version=CALC_VERSION)
    compared = purity.value
    steps: list[Step] = []
    if decimals is not None:
        compared = float(Decimal(repr(purity.value)).quantize(Decimal(1).scaleb(-decimals),
                                                              rounding=ROUND_HALF_UP))
        steps.append(Step(label="rounding", formula=f"round half-up to {decimals} decimal(s)",
                          inputs={"purity": purity.value}, value=compared))
    passed = compared >= minimum_pct
    steps.append(Step(label="criterion", formula="purity ≥ minimum",
                      inputs={"purity": compared, "minimum_pct": minimum_pct}, value=passed))
    return Computation(kind="acceptance", value=passed, unit=None, inputs=inputs, steps=steps,
                       flags=[*purity.flags], calc_version=CALC_VERSION)
