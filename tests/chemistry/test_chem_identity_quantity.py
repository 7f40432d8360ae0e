"""Identity (RT against the reference), quantity (curve, dilution, volume), acceptance."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from worker.chemistry import steps as t
from worker.chemistry.acceptance import purity_acceptance
from worker.chemistry.calibration import CalibrationCurve, Standard, fit_calibration
from worker.chemistry.identity import identity
from worker.chemistry.quantity import quantity
from worker.chemistry.steps import Computation

CORPUS = [(12, 56.9860, 7.643), (25, 107.7670, 7.633), (50, 214.6817, 7.631),
          (100, 411.4072, 7.624), (250, 1021.4570, 7.603)]
RTS = [rt for _, _, rt in CORPUS]


def curve(**kw: Any) -> CalibrationCurve:
    stds = [Standard(f"{lvl}", lvl, a, rt) for lvl, a, rt in CORPUS]
    return fit_calibration(stds, **kw)


def test_every_corpus_rt_is_within_0_024_of_the_mean_and_conforms() -> None:
    c = curve()
    assert c.mean_rt_min == pytest.approx(7.6268, abs=1e-12)
    for rt in RTS:
        assert abs(rt - c.mean_rt_min) < 0.024
        result = identity([rt], curve_mean_rt=c.mean_rt_min)
        assert result.value is True
        assert result.inputs["reference_source"] == "calibration curve mean RT"
        assert abs(result.inputs["delta_min"]) < 0.024


def test_same_job_standard_is_preferred_over_the_curve() -> None:
    result = identity([7.70, 7.72], standard_rts=[7.60], curve_mean_rt=9.0, sample="S",
                      analyte="AOD9604")
    assert result.value is True
    assert result.inputs["reference_rt"] == 7.60
    assert result.inputs["sample_rt"] == pytest.approx(7.71)
    assert result.inputs["reference_source"].startswith("standard injections")


def test_outside_tolerance_does_not_conform_and_tolerance_is_configurable() -> None:
    assert identity([8.2], standard_rts=[7.6]).value is False
    assert identity([8.2], standard_rts=[7.6], tolerance_min=0.7).value is True
    # boundary is inclusive despite binary floating point (7.7 − 7.2 ≠ 0.5 exactly)
    assert identity([7.7], standard_rts=[7.2], tolerance_min=0.5).value is True
    assert identity([7.0], standard_rts=[7.6], tolerance_min=0.1).value is False


def test_identity_without_reference_or_sample_rt() -> None:
    r = identity([7.6])
    assert r.value is None and r.flags == [t.NO_REFERENCE]
    r = identity([], standard_rts=[7.6])
    assert r.value is None and r.flags == [t.NO_VALUE]


def test_quantity_inverts_the_curve_with_dilution_and_volume() -> None:
    c = curve(corrections={12: 12.5})
    areas = [200.0, 204.0]
    q = quantity(areas, c, dilution_factor=10, volume=2.0, volume_unit="mL", sample="S")
    expected = (statistics.fmean(areas) - c.intercept) / c.slope
    assert q.concentration.value == pytest.approx(expected * 10, rel=1e-12)
    assert q.concentration.unit == "µg/mL"
    assert q.concentration.inputs["measured_concentration"] == pytest.approx(expected)
    assert q.concentration.flags == []
    assert q.amount is not None
    assert q.amount.value == pytest.approx(expected * 10 * 2.0)
    assert q.amount.unit == "µg"
    assert [s.label for s in q.amount.steps][-1] == "amount"


def test_quantity_converts_the_volume_unit() -> None:
    q = quantity([411.4072], curve(), volume=500, volume_unit="µL")
    assert q.amount is not None and q.concentration.value is not None
    assert q.amount.value == pytest.approx(q.concentration.value * 0.5)
    assert q.amount.unit == "µg"
    assert quantity([411.4072], curve()).amount is None


def test_quantity_back_calculates_a_standard() -> None:
    c = curve()
    q = quantity([411.4072], c)
    assert q.concentration.value == pytest.approx(c.points[3].back_calculated)


def test_quantity_flags_extrapolation_and_negative() -> None:
    c = curve()
    assert t.OUTSIDE_CALIBRATED_RANGE in quantity([5000.0], c).concentration.flags
    low = quantity([1.0], c).concentration
    assert low.value is not None and low.value < 0
    assert {t.BELOW_INTERCEPT, t.OUTSIDE_CALIBRATED_RANGE} <= set(low.flags)


def test_quantity_without_calibration() -> None:
    unfit = fit_calibration([Standard("a", 10, 40.0)])
    q = quantity([100.0], unfit, volume=1.0)
    assert q.concentration.value is None and q.concentration.flags == [t.NO_CALIBRATION]
    assert q.amount is not None and q.amount.value is None


def test_quantity_refuses_bad_units_and_dilution() -> None:
    with pytest.raises(t.ChemistryError):
        quantity([1.0], curve(), dilution_factor=0)
    with pytest.raises(t.ChemistryError):
        quantity([1.0], curve(unit="ppm"))
    with pytest.raises(t.ChemistryError):
        quantity([1.0], curve(), volume=1.0, volume_unit="gallon")


def _purity(value: float | None) -> Computation:
    return Computation(kind="purity", value=value, unit="%", calc_version="purity/test")


def test_acceptance_pass_fail_and_rounding() -> None:
    assert purity_acceptance(_purity(98.0), 98.0).value is True
    assert purity_acceptance(_purity(97.96), 98.0).value is False
    rounded = purity_acceptance(_purity(97.95), 98.0, decimals=1)
    assert rounded.value is True
    assert rounded.steps[0].value == 98.0
    assert purity_acceptance(_purity(97.94), 98.0, decimals=1).value is False
    none = purity_acceptance(_purity(None), 98.0)
    assert none.value is None and none.flags == [t.NO_VALUE]
    assert purity_acceptance(_purity(99.1), 98.0).inputs["purity_calc_version"] == "purity/test"
